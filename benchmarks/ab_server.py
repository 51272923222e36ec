"""Servers of different trees or options side by side: rounds alternate, CPU per stream compared.

Run: ``python -m benchmarks.ab_server --variant old=../old --variant new=.:--loop=uvloop
[--streams 50] [--frame 512] [--seconds 10] [--rounds 3]``.

Each ``--variant NAME=TREE[:SERVE ARGS]`` is ``rxaudio serve`` imported from the source tree
``TREE`` (through ``PYTHONPATH``; copy a built ``_melkernel`` into a tree that has none, or its
spectrogram falls back to numpy), with extra serve arguments separated by ``:`` (``=`` inside
an argument becomes a space: ``--loop=asyncio``). Every round runs each variant once, in order,
with the same clients (``rxaudio.server.loadgen``, the bundled speech at real-time pace, full
chain with files); this machine's speed drifts, so compare within rounds. Printed per run: the
server's CPU per stream-second, p50/p99 frame-to-``vad`` latency, utterances, drops; then each
variant's median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time

import numpy as np
import soundfile as sf

from benchmarks._util import start_server
from benchmarks.bench_server import _cpu_seconds
from rxaudio.data import speech_sample
from rxaudio.server.loadgen import run_load


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
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant]
    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.resize(x, int(args.seconds * 16000))
    per: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for _ in range(args.rounds):
        for name, tree, extra in variants:
            os.environ["PYTHONPATH"] = tree
            out = tempfile.mkdtemp(prefix="rxaudio-ab-")
            proc, url = start_server(["--out", out, "--queue", "256", *extra])
            try:
                time.sleep(0.5)
                cpu0 = _cpu_seconds(proc.pid)
                res = asyncio.run(
                    run_load(url, audio, 16000, clients=args.streams, frame=args.frame, batch=True)
                )
                used = _cpu_seconds(proc.pid) - cpu0
            finally:
                proc.terminate()
                proc.wait(30)
                shutil.rmtree(out, ignore_errors=True)
            s = res.summary()
            ms = 1000 * used / (args.streams * args.seconds)
            per[name].append(ms)
            print(
                f"{name:>14}: {ms:6.2f} ms CPU per stream-s, p50 {s['p50_ms']:6.1f} ms, "
                f"p99 {s['p99_ms']:6.1f} ms, {s['utterances']:.0f} utterances, "
                f"{s['dropped']:.0f} dropped",
                flush=True,
            )
    for name, values in per.items():
        print(f"{name:>14}: median {float(np.median(values)):.2f} ms CPU per stream-s")


if __name__ == "__main__":
    main()
