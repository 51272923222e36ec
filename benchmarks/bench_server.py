"""How many real-time client streams one core carries with full pipelines.

Run: ``python -m benchmarks.bench_server [--seconds 10] [--counts 1,10,50,100,150]``.

For each stream count the server runs as ``rxaudio serve`` pinned to CPU 0 (``taskset``), this
process (the clients) on CPU 1. Every client streams the bundled speech at real-time pace in
64 ms int16 frames through the full chain (vad -> hysteresis -> buffer_utterance, level,
spectrogram, utterance WAVs and JSONL on disk). Reported per count:

* p50/p99 latency from sending the frame that completes a Silero window to receiving its
  ``vad`` event (client-side clock, loopback);
* the server's CPU use as a fraction of one core, and per stream as a ratio to real time;
* the same with ``--no-batch`` (one Silero scorer per session), the reference in the same run.

Every client asks for every event (level, vad, spectrogram) unless ``--events`` says which:
``--events level,vad --events level,vad,spectrogram`` measures issue 12's two goals (250 streams
with level and vad events, 150 with spectrograms too) side by side, each with its own capacity.

``--floor silero`` and ``--floor none`` find the same capacities for
:mod:`benchmarks.floor_server`, a server that only receives frames, sends a ``level`` event per
frame and a ``vad`` event per window (with or without batched Silero), on the same aiohttp and
loop: no pipeline, files, limits or metrics. That is the most any server sending one WebSocket
message per frame can carry here, so it says how much of a shortfall is rxaudio's and how much
the platform's.

The capacity is the largest count whose p99 stays under 100 ms with the server under one core
and nothing dropped, found separately for 32 ms (512-sample) and 64 ms (1024-sample) client
frames by trying ``--counts`` in order until one fails. CPU per stream is also given as a
multiple of batched Silero inference alone on the same audio (``bench_session.inference_cpu``),
measured in the same run: that ratio is what the server adds, and moves less from machine to
machine than the stream counts do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks._util import start_server
from rxaudio.data import speech_sample
from rxaudio.server.loadgen import run_load


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(
    out: str, batch: bool, wait_ms: float, loop: str = "auto", floor: str | None = None
) -> tuple[subprocess.Popen[str], str]:
    if floor is not None:  # the reference server: messages (and Silero) only
        args = ["--model", floor, "--batch-wait-ms", str(wait_ms), "--loop", loop]
        return start_server(args, module="benchmarks.floor_server")
    args = ["--out", out, "--queue", "256", "--batch-wait-ms", str(wait_ms), "--loop", loop]
    return start_server(args + ([] if batch else ["--no-batch"]))


def measure(
    count: int,
    seconds: float,
    batch: bool,
    audio: np.ndarray,
    wait_ms: float = 5.0,
    frame: int = 1024,
    batch_events: bool = True,
    loop: str = "auto",
    events: tuple[str, ...] | None = None,
    floor: str | None = None,
) -> dict[str, Any]:
    """One run of ``count`` real-time streams; latency percentiles and server CPU.

    ``floor`` (``"silero"`` or ``"none"``) runs :mod:`benchmarks.floor_server` in place of
    ``rxaudio serve``."""
    out = tempfile.mkdtemp(prefix="rxaudio-bench-")
    proc, url = _start_server(out, batch, wait_ms, loop, floor)
    try:
        time.sleep(0.5)
        cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
        res = asyncio.run(
            run_load(
                url,
                audio[: int(seconds * 16000)],
                16000,
                clients=count,
                frame=frame,
                batch=batch_events,
                options=None if events is None else {"events": list(events)},
            )
        )
        used = _cpu_seconds(proc.pid) - cpu0
        cpu = used / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(out, ignore_errors=True)
    s = res.summary()
    return {
        "streams": count,
        "server": "rxaudio" if floor is None else f"floor:{floor}",
        "frame_ms": 1000 * frame / 16000,
        "batch": batch,
        "p50_ms": s["p50_ms"],
        "p99_ms": s["p99_ms"],
        "server_cpu": cpu,
        # core-seconds per second of one stream's audio (all of it is processed by the end)
        "cpu_per_stream_rt": used / (count * seconds),
        "dropped": s["dropped"],
        "late_frames": s["late_frames"],
    }


def counts(text: str) -> list[int]:
    """``"10,50"`` -> ``[10, 50]``; empty or ``0`` entries are skipped (``--reference-counts 0``:
    no reference runs)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        n = int(part)
        if n < 0:
            raise SystemExit(f"stream counts must be positive, got {n}")
        if n:
            out.append(n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--counts",
        default="25,50,75,100,125,150,200,250",
        help="stream counts tried in order, per frame size, until one fails the latency goal",
    )
    ap.add_argument("--frames", default="512,1024", help="client frame sizes (samples, 16 kHz)")
    ap.add_argument("--reference-counts", default="25", help="per-session (--no-batch) runs")
    ap.add_argument("--repeat", type=int, default=2, help="runs per count; the best is kept")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="the server's batch wait")
    ap.add_argument(
        "--no-batch-events",
        action="store_true",
        help="clients do not ask for batched events (one WebSocket message per event)",
    )
    ap.add_argument("--p99-ms", type=float, default=100.0, help="the latency goal")
    ap.add_argument("--loop", default="auto", help="the server's event loop (rxaudio serve --loop)")
    ap.add_argument(
        "--events",
        action="append",
        default=None,
        help="events every client asks for, e.g. level,vad (repeatable: each set gets its own "
        "capacity; default: level,vad,spectrogram, every event)",
    )
    ap.add_argument(
        "--floor",
        action="append",
        choices=("silero", "none"),
        default=[],
        help="also find the capacity of benchmarks.floor_server (messages only, with or without "
        "batched Silero), the upper bound for any server built this way here (repeatable)",
    )
    args = ap.parse_args()
    event_sets = [tuple(e.split(",")) for e in (args.events or ["level,vad,spectrogram"])]
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.resize(x, int(args.seconds * 16000))

    def best(
        n: int,
        batch: bool,
        frame: int,
        events: tuple[str, ...] = event_sets[0],
        floor: str | None = None,
    ) -> dict[str, Any]:
        # the machine is shared: keep the run least disturbed by others (lowest p99)
        runs = [
            measure(
                n,
                args.seconds,
                batch,
                audio,
                args.batch_wait_ms,
                frame,
                not args.no_batch_events,
                args.loop,
                events,
                floor,
            )
            for _ in range(args.repeat)
        ]
        return {**min(runs, key=lambda r: r["p99_ms"]), "events": events}

    def fits(r: dict[str, Any]) -> bool:
        return bool(r["p99_ms"] <= args.p99_ms and r["server_cpu"] < 0.98 and not r["dropped"])

    rows: list[dict[str, Any]] = []
    capacity: dict[tuple[str, tuple[str, ...], float], int] = {}
    runs: list[tuple[str | None, tuple[str, ...]]] = [(None, e) for e in event_sets]
    runs += [(f, event_sets[0]) for f in args.floor]
    for floor, events in runs:
        for frame in counts(args.frames):
            for n in counts(args.counts):
                r = best(n, True, frame, events, floor)
                rows.append(r)
                if not fits(r):
                    break
                capacity[r["server"], events, r["frame_ms"]] = n
    refs = [best(n, False, 1024) for n in counts(args.reference_counts)]
    from benchmarks.bench_session import inference_cpu

    top = max((r["streams"] for r in rows), default=50)
    inference = min(inference_cpu(audio, top) for _ in range(args.repeat)) / (top * args.seconds)
    print(
        f"{'server':>12} {'events':>22} {'streams':>7} {'frame':>6} {'batch':>5} "
        f"{'p50 ms':>7} {'p99 ms':>7} "
        f"{'server cpu':>10} {'cpu ms/stream-s':>15} {'x inference':>11} {'dropped':>7} {'late':>5}"
    )
    for r in rows + refs:
        per = r["cpu_per_stream_rt"]
        print(
            f"{r['server']:>12} {','.join(r['events']):>22} {r['streams']:>7} "
            f"{r['frame_ms']:>4.0f}ms "
            f"{'yes' if r['batch'] else 'no':>5} "
            f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['server_cpu']:>10.3f} "
            f"{1000 * per:>15.2f} {per / inference:>11.2f} {r['dropped']:>7} {r['late_frames']:>5}"
        )
    print(
        f"batched Silero inference alone: {1000 * inference:.2f} ms CPU per stream-second "
        f"(batches of {top})"
    )
    for floor, events in runs:
        server = "rxaudio" if floor is None else f"floor:{floor}"
        for frame in counts(args.frames):
            ms = 1000 * frame / 16000
            got = capacity.get((server, events, ms))
            print(
                f"capacity of {server} with {','.join(events)} events at {ms:.0f} ms frames: "
                + (f"{got} streams" if got else "under the smallest count tried")
                + f" (p99 <= {args.p99_ms:.0f} ms, server under one core, nothing dropped)"
            )
    for ref in refs:
        b = next(
            (
                r
                for r in rows
                if r["streams"] == ref["streams"]
                and r["server"] == "rxaudio"
                and r["frame_ms"] == 64
                and r["events"] == event_sets[0]
            ),
            None,
        )
        if b is not None:
            ratio = b["cpu_per_stream_rt"] / ref["cpu_per_stream_rt"]
            print(f"batched / per-session CPU per stream at {ref['streams']} streams: {ratio:.2f}")


if __name__ == "__main__":
    main()
