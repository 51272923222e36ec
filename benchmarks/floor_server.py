"""The floor under any live server here: a WebSocket server that does only what every stream needs.

Run (``bench_server --floor`` starts it for you): ``python -m benchmarks.floor_server --port 0
[--model silero|none] [--batch-wait-ms 5]``; it prints ``http://127.0.0.1:PORT/`` once it listens.

It speaks the part of rxaudio's protocol that ``benchmarks.loadgen``'s clients use (``hello``,
``start`` -> ``started``, binary int16 frames, ``stop`` -> ``stats`` and ``stopped``, batched
events when the ``start`` asks) on the same aiohttp and event loop as ``rxaudio serve``. Per
frame it decodes the int16 samples (one numpy call) and sends a ``level`` event; per 512-sample
window it sends a ``vad`` event, with ``--model silero`` a probability from the same
:class:`~rxaudio.vad.silero.BatchedSileroScorer` the server uses, windows of every stream batched
after the same wait. There is no pipeline, no hysteresis, no files, no limits and no metrics.

What it carries per core is therefore an upper bound for any server written this way on this
machine (aiohttp, one WebSocket message per frame, onnxruntime Silero): ``--model none`` is the
cost of the messages alone, ``--model silero`` adds inference as a loaded server runs it. It is
a benchmark's reference, not a server: do not expose it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
from collections import deque
from typing import Any

import numpy as np
import orjson
from aiohttp import WSMsgType, web

WINDOW = 512
RATE = 16000
_SCALE = np.float32(2.0**-15)


class Floor:
    """Shared state: the scorer and the windows waiting for the next batch."""

    def __init__(self, model: str, wait_s: float) -> None:
        self.scorer: Any = None
        if model == "silero":
            from rxaudio.vad.silero import BatchedSileroScorer

            self.scorer = BatchedSileroScorer(RATE)
        self.wait_s = wait_s
        self.pending: deque[tuple[Stream, int, np.ndarray]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.ids = itertools.count(1)

    def add(self, stream: Stream, start: int, window: np.ndarray) -> None:
        self.pending.append((stream, start, window))
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.wait_s, self.flush)

    def flush(self) -> None:
        self.timer = None
        while self.pending:  # rounds: each stream at most once per model call
            batch: dict[int, tuple[Stream, int, np.ndarray]] = {}
            rest: deque[tuple[Stream, int, np.ndarray]] = deque()
            for item in self.pending:
                h = item[0].handle
                if h in batch:
                    rest.append(item)
                else:
                    batch[h] = item
            self.pending = rest
            if self.scorer is not None:
                probs = self.scorer.score_batch({h: w for h, (_, _, w) in batch.items()})
            else:
                probs = dict.fromkeys(batch, 0.0)
            for h, (stream, start, _) in batch.items():
                stream.send(
                    {
                        "type": "vad",
                        "start": start / RATE,
                        "end": (start + WINDOW) / RATE,
                        "probability": round(probs[h], 4),
                    }
                )


class Stream:
    """One connection's stream: its reframing remainder, its handle and its outgoing queue."""

    def __init__(self, floor: Floor, ws: web.WebSocketResponse, batch: bool) -> None:
        self.floor = floor
        self.ws = ws
        self.batch = batch
        self.handle = floor.scorer.register() if floor.scorer is not None else next(floor.ids)
        self.rest = np.zeros(0, dtype=np.float32)
        self.received = 0
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()

    def send(self, event: dict[str, Any]) -> None:
        self.queue.append(orjson.dumps(event).decode())  # as rxaudio serve encodes
        self.wake.set()

    def feed(self, data: bytes) -> None:
        x = np.multiply(np.frombuffer(data, dtype="<i2"), _SCALE, dtype=np.float32)
        rms = math.sqrt(float(np.dot(x, x)) / x.size)
        peak = max(float(x.max()), -float(x.min()))
        self.send(
            {
                "type": "level",
                "start": self.received / RATE,
                "rms_db": round(20 * math.log10(max(rms, 1e-10)), 2),
                "peak_db": round(20 * math.log10(max(peak, 1e-10)), 2),
            }
        )
        buf = np.concatenate((self.rest, x)) if self.rest.size else x
        first = self.received - self.rest.size
        n = buf.size // WINDOW
        for k in range(n):
            self.floor.add(self, first + k * WINDOW, buf[k * WINDOW : (k + 1) * WINDOW])
        self.rest = buf[n * WINDOW :].copy()
        self.received += x.size

    async def sender(self) -> None:
        q = self.queue
        while True:
            while q:
                if self.batch and len(q) > 1:
                    payload = "[" + ",".join(q) + "]"
                    q.clear()
                else:
                    payload = q.popleft()
                await self.ws.send_str(payload)
            self.wake.clear()
            await self.wake.wait()


async def websocket(request: web.Request) -> web.StreamResponse:
    floor: Floor = request.app["floor"]
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    await ws.send_str(json.dumps({"type": "hello", "server": "floor"}))
    stream: Stream | None = None
    task: asyncio.Task[None] | None = None
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and stream is not None:
                stream.feed(msg.data)
            elif msg.type == WSMsgType.TEXT:
                m = json.loads(msg.data)
                if m.get("type") == "start":
                    stream = Stream(floor, ws, bool(m.get("batch", False)))
                    task = asyncio.create_task(stream.sender())
                    stream.send({"type": "started", "session": f"floor-{stream.handle}"})
                elif m.get("type") == "stop" and stream is not None:
                    while floor.pending:
                        await asyncio.sleep(floor.wait_s)
                    stream.send({"type": "stats", "received": stream.received, "dropped": 0})
                    stream.send({"type": "stopped"})
            await asyncio.sleep(0)  # one message per connection per turn, as rxaudio serve does
    finally:
        if task is not None:
            while stream is not None and stream.queue and not ws.closed:
                await asyncio.sleep(0.005)
            task.cancel()
        if stream is not None and floor.scorer is not None:
            floor.scorer.unregister(stream.handle)
    return ws


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", choices=("silero", "none"), default="silero")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--loop", default="auto", help="as rxaudio serve --loop")
    args = ap.parse_args()
    from rxaudio.server.loops import run

    async def serve() -> None:
        app = web.Application()
        app["floor"] = Floor(args.model, args.batch_wait_ms / 1000.0)
        app.router.add_get("/ws", websocket)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"http://127.0.0.1:{port}/", flush=True)
        await asyncio.Event().wait()

    run(serve(), args.loop)


if __name__ == "__main__":
    main()
