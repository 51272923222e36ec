"""Servers of different trees or options side by side: rounds alternate, CPU per stream compared.

Run: ``python -m benchmarks.ab_server --variant old=../old --variant new=.:--loop=uvloop
[--streams 50] [--frame 512] [--seconds 10] [--rounds 3]``.

Each ``--variant NAME=TREE[:SERVE ARGS]`` is ``rxaudio serve`` imported from the source tree
``TREE`` (through ``PYTHONPATH``; copy a built ``_melkernel`` into a tree that has none, or its
spectrogram falls back to numpy), with extra serve arguments separated by ``:`` (``=`` inside
an argument becomes a space: ``--loop=asyncio``). Every round runs each variant once, in order,
with the same clients (``benchmarks.load_clients``, the bundled speech at real-time pace, full
chain with files); this machine's speed drifts, so compare within rounds. Printed per run: the
server's CPU per stream-second, p50/p99 frame-to-``vad`` latency, utterances, drops; then each
variant's median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import numpy as np

from benchmarks._util import start_server
from benchmarks.bench_server import _cpu_seconds, add_client_args
from benchmarks.load_clients import run_clients


def parse_variant(text: str) -> tuple[str, str, list[str]]:
    """``NAME=TREE[:ARG:ARG...]`` -> ``(name, absolute tree, serve args)``."""
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--variant wants NAME=TREE[:ARGS], got {text!r}")
    tree, *args = rest.split(":")
    if not os.path.isdir(os.path.join(tree, "rxaudio")):
        raise SystemExit(f"--variant {name}: {tree} holds no rxaudio package")
    extra = [part for a in args for part in a.replace("=", " ", 1).split(" ") if part]
    return name, os.path.abspath(tree), extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=TREE[:SERVE ARGS]")
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--frame", type=int, default=512, help="samples per client frame (16 kHz)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    add_client_args(ap)
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    per: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):
        for name, tree, extra in variants:
            out = tempfile.mkdtemp(prefix="rxaudio-ab-")
            # the server runs in the tree (``-m`` puts the working directory first on its path)
            proc, url = start_server(["--out", out, "--queue", "256", *extra], tree=tree)
            at: dict[str, float] = {}
            try:
                s = run_clients(
                    url,
                    streams=args.streams,
                    frame=args.frame,
                    seconds=args.seconds,
                    procs=args.client_procs,
                    client=args.client,
                    on_start=lambda at=at, pid=proc.pid: at.update(cpu0=_cpu_seconds(pid)),
                )
                used = _cpu_seconds(proc.pid) - at["cpu0"]
            finally:
                proc.terminate()
                proc.wait(30)
                shutil.rmtree(out, ignore_errors=True)
            ms = 1000 * used / (args.streams * args.seconds)
            per[name].append(ms)
            print(
                f"{name:>14}: {ms:6.2f} ms CPU per stream-s, p50 {s['p50_ms']:6.1f} ms, "
                f"p99 {s['p99_ms']:6.1f} ms, {s['utterances']:.0f} utterances, "
                f"{s['dropped']:.0f} dropped, client {s['client_cpu']:.2f} of its core"
                + (" (client-bound)" if s["client_bound"] else ""),
                flush=True,
            )
    for name, values in per.items():
        print(f"{name:>14}: median {float(np.median(values)):.2f} ms CPU per stream-s")


if __name__ == "__main__":
    main()
