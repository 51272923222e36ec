"""Issue 26's measures for one or more source trees, beside the floor, in one run.

Run from this checkout (its ``benchmarks`` and clients are used for every tree)::

    python -m benchmarks.capacity --tree before=3e1b318 --tree after=. \\
        [--counts 50,100,150,200,250] [--frames 512,1024] [--seconds 10] [--repeat 1] \\
        [--client-procs 2] [--vad 5] [--json results.json]

``--tree NAME=PATH`` is a folder holding an ``rxaudio`` package (its ``rxaudio serve`` runs
from it); ``--tree NAME=REV`` is a git revision of this repository, extracted to a temporary
folder with ``git archive`` (the compiled ``_melkernel`` copied in from this checkout, or its
spectrogram would fall back to numpy). Default: ``--tree current=.``.

Capacity (the issue's definition): for each frame size (512 and 1024 samples: 32 and 64 ms),
stream counts rise in order; at each count the floor (``benchmarks.floor_server --model
silero``) and every tree still in the race run one after another with the same clients (the
bundled speech at real-time pace, ``level`` and ``vad`` events batched, ``rxaudio serve`` with
its full chain and files), so all see the same machine. A tree's capacity is the largest count
before its first run with p99 frame-to-``vad`` over 100 ms, the server over 0.98 of its core,
anything dropped or an error; a run whose load client used more than 0.8 of its core is marked
client-bound and ends the search without counting. Each tree's CPU per stream-second is given
as a multiple of the floor's at the same count (issue 26: within 1.2x at 150 streams).

``--vad N`` adds, per tree, N runs (each its own process, trees alternating) of the ``vad``
operator on live 512-sample chunks over onnxruntime called directly (issue: at most 1.1x, the
median of 5 runs) and of ``vad ! hysteresis ! buffer_utterance`` on a 2-minute file (issue: no
slower than before; compare the trees' medians in the same run), from ``benchmarks.bench_vad``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.bench_server import (
    add_client_args,
    capacity,
    capacity_line,
    counts,
    fits,
    floor_ratio,
    measure,
    table,
)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR = "floor:silero"


def parse_tree(text: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``NAME=REV`` -> ``(name, what)``; a bad form is one clear line."""
    name, sep, what = text.partition("=")
    if not sep or not name or not what:
        raise SystemExit(f"--tree wants NAME=PATH or NAME=REV, got {text!r}")
    if name == FLOOR:
        raise SystemExit(f"--tree: the name {FLOOR!r} is the floor's; choose another")
    return name, what


