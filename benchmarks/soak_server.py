"""Memory over time of a loaded server: ``rxaudio serve`` with N real-time streams for an hour.

Run: ``python -m benchmarks.soak_server [--streams 100] [--minutes 60] [--session-minutes 5]
[--png docs/img/soak_server.png]``. Not part of ``make test`` (it runs for an hour).

The server runs as ``rxaudio serve`` (pinned to CPU 0 when ``taskset`` exists; this process,
the clients, on CPU 1; ``--server-cpu``/``--client-cpu`` choose others, the same one for both
on a shared machine). ``--streams`` clients stream the bundled speech at real-time
pace in 64 ms frames through the full chain (files written), each session lasting
``--session-minutes`` and then replaced by a new one, so both long sessions and session churn
are exercised. The server's resident memory (``VmRSS``) is sampled every 10 s; per round the
clients' p50/p99 latency and any dropped events are printed. The result: RSS growth from the
5-minute mark to the end (the goal: under 5 %), and a PNG of the curve.

The 5-minute mark comes after the first turnover of sessions only when ``--session-minutes``
is under 5: with the default 5-minute sessions it is the moment the first round ends, so what
the first turnover costs (ended sessions that are not yet freed, the next round's state) is
inside the measured growth, as it should be. Each round's line gives the RSS at its end.

``--processes N`` runs ``rxaudio serve --processes N`` unpinned (the workers share the
machine's cores with the clients); the RSS is then the sum over the supervisor and its workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import threading
import time

import numpy as np
import soundfile as sf

from benchmarks._util import start_server
from benchmarks.loadgen import run_load
from rxaudio.data import speech_sample


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/PID/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its child processes in MB (``VmRSS``, summed)."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024.0 if total else float("nan")


def reclaim_collections(url: str) -> float | None:
    """The server's ``rxaudio_reclaim_collections_total`` (collections the reclaimer had to
    run because ended sessions were not freed by reference counting), from ``/metrics``."""
    import re
    import urllib.request

    try:
        base = url.split("/ws")[0].rstrip("/")
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^rxaudio_reclaim_collections_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--session-minutes", type=float, default=5.0)
    ap.add_argument("--frame", type=int, default=1024, help="samples per client frame (16 kHz)")
    ap.add_argument("--png", default=None, help="write the RSS curve here")
    ap.add_argument("--csv", default=None, help="write the samples (seconds, MB) here")
    ap.add_argument("--serve-args", default="", help="extra arguments for rxaudio serve")
    ap.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU the clients are pinned to")
    ap.add_argument(
        "--processes", type=int, default=1, help="server processes (above 1: nothing pinned)"
    )
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="rxaudio-soak-")
    procs = ["--processes", str(args.processes)] if args.processes > 1 else []
    proc, url = start_server(
        ["--out", os.path.join(out, "files"), *procs, *args.serve_args.split()],
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
        pin=args.processes == 1,
    )
    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.resize(x, int(args.session_minutes * 60 * 16000))
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            stop.wait(10.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rounds = max(1, round(args.minutes / args.session_minutes))
        for k in range(rounds):
            res = asyncio.run(run_load(url, audio, 16000, clients=args.streams, frame=args.frame))
            s = res.summary()
            print(
                f"round {k + 1}/{rounds} at {(time.monotonic() - t0) / 60:.1f} min: "
                f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, dropped {s['dropped']}, "
                f"late frames {s['late_frames']}, server RSS {rss_mb(proc.pid):.1f} MB, "
                f"reclaim collections {reclaim_collections(url)}",
                flush=True,
            )
    finally:
        stop.set()
        sampler.join()
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(out, ignore_errors=True)
    t = np.array([a for a, _ in samples])
    mb = np.array([b for _, b in samples])
    settled = mb[t >= 300.0] if (t >= 300.0).any() else mb
    growth = (settled[-1] - settled[0]) / settled[0] * 100.0
    print(
        f"RSS: {mb[0]:.1f} MB at start, {settled[0]:.1f} MB at 5 min, {mb[-1]:.1f} MB at the end "
        f"({t[-1] / 60:.1f} min): {growth:+.1f} % after the first 5 minutes; peak {mb.max():.1f} MB"
    )
    if args.csv:
        np.savetxt(args.csv, np.column_stack((t, mb)), fmt="%.1f", delimiter=",", header="s,MB")
    if args.png:
        from matplotlib.figure import Figure

        from rxaudio.io.atomic import atomic_path

        fig = Figure(figsize=(8, 3.5), dpi=100)
        ax = fig.add_subplot()
        ax.plot(t / 60.0, mb, lw=1.2)
        ax.axvline(5.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("minutes")
        ax.set_ylabel("server RSS (MB)")
        ax.set_ylim(0, mb.max() * 1.15)
        ax.set_title(
            f"rxaudio serve{f' --processes {args.processes}' if args.processes > 1 else ''}, "
            f"{args.streams} real-time streams, sessions of "
            f"{args.session_minutes:g} min: {growth:+.1f} % after 5 min"
        )
        fig.tight_layout()
        with atomic_path(args.png) as tmp:
            fig.savefig(tmp, format="png")


if __name__ == "__main__":
    main()
