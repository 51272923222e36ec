"""A load generator: many protocol clients streaming audio at real-time pace.

Used by the load test and ``benchmarks/bench_server.py``, and useful against a deployed server.
Each client sends ``start`` and then fixed-size int16 frames on an absolute schedule (frame
``k`` at ``t0 + k * frame / rate``: no drift), and measures, for every ``vad`` event, the time
from sending the frame that completed the event's window to receiving the event.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ClientResult:
    """What one client saw."""

    session: str = ""
    utterances: list[dict[str, Any]] = field(default_factory=list)
    vad_events: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    sent_samples: int = 0
    late_frames: int = 0  # frames sent more than one frame late (the generator fell behind)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` (0-100) percentile, NaN for no values."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values), q))


async def stream_client(
    session: Any,
    url: str,
    audio: np.ndarray,
    rate: int,
    *,
    frame: int = 1024,
    delay: float = 0.0,
    options: dict[str, Any] | None = None,
    batch: bool = False,
    record: list[dict[str, Any]] | None = None,
) -> ClientResult:
    """Stream int16 mono ``audio`` at real-time pace through one WebSocket; stop; collect.

    ``session`` is an ``aiohttp.ClientSession``; every event after ``started`` is appended to
    ``record`` when one is given.
    """
    from aiohttp import WSMsgType

    res = ClientResult()
    n_frames = -(-audio.shape[0] // frame)
    sent_at = np.zeros(n_frames, dtype=np.float64)
    await asyncio.sleep(delay)
    async with session.ws_connect(url, max_msg_size=0) as ws:
        hello = await ws.receive_json()
        assert hello["type"] == "hello", hello
        start = {"type": "start", "version": 1, "sample_rate": rate, "format": "int16"}
        if options:
            start["options"] = options
        if batch:
            start["batch"] = True
        await ws.send_json(start)
        while True:
            msg = await ws.receive_json()
            if msg["type"] == "started":
                res.session = msg["session"]
                break
            res.errors.append(msg)
        done = asyncio.Event()

        def on_event(msg: dict[str, Any], now: float) -> None:
            if record is not None:
                record.append(msg)
            kind = msg["type"]
            if kind == "vad":
                res.vad_events += 1
                end = round(msg["end"] * rate)
                k = min(n_frames - 1, max(0, math.ceil(end / frame) - 1))
                if sent_at[k] > 0:
                    res.latencies.append(now - sent_at[k])
            elif kind == "utterance":
                res.utterances.append(msg)
            elif kind == "stats":
                res.stats = msg
            elif kind == "error":
                res.errors.append(msg)
            elif kind == "stopped":
                done.set()

        async def reader() -> None:
            async for m in ws:
                if m.type != WSMsgType.TEXT:
                    break
                now = time.perf_counter()
                msg = json.loads(m.data)
                for ev in msg if isinstance(msg, list) else (msg,):  # batched: a JSON array
                    on_event(ev, now)
                if done.is_set():
                    return

        task = asyncio.create_task(reader())
        t0 = time.perf_counter()
        period = frame / rate
        for k in range(n_frames):
            due = t0 + k * period
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif -wait > period:
                res.late_frames += 1
            chunk = audio[k * frame : (k + 1) * frame]
            sent_at[k] = time.perf_counter()
            await ws.send_bytes(chunk.astype("<i2").tobytes())
            res.sent_samples += chunk.shape[0]
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(task, 60)
    return res


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    import os
    import struct

    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    data = np.frombuffer(payload, dtype=np.uint8) ^ np.resize(
        np.frombuffer(mask, dtype=np.uint8), n
    )
    return head + mask + data.tobytes()


async def stalled_client(
    host: str, port: int, audio: np.ndarray, rate: int, *, frame: int = 1024
) -> str:
    """A client that streams at real-time pace but never reads a byte of what it is sent.

    A raw socket with a 4 KiB receive buffer (set before connecting), a hand-made handshake and
    masked frames: nothing on this side drains the server's events, so the server's outbound
    queue for it fills and must drop, while every other client carries on. Returns the
    ``Sec-WebSocket-Accept`` header line (proof the upgrade happened).
    """
    import base64
    import os
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    if " 101 " not in head.split("\r\n")[0]:
        raise ConnectionError(f"upgrade refused: {head.splitlines()[0]}")
    accept = next(h for h in head.split("\r\n") if h.lower().startswith("sec-websocket-accept"))
    start = {"type": "start", "version": 1, "sample_rate": rate, "format": "int16"}
    writer.write(_ws_frame(0x1, json.dumps(start).encode()))
    t0 = time.perf_counter()
    for k in range(-(-audio.shape[0] // frame)):
        wait = t0 + k * frame / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        writer.write(_ws_frame(0x2, audio[k * frame : (k + 1) * frame].astype("<i2").tobytes()))
        await writer.drain()
    writer.write(_ws_frame(0x8, b"\x03\xe8"))  # close 1000, without waiting for the reply
    writer.close()
    return accept


@dataclass
class LoadResult:
    """All clients of one run."""

    clients: list[ClientResult]
    wall_s: float

    @property
    def latencies(self) -> list[float]:
        """Every reading client's frame-to-vad-event latencies, in seconds."""
        return [x for c in self.clients for x in c.latencies]

    def summary(self) -> dict[str, float]:
        """p50/p99 latency (ms), utterances, drops."""
        lat = self.latencies
        return {
            "clients": len(self.clients),
            "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "max_ms": max(lat) * 1000 if lat else math.nan,
            "utterances": sum(len(c.utterances) for c in self.clients),
            "dropped": sum(int(c.stats.get("dropped", 0)) for c in self.clients),
            "late_frames": sum(c.late_frames for c in self.clients),
            "wall_s": self.wall_s,
        }


async def run_load(
    url: str,
    audio: np.ndarray,
    rate: int,
    *,
    clients: int,
    stalled: int = 0,
    frame: int = 1024,
    options: dict[str, Any] | None = None,
    batch: bool = False,
) -> LoadResult:
    """Run ``clients`` reading clients and ``stalled`` non-reading ones, concurrently.

    Starts are spread over one frame period so frames do not all arrive at the same instant.
    """
    from aiohttp import ClientSession, TCPConnector

    period = frame / rate
    t0 = time.perf_counter()
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        tasks = [
            stream_client(
                http,
                url,
                audio,
                rate,
                frame=frame,
                delay=period * i / clients,
                options=options,
                batch=batch,
            )
            for i in range(clients)
        ]
        from urllib.parse import urlsplit

        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        stalls = [stalled_client(host, port, audio, rate, frame=frame) for _ in range(stalled)]
        results, _ = await asyncio.gather(asyncio.gather(*tasks), asyncio.gather(*stalls))
    return LoadResult(list(results), time.perf_counter() - t0)
