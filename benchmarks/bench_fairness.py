"""Fairness: a normal real-time client alone and beside a client flooding text messages.

Run: ``python -m benchmarks.bench_fairness [--seconds 8] [--repeat 2]``.

The server runs as ``rxaudio serve`` pinned to CPU 0 (``taskset``); the normal client (this
process) and the flooder (a child process, ``nice 19``) share CPU 1. The normal client streams
the bundled speech in 32 ms int16 frames at real-time pace, sends ``stop`` and waits for
``stopped``; its completion time is measured from its first frame. Three cases, side by side in
one run, each ``--repeat`` times (the median is reported):

* alone;
* beside a flooder sending ``config`` in a tight loop with the default limits (it is closed at
  the control-rate limit, and reconnects at once, as an attacker would);
* beside the same flooder with ``--control-rate 0`` (no limit): fairness from scheduling alone,
  one message per connection per turn of the loop.

Reported: completion time, its ratio to "alone" (goal: at most 1.2), the p50/p99 latency from
sending a frame to receiving its ``vad`` event (the sensitive figure: a real-time client's
completion time hides a server that keeps up only barely), the flooder's messages
sent and connections opened, and the normal client's completeness (samples the server
received, ``vad`` events).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
import soundfile as sf

from rxaudio.data import speech_sample

FRAME = 512  # 32 ms at 16 kHz


def _start_server(out: str, extra: list[str]) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", "--out", out, *extra]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "page at" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1].split("/")[0])


async def _flood(port: int, stop_at: float, counts: Any) -> None:
    import aiohttp

    msg = '{"type":"config","options":{"threshold":0.5}}'
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < stop_at:
            try:
                async with http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    counts[1] += 1
                    await ws.receive_json()
                    await ws.send_json({"type": "start", "sample_rate": 16000})
                    while time.monotonic() < stop_at and not ws.closed:
                        await ws.send_str(msg)
                        counts[0] += 1
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                await asyncio.sleep(0)


def _flooder(port: int, seconds: float, counts: Any) -> None:
    os.nice(19)
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    asyncio.run(_flood(port, time.monotonic() + seconds, counts))


async def _normal(port: int, pcm: np.ndarray) -> tuple[float, int, int, list[float]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws,
    ):
        await ws.receive_json()
        await ws.send_json({"type": "start", "sample_rate": 16000, "format": "int16"})
        while (await ws.receive_json())["type"] != "started":
            pass
        vads = 0
        sent: dict[int, float] = {}  # frame i holds window i (512 samples each)
        lat: list[float] = []

        async def reader() -> int:
            nonlocal vads
            while True:
                ev = await ws.receive_json(timeout=120)
                if ev["type"] == "vad":
                    vads += 1
                    i = round(ev["t"] * 16000 / FRAME)
                    if i in sent:
                        lat.append(time.monotonic() - sent[i])
                if ev["type"] == "stopped":
                    return int(ev["received"])

        task = asyncio.create_task(reader())
        t0 = time.monotonic()
        for i, start in enumerate(range(0, len(pcm), FRAME)):
            delay = t0 + i * FRAME / 16000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.monotonic()
            await ws.send_bytes(pcm[start : start + FRAME].tobytes())
        await ws.send_json({"type": "stop"})
        received = await task
        return time.monotonic() - t0, received, vads, lat


def _case(pcm: np.ndarray, flood: bool, extra: list[str]) -> dict[str, float]:
    out = tempfile.mkdtemp(prefix="rxaudio-fair-")
    proc, port = _start_server(out, extra)
    counts = mp.Array("l", 2)
    child = None
    try:
        if flood:
            seconds = len(pcm) / 16000 + 30
            child = mp.Process(target=_flooder, args=(port, seconds, counts), daemon=True)
            child.start()
            time.sleep(1.0)  # the flood is on before the normal client starts
        t, received, vads, lat = asyncio.run(_normal(port, pcm))
        return {
            "time": t,
            "p50": float(np.percentile(lat, 50)) * 1000,
            "p99": float(np.percentile(lat, 99)) * 1000,
            "complete": float(received == len(pcm) and vads == -(-len(pcm) // 512)),
            "messages": float(counts[0]),
            "connections": float(counts[1]),
        }
    finally:
        if child is not None:
            child.terminate()
            child.join(5)
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="audio per normal client run")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case (median reported)")
    args = ap.parse_args(argv)
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1})
    x, sr = sf.read(speech_sample(), dtype="int16")
    assert sr == 16000
    pcm = x[: int(args.seconds * 16000)]
    cases = [
        ("alone", False, []),
        ("beside a config flood (default limits)", True, []),
        ("beside a config flood (--control-rate 0)", True, ["--control-rate", "0"]),
    ]
    rows = []
    for name, flood, extra in cases:
        runs = [_case(pcm, flood, extra) for _ in range(args.repeat)]
        rows.append((name, runs))
    base = statistics.median(r["time"] for r in rows[0][1])
    print(
        f"normal client: {args.seconds:g} s of speech in 32 ms frames, real time; median of "
        f"{args.repeat}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'case':44s} {'time s':>7s} {'ratio':>6s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'complete':>8s} {'flood msgs':>10s} "
        f"{'conns':>6s}"
    )
    for name, runs in rows:
        t = statistics.median(r["time"] for r in runs)
        complete = all(r["complete"] for r in runs)
        msgs = statistics.median(r["messages"] for r in runs)
        conns = statistics.median(r["connections"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        print(
            f"{name:44s} {t:7.2f} {t / base:6.2f} {p50:7.1f} {p99:7.1f} {complete!s:>8s} "
            f"{msgs:10.0f} {conns:6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