def materialise(what: str, tmp: str) -> str:
    """A folder holding the ``rxaudio`` package of ``what`` (a folder, or a git revision of this
    repository extracted under ``tmp``)."""
    if os.path.isdir(what):
        if not os.path.isdir(os.path.join(what, "rxaudio")):
            raise SystemExit(f"--tree: {what} holds no rxaudio package")
        return os.path.abspath(what)
    check = subprocess.run(
        ["git", "-C", HERE, "rev-parse", "--verify", "--quiet", what + "^{commit}"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        raise SystemExit(f"--tree: {what!r} is neither a folder nor a git revision of {HERE}")
    rev = check.stdout.strip()
    dest = os.path.join(tmp, rev[:12])
    os.makedirs(dest)
    archive = subprocess.run(
        ["git", "-C", HERE, "archive", rev, "rxaudio"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    for built in glob.glob(os.path.join(HERE, "rxaudio", "dsp", "_melkernel*.so")):
        target = os.path.join(dest, "rxaudio", "dsp", os.path.basename(built))
        if not os.path.exists(target):
            shutil.copy2(built, target)
    return dest


def disturbed(r: dict[str, Any], max_wait: float) -> bool:
    """The server (or the busiest client process) waited for its core over ``max_wait`` of the
    run: others' load took part of the run, and its latency is not the server's alone."""
    return bool(r.get("server_wait", 0.0) > max_wait or r.get("client_wait", 0.0) > max_wait)


def race(
    trees: list[tuple[str, str]],
    frame: int,
    stream_counts: list[int],
    args: argparse.Namespace,
    run: Any = measure,
) -> list[dict[str, Any]]:
    """Counts in order; at each, the floor (unless ``--no-floor``) and every tree not yet out.
    A tree is out after a run that fails or is client-bound; the race ends when every tree is
    (with ``--floor-to-end``, the floor goes on through every count, for its own capacity; with
    ``--keep-going`` every tree does, for its CPU ratio to the floor at every count).
    ``run`` is :func:`benchmarks.bench_server.measure` (a stand-in in tests)."""
    rows: list[dict[str, Any]] = []
    alive = {name for name, _ in trees}
    events = tuple(args.events.split(","))
    for n in stream_counts:
        if not alive and (args.no_floor or not args.floor_to_end):
            break
        order: list[tuple[str, str | None]] = [] if args.no_floor else [(FLOOR, None)]
        order += [(name, path) for name, path in trees if name in alive]
        for name, path in order:
            tries: list[dict[str, Any]] = []

            def once(n: int = n, name: str = name, path: str | None = path) -> dict[str, Any]:
                return run(
                    n,
                    args.seconds,
                    True,
                    None,
                    args.batch_wait_ms,
                    frame,
                    True,
                    "auto",
                    events,
                    "silero" if path is None else None,
                    client_procs=args.client_procs,
                    client=args.client,
                    tree=path,
                    name=name,
                )

            # the machine is shared: a run where the server waited for its core more than
            # --max-wait of the time is disturbed; run again (up to --retries more times), and
            # keep the least disturbed, then lowest-p99 run
            while len(tries) < args.repeat or (
                all(disturbed(t, args.max_wait) for t in tries)
                and len(tries) < args.repeat + args.retries
            ):
                tries.append(once())
            r = {**min(tries, key=lambda t: (disturbed(t, args.max_wait), t["p99_ms"]))}
            r.update(events=events, tries=len(tries))
            rows.append(r)
            print(table([r]).splitlines()[1], flush=True)
            out = r["client_bound"] or not fits(r, args.p99_ms)
            if name in alive and out and not args.keep_going:
                alive.discard(name)
    return rows


def vad_runs(trees: list[tuple[str, str]], runs: int) -> dict[str, list[dict[str, Any]]]:
    """``runs`` rounds of ``bench_vad --tree-worker`` per tree, alternating, each in a process
    whose ``rxaudio`` is the tree's."""
    script = os.path.join(HERE, "benchmarks", "bench_vad.py")
    got: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    for _ in range(runs):
        for name, path in trees:
            env = dict(os.environ)
            env["PYTHONPATH"] = path
            out = subprocess.run(
                [sys.executable, script, "--tree-worker"],
                cwd=path,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            got[name].append(r)
            print(
                f"{name:>14}: vad live / onnxruntime {r['pair']:.3f}x (CPU {r['pair_cpu']:.3f}x); "
                f"chain on {r['seconds']:.0f} s of file {r['chain_s']:.3f} s "
                f"({r['chain_s'] / r['direct_s']:.3f}x onnxruntime direct), "
                f"{r['utterances']:.0f} utterances",
                flush=True,
            )
    return got


def vad_summary(got: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Medians per tree. The chain's time is compared as its ratio to onnxruntime called
    directly in the same process (the machine's speed drifts between processes more than that
    ratio does), each tree's over the first tree's."""
    lines = []
    norm = {
        name: statistics.median(r["chain_s"] / r["direct_s"] for r in rs)
        for name, rs in got.items()
    }
    first = next(iter(got), None)
    for name, rs in got.items():
        pair = statistics.median(r["pair"] for r in rs)
        pair_cpu = statistics.median(r["pair_cpu"] for r in rs)
        chain = statistics.median(r["chain_s"] for r in rs)
        versus = ""
        if first is not None and name != first:
            versus = (
                f"; {norm[name] / norm[first]:.3f}x {first}'s (goal: no slower; single runs "
                "of this ratio move by about 10 % here)"
            )
        lines.append(
            f"{name}: vad operator on live 512-sample chunks {pair:.3f}x onnxruntime direct "
            f"(median of {len(rs)}; goal <= 1.1x; CPU time {pair_cpu:.3f}x); "
            f"vad ! hysteresis ! buffer_utterance on a file: median {chain:.3f} s, "
            f"{norm[name]:.3f}x onnxruntime direct{versus}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH or NAME=REV")
    ap.add_argument("--counts", default="50,100,150,200,250")
    ap.add_argument("--frames", default="512,1024", help="client frame sizes (samples, 16 kHz)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per count; the lowest p99 kept")
    ap.add_argument(
        "--max-wait",
        type=float,
        default=0.1,
        help="a run where the server or a client waited for its core more than this share of "
        "the time is disturbed (others' load) and is run again",
    )
    ap.add_argument("--retries", type=int, default=2, help="extra runs of a disturbed count")
    ap.add_argument("--events", default="level,vad", help="events every client asks for")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--p99-ms", type=float, default=100.0)
    ap.add_argument("--no-floor", action="store_true", help="no floor runs (no ratios)")
    ap.add_argument(
        "--floor-to-end",
        action="store_true",
        help="the floor runs every count, after the trees are out too (its own capacity)",
    )
    ap.add_argument(
        "--keep-going",
        action="store_true",
        help="every tree runs every count, past its capacity (CPU ratios to the floor at each)",
    )
    ap.add_argument("--vad", type=int, default=0, metavar="N", help="N runs of the vad measures")
    ap.add_argument("--no-capacity", action="store_true", help="only the vad measures")
    ap.add_argument("--json", default=None, help="also write every run here")
    add_client_args(ap)
    args = ap.parse_args(argv)
    specs = [parse_tree(t) for t in (args.tree or ["current=."])]
    if len({n for n, _ in specs}) != len(specs):
        raise SystemExit("--tree: each tree needs its own name")
    with tempfile.TemporaryDirectory(prefix="rxaudio-trees-") as tmp:
        trees = [(name, materialise(what, tmp)) for name, what in specs]
        load0 = os.getloadavg()
        print(
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average "
            + " ".join(f"{x:.2f}" for x in load0)
            + f"; {os.cpu_count()} cores; trees: "
            + ", ".join(f"{n}={w}" for n, w in specs),
            flush=True,
        )
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
        rows: list[dict[str, Any]] = []
        found: list[str] = []
        if not args.no_capacity:
            for frame in counts(args.frames):
                print(table([]), flush=True)
                part = race(trees, frame, counts(args.counts), args)
                rows += part
                for name in [FLOOR, *(n for n, _ in trees)]:
                    mine = [r for r in part if r["server"] == name]
                    if mine:
                        got, why = capacity(mine, args.p99_ms)
                        last = next(
                            (r for r in mine if r["client_bound"] or not fits(r, args.p99_ms)),
                            None,
                        )  # the run that ended the search
                        if last is not None and disturbed(last, args.max_wait):
                            why += (
                                f", a disturbed run (the server waited {last['server_wait']:.0%}"
                                f" and a client {last['client_wait']:.0%} of it for a core): "
                                "run again"
                            )
                        found.append(
                            capacity_line(
                                name, args.events, 1000 * frame / 16000, got, why, args.p99_ms
                            )
                        )
            print()
            print(table(rows))
            for line in found:
                print(line)
            for r in rows:
                ratio = floor_ratio(r, rows)
                if ratio is not None and r["streams"] == 150:
                    print(
                        f"{r['server']} at 150 streams, {r['frame_ms']:.0f} ms frames: "
                        f"{ratio:.2f}x the floor's CPU per stream-second (goal: <= 1.2x)"
                    )
        got = vad_runs(trees, args.vad) if args.vad else {}
        for line in vad_summary(got) if got else []:
            print(line)
        print(
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        )
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"trees": specs, "runs": rows, "vad": got, "load0": load0}, f, indent=1)


if __name__ == "__main__":
    main()
