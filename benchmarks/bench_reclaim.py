"""How long the server's loop pauses to give ended sessions' memory back, with many still live.

Run: ``python -m benchmarks.bench_reclaim [--streams 60] [--seconds 40] [--short 5x3]``.

``rxaudio serve`` runs pinned to CPU 0 (this process, the clients, on CPU 1). ``--streams``
clients stream the bundled speech at real-time pace for ``--seconds`` while, every few
seconds, a batch of short sessions (``--short COUNTxROUNDS``, 3 s each) starts and ends, so the
server's reclaimer runs with the long sessions live. Printed: the long clients' latency, and
from ``/metrics`` the reclaimer's runs, their total and mean pause, and how many needed a full
garbage collection (``rxaudio_reclaim_collections_total``: none when ended sessions free
themselves).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import urllib.request

import numpy as np
import soundfile as sf

from benchmarks._util import start_server
from benchmarks.loadgen import run_load
from rxaudio.data import speech_sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--short", default="5x3", help="short sessions: COUNTxROUNDS")
    args = ap.parse_args()
    count, rounds = (int(v) for v in args.short.split("x"))
    out = tempfile.mkdtemp(prefix="rxaudio-reclaim-")
    proc, url = start_server(["--out", out, "--queue", "256"])
    x, _ = sf.read(speech_sample(), dtype="int16")

    async def run() -> dict[str, float]:
        long = run_load(
            url, np.resize(x, int(16000 * args.seconds)), 16000, clients=args.streams, batch=True
        )

        async def shorts() -> None:
            for _ in range(rounds):
                await asyncio.sleep(args.seconds / (rounds + 2))
                await run_load(url, np.resize(x, 16000 * 3), 16000, clients=count, batch=True)

        res, _ = await asyncio.gather(long, shorts())
        return res.summary()

    try:
        s = asyncio.run(run())
        text = urllib.request.urlopen(url.replace("ws://", "http://")[: -len("/ws")] + "/metrics")
        metrics = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.read().decode().splitlines()
            if line.startswith("rxaudio_reclaim") and "_bucket" not in line
        }
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(out, ignore_errors=True)
    runs = metrics.get("rxaudio_reclaim_seconds_count", 0.0)
    total = metrics.get("rxaudio_reclaim_seconds_sum", 0.0)
    print(
        f"{args.streams} long sessions ({args.seconds:g} s), {count} x {rounds} short ones: "
        f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms, "
        f"dropped {s['dropped']:.0f}; reclaimer: {runs:.0f} runs, {1000 * total:.1f} ms in all "
        f"({1000 * total / max(runs, 1):.1f} ms each), "
        f"{metrics.get('rxaudio_reclaim_collections_total', float('nan')):.0f} full collections"
    )


if __name__ == "__main__":
    main()
