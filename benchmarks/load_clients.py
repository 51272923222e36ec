"""Load clients in separate processes, with their own CPU measured: who was the bottleneck?

A capacity figure is only the server's if the clients kept up. Each worker process runs a share
of the streams (``benchmarks.loadgen``: raw sockets by default, or the aiohttp client),
pinned to a core other than the server's when there are enough cores, and reports what its
clients saw and its own CPU time (every thread) over its run. Their frames interleave on one
schedule across processes (a shared start time; client ``i`` of ``n`` offset by ``i / n`` of a
frame period), as they would in one process.

The client's load is the CPU its processes used on their busiest core, as a fraction of that
core (processes pinned to the same core add up; an unpinned process counts alone). A run whose
client load is over ``CLIENT_BOUND`` (0.8), or whose clients sent more than ``LATE_BOUND`` (1 %)
of their frames over a frame period late (they could not keep the schedule: on a shared machine
others may have taken their core), is *client-bound*: its latencies say as much about the
client as the server, so it does not count toward a capacity.

Worker (started by :func:`run_clients`; by hand only to debug)::

    python -m benchmarks.load_clients --url ws://127.0.0.1:PORT/ws --first 0 --count 50 \\
        --total 100 --frame 512 --seconds 10 --start-at EPOCH [--events level,vad]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

CLIENT_BOUND = 0.8  # a client core busier than this (fraction of one core) marks the run
LATE_BOUND = 0.01  # so does a run with more than this share of frames sent over a frame late


def split(total: int, procs: int) -> list[tuple[int, int]]:
    """``total`` streams over ``procs`` processes as ``(first, count)``, sizes differing by one
    at most; never an empty process (fewer processes when there are fewer streams)."""
    if total < 1 or procs < 1:
        raise ValueError(f"need at least one stream and one process, got {total} and {procs}")
    procs = min(procs, total)
    base, extra = divmod(total, procs)
    out, first = [], 0
    for p in range(procs):
        n = base + (1 if p < extra else 0)
        out.append((first, n))
        first += n
    return out


def client_cores(n_cpus: int, server_cpu: int = 0) -> list[int]:
    """The cores the clients may use: every core but the server's (all of them on one core)."""
    others = [c for c in range(n_cpus) if c != server_cpu % max(n_cpus, 1)]
    return others or [0]


def pins(procs: int, cores: list[int]) -> list[int]:
    """Round-robin: process ``p`` on ``cores[p % len(cores)]``."""
    return [cores[p % len(cores)] for p in range(procs)]


def client_load(fractions: list[float], pinned: list[int | None]) -> float:
    """The busiest client core's use, as a fraction of one core.

    ``fractions[p]`` is process ``p``'s CPU over its run (fraction of a core), ``pinned[p]`` its
    core or ``None`` when the OS placed it (then it counts alone: one process is one thread of
    Python, so more than one core of it is not what saturates it)."""
    if len(fractions) != len(pinned):
        raise ValueError("one core (or None) per process")
    per: dict[object, float] = {}
    for p, (f, core) in enumerate(zip(fractions, pinned, strict=True)):
        key: object = ("alone", p) if core is None else core
        per[key] = per.get(key, 0.0) + f
    return max(per.values(), default=0.0)


def is_client_bound(
    load: float, late: int = 0, frames: int = 0, limit: float = CLIENT_BOUND
) -> bool:
    """More than ``limit`` of a client core used, or more than ``LATE_BOUND`` of the ``frames``
    sent over a frame period late (``late``; the clients could not keep the schedule, whatever
    took their core): the client may have set the pace, not the server."""
    return load > limit or (frames > 0 and late / frames > LATE_BOUND)


def merge(parts: list[dict[str, Any]], pinned: list[int | None]) -> dict[str, Any]:
    """One run's summary from every worker's report: latency percentiles over all clients'
    frame-to-``vad`` latencies, drops, late frames, utterances, errors, and the clients' CPU
    (per process, and :func:`client_load` with the client-bound mark)."""
    lat = np.asarray([x for p in parts for x in p["latencies"]], dtype=np.float64)
    fractions = [p["cpu_s"] / p["wall_s"] if p["wall_s"] > 0 else 0.0 for p in parts]
    waits = [p.get("wait_s", 0.0) / p["wall_s"] if p["wall_s"] > 0 else 0.0 for p in parts]
    load = client_load(fractions, pinned)
    late = sum(p["late_frames"] for p in parts)
    frames = sum(p.get("frames", 0) for p in parts)
    return {
        "clients": sum(p["clients"] for p in parts),
        "p50_ms": float(np.percentile(lat, 50)) * 1000 if lat.size else math.nan,
        "p99_ms": float(np.percentile(lat, 99)) * 1000 if lat.size else math.nan,
        "vad_events": sum(p["vad_events"] for p in parts),
        "dropped": sum(p["dropped"] for p in parts),
        "late_frames": late,
        "frames": frames,
        "utterances": sum(p["utterances"] for p in parts),
        "errors": [e for p in parts for e in p["errors"]],
        "client_cpu_per_proc": fractions,
        "client_cpu": load,
        "client_wait": max(waits, default=0.0),
        "client_bound": is_client_bound(load, late, frames),
    }


