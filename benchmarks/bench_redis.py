"""Scale-out through Redis Streams: utterances per second with 1 and 2 worker processes against
the same work in-process, and the latency a worker adds from utterance to result at the client.

Per entry the workers run ``redis_src emit=EMIT ! PIPELINE`` (default: MFCCs with deltas to
an NPZ per entry; ``--emit item --pipeline transcribe`` for speech recognition).

Throughput: ``--utterances`` utterances (the bundled sample's, repeated) are published to a
fresh stream (16-bit audio in the entries) while ``rxaudio worker`` processes run
``redis_src emit=audio ! PIPELINE`` over it; the time runs from the first entry published to
the last result in the results stream. The reference runs the very same per-entry pipeline on
the same utterances in this process (``StreamWorker.run_entry``: no Redis). Ratio above 1:
faster than in-process.

Latency: ``rxaudio serve --redis`` and one worker; ``--clients`` clients stream the sample in
real time (plus 2 s of silence) and time, for each utterance, from its ``utterance`` event to
the ``result`` event the worker's output became. This is the added latency: the worker's
queue, its pipeline, two Redis hops and the relay.

A redis-server is started on a free loopback port in a temporary folder and stopped at the
end. Machine-dependent in absolute terms; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

PIPELINE = "mfcc deltas=2 ! features location={dir}/{{id}}.npz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        sys.exit("bench_redis: redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return proc, f"redis://127.0.0.1:{port}/0"
        except redis.exceptions.RedisError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("bench_redis: redis-server did not start")


def utterances(n: int) -> list[Any]:
    from rxaudio.data import speech_sample
    from rxaudio.frames import Utterance
    from rxaudio.pipeline.launch import parse_launch

    cut: list[Utterance] = []
    done = threading.Event()
    parse_launch(
        f"file location={speech_sample()} ! vad ! hysteresis ! buffer_utterance"
    ).observable().subscribe(
        lambda u: cut.append(u) if isinstance(u, Utterance) else None, None, done.set
    )
    done.wait()
    return [cut[k % len(cut)] for k in range(n)]


def quantized(u: Any) -> Any:
    from rxaudio.frames import AudioFrame

    pcm = np.frombuffer(u.to_frame().to_pcm16(), dtype="<i2").reshape(u.samples.shape)
    return AudioFrame(pcm.astype(np.float32) / np.float32(32768.0), u.sample_rate, u.audio_start)


def in_process(utts: list[Any], tail: str, emit: str) -> float:
    """Seconds for the per-entry pipeline over every utterance, in this process."""
    from rxaudio.pipeline.worker import StreamWorker
    from rxaudio.sources import StreamEntry

    w = StreamWorker(f"redis_src emit={emit} ! {tail}")

    def item(u: Any) -> Any:
        frame = quantized(u)  # what the entry's 16-bit audio decodes to
        if emit == "audio":
            return frame
        return type(u)(frame.samples, u.sample_rate, u.start, u.end, u.audio_start,
                       u.audio_start + frame.n, u.reason)  # fmt: skip

    entries = [StreamEntry(f"ref-{k}", item(u), {}) for k, u in enumerate(utts)]
    t0 = time.perf_counter()
    for e in entries:
        w.run_entry(e)
    return time.perf_counter() - t0


def worker(url: str, stream: str, name: str, tail: str, emit: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "worker", "--redis", url]
    cmd += ["--stream", stream, "--group", "bench", "--consumer", name, "--status-every", "0"]
    cmd += ["--pipeline", f"redis_src emit={emit} ! {tail}"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    line = p.stderr.readline()  # "reading ..." once connected: the worker is ready
    assert "reading" in line, line
    return p


def through_redis(url: str, utts: list[Any], workers: int, tail: str, emit: str, run: str) -> float:
    """Seconds from the first entry published to the last result, with ``workers`` workers."""
    import redis
    from reactivex.subject import Subject

    from rxaudio.sinks import to_redis

    stream = f"bench-{run}"
    procs = [worker(url, stream, f"w{k}", tail, emit) for k in range(workers)]
    client = redis.Redis.from_url(url)
    try:
        publish: Subject[Any] = Subject()
        written = threading.Event()
        publish.pipe(to_redis(url, stream=stream)).subscribe(on_completed=written.set)
        t0 = time.perf_counter()
        for u in utts:
            publish.on_next(u)  # queued: the sink's writer thread writes it
        last, seen = time.perf_counter(), 0
        while (done := client.xlen(f"{stream}:results")) < len(utts):
            if done != seen:
                last, seen = time.perf_counter(), done
            elif time.perf_counter() - last > 60:
                dead = client.xlen(f"{stream}:dead")
                sys.exit(
                    f"bench_redis: {done} results of {len(utts)} and nothing for 60 s ({dead} "
                    "dead letters): does the pipeline emit one item per entry?"
                )
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        publish.on_completed()
        assert written.wait(60), "the publisher did not finish"
        pending = client.xpending(stream, "bench")["pending"]
        assert pending == 0, f"{pending} pending"
        return elapsed
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.communicate(timeout=60)


async def latency_client(url: str, audio: np.ndarray, lat: list[float]) -> None:
    import aiohttp

    utt_at: dict[int, float] = {}
    res_at: dict[int, float] = {}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "start", "version": 2, "sample_rate": 16000})

        async def reader() -> None:
            async for m in ws:
                msg = json.loads(m.data)
                now = time.perf_counter()
                if msg["type"] == "utterance":
                    utt_at[msg["id"]] = now
                elif msg["type"] == "result":
                    res_at[msg["utterance"]] = now
                elif msg["type"] == "stopped":
                    return

        task = asyncio.create_task(reader())
        frame, t0 = 512, time.perf_counter()
        for k in range(0, audio.shape[0], frame):
            wait = t0 + k / 16000 - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await ws.send_bytes(audio[k : k + frame].astype("<i2").tobytes())
        deadline = time.perf_counter() + 30
        while len(res_at) < len(utt_at) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(task, 30)
    missing = set(utt_at) - set(res_at)
    assert not missing, f"no result for utterances {sorted(missing)}"
    lat.extend(res_at[i] - utt_at[i] for i in utt_at)


def latency(url: str, clients: int, tail: str, emit: str, folder: str) -> list[float]:
    import soundfile as sf

    from benchmarks._util import start_server
    from rxaudio.data import speech_sample

    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.concatenate([x, np.zeros(32000, dtype=np.int16)])
    server, ws_url = start_server(
        ["--redis", url, "--out", os.path.join(folder, "serve"), "--redis-stream", "live"]
    )
    w = worker(url, "live", "lat", tail, emit)
    lat: list[float] = []

    async def go() -> None:
        await asyncio.gather(*(latency_client(ws_url, audio, lat) for _ in range(clients)))

    try:
        asyncio.run(go())
    finally:
        for p in (w, server):
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=60)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4, help="real-time clients for latency")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the median is kept")
    ap.add_argument("--pipeline", default=PIPELINE, help="per entry, after redis_src")
    ap.add_argument(
        "--emit",
        default="audio",
        choices=("audio", "item"),
        help="redis_src emit= (item: an Utterance, as transcribe takes)",
    )
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    redis_proc, url = start_redis(folder)
    try:
        out = os.path.join(folder, "out")
        os.makedirs(out)
        tail = args.pipeline.format(dir=out)
        utts = utterances(args.utterances)
        audio_s = sum(u.samples.shape[0] / u.sample_rate for u in utts)
        print(
            f"{len(utts)} utterances ({audio_s:.0f} s of audio), per entry: "
            f"redis_src emit={args.emit} ! {args.pipeline}; load average "
            f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores",
            flush=True,
        )
        rows: dict[str, list[float]] = {"in-process": [], "1 worker": [], "2 workers": []}
        for r in range(args.repeat):
            rows["in-process"].append(in_process(utts, tail, args.emit))
            rows["1 worker"].append(through_redis(url, utts, 1, tail, args.emit, f"{r}-1"))
            rows["2 workers"].append(through_redis(url, utts, 2, tail, args.emit, f"{r}-2"))
        ref = float(np.median(rows["in-process"]))
        print(f"{'':12} {'utt/s':>8} {'x in-process':>13}")
        for name, times in rows.items():
            t = float(np.median(times))
            print(f"{name:12} {len(utts) / t:8.1f} {ref / t:13.2f}")
        lat = latency(url, args.clients, tail, args.emit, folder)
        p50, p99 = np.percentile(lat, [50, 99]) * 1000
        print(
            f"utterance -> worker result at the client ({len(lat)} utterances, "
            f"{args.clients} real-time clients, 1 worker): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