def report(res: Any, wait_s: float = 0.0, frame: int = 0) -> dict[str, Any]:
    """A worker's report (JSON-ready) from a ``LoadResult``, the seconds its threads waited for
    a core meanwhile, and (``frame``: samples per frame) how many frames its clients sent."""
    return {
        "clients": len(res.clients),
        "latencies": res.latencies,
        "vad_events": sum(c.vad_events for c in res.clients),
        "dropped": sum(int(c.stats.get("dropped", 0)) for c in res.clients),
        "late_frames": sum(c.late_frames for c in res.clients),
        "frames": sum(-(-c.sent_samples // frame) for c in res.clients) if frame else 0,
        "utterances": sum(len(c.utterances) for c in res.clients),
        "errors": [e for c in res.clients for e in c.errors],
        "cpu_s": res.cpu_s,
        "wall_s": res.wall_s,
        "wait_s": wait_s,
    }


def speech(seconds: float) -> np.ndarray:
    """The bundled speech, int16, repeated to ``seconds`` at 16 kHz (what every client sends)."""
    import soundfile as sf

    from rxaudio.data import speech_sample

    x, _ = sf.read(speech_sample(), dtype="int16")
    return np.resize(x, int(seconds * 16000))


def run_clients(
    url: str,
    *,
    streams: int,
    frame: int,
    seconds: float,
    procs: int = 1,
    events: tuple[str, ...] | None = None,
    batch: bool = True,
    client: str = "raw",
    server_cpu: int = 0,
    on_start: Any = None,
) -> dict[str, Any]:
    """``streams`` real-time streams from ``procs`` worker processes; their merged summary plus
    ``start``/``end`` (``time.time()``) of the streaming, for the server's CPU window.

    ``on_start`` is called at the shared start time (read the server's CPU there)."""
    cores = client_cores(os.cpu_count() or 1, server_cpu)
    shares = split(streams, procs)
    pinned: list[int | None] = (
        pins(len(shares), cores) if shutil.which("taskset") else [None] * len(shares)
    )
    workers = []
    tmp = tempfile.mkdtemp(prefix="rxaudio-clients-")
    reports = [os.path.join(tmp, f"{p}.json") for p in range(len(shares))]
    for (first, count), core, path in zip(shares, pinned, reports, strict=True):
        cmd = [sys.executable, "-m", "benchmarks.load_clients", "--url", url, "--report", path]
        cmd += ["--first", str(first), "--count", str(count), "--total", str(streams)]
        cmd += ["--frame", str(frame), "--seconds", str(seconds), "--sync"]
        cmd += ["--client", client] + ([] if batch else ["--no-batch"])
        if events is not None:
            cmd += ["--events", ",".join(events)]
        if core is not None:
            cmd = ["taskset", "-c", str(core), *cmd]
        workers.append(
            subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env()
            )
        )
    for w in workers:  # each says "ready" once its clients have started: then one start time
        assert w.stdout is not None
        line = w.stdout.readline()
        if line.strip() != "ready":
            for v in workers:
                v.kill()
            raise RuntimeError(f"a load client did not start (said {line.strip()!r})")
    start_at = time.time() + 0.2
    for w in workers:
        assert w.stdin is not None
        w.stdin.write(f"{start_at!r}\n")
        w.stdin.flush()
    wait = start_at - time.time()
    if wait > 0:
        time.sleep(wait)
    if on_start is not None:
        on_start()
    parts = []
    try:
        for w, path in zip(workers, reports, strict=True):
            assert w.stdin is not None
            w.stdin.close()
            if w.wait(timeout=seconds + 180) != 0:
                raise RuntimeError(f"load client exited {w.returncode}")
            with open(path, encoding="utf-8") as f:
                parts.append(json.load(f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = merge(parts, pinned)
    summary.update(start=start_at, end=time.time(), procs=len(shares), pinned=pinned)
    return summary


def _env() -> dict[str, str]:
    """The workers import ``benchmarks`` and ``rxaudio`` from this tree, whatever the server's."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _worker(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="one load-client process (see the module doc)")
    ap.add_argument("--url", required=True)
    ap.add_argument("--report", default=None, help="write the JSON report here (else stdout)")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--total", type=int, default=0, help="streams in all processes (0: --count)")
    ap.add_argument("--frame", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--start-at", type=float, default=None, help="time.time() of frame 0")
    ap.add_argument(
        "--sync",
        action="store_true",
        help='print "ready" once the clients have started, then read the start time from stdin',
    )
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    ap.add_argument("--no-batch", action="store_true")
    ap.add_argument("--events", default=None, help="e.g. level,vad (default: the server's)")
    a = ap.parse_args(argv)
    from benchmarks.loadgen import run_load, run_load_raw

    audio = speech(a.seconds)
    options = None if a.events is None else {"events": a.events.split(",")}
    total = a.total or a.count

    def sync() -> float:
        print("ready", flush=True)
        return float(sys.stdin.readline())

    start_at: Any = sync if a.sync else a.start_at

    async def go() -> Any:
        if a.client == "raw":
            return await run_load_raw(
                a.url, audio, 16000, clients=a.count, frame=a.frame, options=options,
                batch=not a.no_batch, phase=(a.first, total), start_at=start_at,
            )  # fmt: skip
        at = start_at() if callable(start_at) else start_at
        if at is not None:
            await asyncio.sleep(max(0.0, at - time.time()))
        return await run_load(
            a.url, audio, 16000, clients=a.count, frame=a.frame, options=options,
            batch=not a.no_batch,
        )  # fmt: skip

    from benchmarks.bench_server import wait_seconds
    from rxaudio.server.loops import run

    w0 = wait_seconds(os.getpid())
    res = run(go(), "auto")
    text = json.dumps(report(res, wait_seconds(os.getpid()) - w0, a.frame))
    if a.report is None:
        print(text, flush=True)
    else:
        with open(a.report, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    _worker()
