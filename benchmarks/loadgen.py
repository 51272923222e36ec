"""A load generator: many protocol clients streaming audio at real-time pace.

Used by the load test and ``benchmarks/bench_server.py``, and useful against a deployed server.
Each client sends ``start`` and then fixed-size int16 frames on an absolute schedule (frame
``k`` at ``t0 + k * frame / rate``: no drift), and measures, for every ``vad`` event, the time
from sending the frame that completed the event's window to receiving the event.
``run_load_raw`` does the same on raw sockets at a fraction of the client's CPU, for capacity
runs (``benchmarks/load_clients.py`` runs it in several processes).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson


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


def _ws_head(opcode: int, n: int) -> bytes:
    """A final client frame's header up to its mask key, for ``n`` payload bytes (RFC 6455 5.2)."""
    import struct

    head = bytes([0x80 | opcode])
    if n < 126:
        return head + bytes([0x80 | n])
    if n < 65536:
        return head + bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + bytes([0x80 | 127]) + struct.pack(">Q", n)


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    import os

    n = len(payload)
    head = _ws_head(opcode, n)
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
    writer.write(ws_frame(0x1, json.dumps(start).encode()))
    t0 = time.perf_counter()
    for k in range(-(-audio.shape[0] // frame)):
        wait = t0 + k * frame / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        writer.write(ws_frame(0x2, audio[k * frame : (k + 1) * frame].astype("<i2").tobytes()))
        await writer.drain()
    writer.write(ws_frame(0x8, b"\x03\xe8"))  # close 1000, without waiting for the reply
    writer.close()
    return accept


@dataclass
class LoadResult:
    """All clients of one run."""

    clients: list[ClientResult]
    wall_s: float
    cpu_s: float = 0.0  # this process's CPU time over the run (every thread), seconds

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
            "cpu_s": self.cpu_s,
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
    t0, c0 = time.perf_counter(), time.process_time()
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
    return LoadResult(list(results), time.perf_counter() - t0, time.process_time() - c0)


# --- a light client for capacity runs: raw sockets, one scheduler for every stream ------------
#
# The aiohttp client above costs a coroutine wake-up, a masking pass and a frame build per frame
# per client: at 150 streams of 32 ms frames it used 0.7 of its core, so it, not the server,
# set the limit. ``run_load_raw`` speaks the same protocol with what a capacity run needs and
# nothing more: frames are built once for the whole run (the same audio for every client,
# masked with the all-zero key, which leaves the payload as it is; RFC 6455 asks clients for
# unpredictable keys to protect intermediaries from cache poisoning, and on loopback there are
# none, while a server cannot tell one key from another), one loop
# sends every client's frames on the same absolute schedule as ``stream_client`` (client ``i``
# of ``n`` offset by ``i / n`` of a frame period), and replies are parsed from the byte stream
# with orjson, one clock read per read from the socket.

_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _zero_masked(opcode: int, payload: bytes) -> bytes:
    """One client frame masked with the all-zero key (the payload travels unchanged)."""
    return _ws_head(opcode, len(payload)) + b"\0\0\0\0" + payload


def parse_frames(buf: bytearray) -> tuple[list[tuple[int, bool, bytes]], int]:
    """Whole WebSocket frames at the front of ``buf``: ``([(opcode, fin, payload)], used)``.

    Server frames are unmasked; a masked one is unmasked here all the same. Bytes after the
    last whole frame are left for the next read (``used`` says where they start)."""
    out: list[tuple[int, bool, bytes]] = []
    pos, size = 0, len(buf)
    while size - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        n, off = b1 & 0x7F, pos + 2
        if n == 126:
            if size - off < 2:
                break
            n, off = int.from_bytes(buf[off : off + 2], "big"), off + 2
        elif n == 127:
            if size - off < 8:
                break
            n, off = int.from_bytes(buf[off : off + 8], "big"), off + 8
        key = b""
        if b1 & 0x80:
            if size - off < 4:
                break
            key, off = bytes(buf[off : off + 4]), off + 4
        if size - off < n:
            break
        payload = bytes(buf[off : off + n])
        if key:
            mask = np.resize(np.frombuffer(key, dtype=np.uint8), n)
            payload = (np.frombuffer(payload, dtype=np.uint8) ^ mask).tobytes()
        out.append((b0 & 0x0F, bool(b0 & 0x80), payload))
        pos = off + n
    return out, pos


class _RawClient(asyncio.Protocol):
    """One WebSocket connection: the upgrade, then events parsed as they arrive."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        start: dict[str, Any],
        n_frames: int,
        frame: int,
        rate: int,
        record: list[dict[str, Any]] | None,
    ) -> None:
        import base64
        import os

        self.res = ClientResult()
        self.sent_at = np.zeros(n_frames, dtype=np.float64)
        self.frame, self.rate, self.record = frame, rate, record
        self.start = start
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.partial: list[bytes] = []
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = loop.create_future()
        self.stopped: asyncio.Future[None] = loop.create_future()
        key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they write alike
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        # the future someone awaits: ``started`` until the session started, then ``stopped``
        ok = self.started.done() and not self.started.cancelled() and not self.started.exception()
        fut = self.stopped if ok else self.started
        if not fut.done():
            fut.set_exception(ConnectionError(f"connection lost: {exc or 'closed by peer'}"))

    def send_json(self, msg: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(_zero_masked(_OP_TEXT, json.dumps(msg).encode()))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[: self.buf.find(b"\r\n")]).decode("latin-1")
            del self.buf[: end + 4]
            if " 101 " not in status + " ":
                self.connection_lost(ConnectionError(f"upgrade refused: {status}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
        frames, used = parse_frames(self.buf)
        del self.buf[:used]
        for opcode, fin, payload in frames:
            if opcode == _OP_PING:
                assert self.transport is not None
                self.transport.write(_zero_masked(_OP_PONG, payload))
                continue
            if opcode in (_OP_TEXT, _OP_CONT):
                self.partial.append(payload)
                if fin:
                    self._message(orjson.loads(b"".join(self.partial)), now)
                    self.partial = []

    def _message(self, msg: Any, now: float) -> None:
        for ev in msg if isinstance(msg, list) else (msg,):  # batched: a JSON array
            kind = ev["type"]
            if not self.started.done():
                if kind == "hello":
                    self.send_json(self.start)
                elif kind == "started":
                    self.res.session = ev["session"]
                    self.started.set_result(None)
                else:
                    self.res.errors.append(ev)
                continue
            if self.record is not None:
                self.record.append(ev)
            if kind == "vad":
                self.res.vad_events += 1
                end = round(ev["end"] * self.rate)
                k = min(len(self.sent_at) - 1, max(0, math.ceil(end / self.frame) - 1))
                if self.sent_at[k] > 0:
                    self.res.latencies.append(now - self.sent_at[k])
            elif kind == "utterance":
                self.res.utterances.append(ev)
            elif kind == "stats":
                self.res.stats = ev
            elif kind == "error":
                self.res.errors.append(ev)
            elif kind == "stopped" and not self.stopped.done():
                self.stopped.set_result(None)


async def run_load_raw(
    url: str,
    audio: np.ndarray,
    rate: int,
    *,
    clients: int,
    frame: int = 1024,
    options: dict[str, Any] | None = None,
    batch: bool = False,
    phase: tuple[int, int] | None = None,
    start_at: float | Callable[[], float] | None = None,
    records: list[list[dict[str, Any]]] | None = None,
) -> LoadResult:
    """``clients`` streams of int16 mono ``audio`` at real-time pace, on raw sockets.

    The same protocol, schedule and measurements as :func:`run_load` (its ``LoadResult``), at a
    fraction of the client's CPU. ``phase=(first, total)`` says these are clients ``first`` ..
    ``first + clients - 1`` of ``total`` run by several processes (their frames interleave
    across processes as they would in one); ``start_at`` (a ``time.time()``, the same in every
    process) is when frame 0 of client 0 is due, otherwise as soon as every client has started;
    a callable is called once every client has started and returns that time (several
    processes: say "ready" and wait for the others there).
    ``records`` (one list per client) receives every event after ``started``.
    """
    from urllib.parse import urlsplit

    first, total = phase if phase is not None else (0, clients)
    if clients < 1 or not 0 <= first <= total - clients:
        raise ValueError(f"clients {first}..{first + clients - 1} are not within 0..{total - 1}")
    u = urlsplit(url)
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, u.path or "/"
    start: dict[str, Any] = {"type": "start", "version": 1, "sample_rate": rate, "format": "int16"}
    if options:
        start["options"] = options
    if batch:
        start["batch"] = True
    pcm = np.ascontiguousarray(audio, dtype="<i2")
    n_frames = -(-pcm.shape[0] // frame)
    frames = [
        _zero_masked(_OP_BINARY, pcm[k * frame : (k + 1) * frame].tobytes())
        for k in range(n_frames)
    ]
    sizes = [min(frame, pcm.shape[0] - k * frame) for k in range(n_frames)]
    loop = asyncio.get_running_loop()
    t_wall, c0 = time.perf_counter(), time.process_time()
    conns: list[_RawClient] = []
    for i in range(clients):
        rec = records[i] if records is not None else None
        _, proto = await loop.create_connection(
            lambda rec=rec: _RawClient(host, port, path, start, n_frames, frame, rate, rec),  # type: ignore[misc]
            host,
            port,
        )
        conns.append(proto)
    await asyncio.wait_for(asyncio.gather(*(c.started for c in conns)), 60)
    period = frame / rate
    if callable(start_at):
        start_at = start_at()
    if start_at is not None:
        t0 = time.perf_counter() + (start_at - time.time())
    else:
        t0 = time.perf_counter() + 0.05
    transports = [c.transport for c in conns]
    since_yield = 0
    for k in range(n_frames):
        payload = frames[k]
        for i, c in enumerate(conns):
            due = t0 + (k + (first + i) / total) * period
            now = time.perf_counter()
            if due - now > 0.001:  # sleep only when the next send is a millisecond away
                await asyncio.sleep(due - now)
                now, since_yield = time.perf_counter(), 0
            else:
                if now - due > period:
                    c.res.late_frames += 1
                since_yield += 1
                if since_yield >= 64:  # behind schedule: still let replies in now and then
                    await asyncio.sleep(0)
                    now, since_yield = time.perf_counter(), 0
            c.sent_at[k] = now
            transport = transports[i]
            assert transport is not None
            transport.write(payload)
            c.res.sent_samples += sizes[k]
    for c in conns:
        c.send_json({"type": "stop"})
    await asyncio.wait_for(asyncio.gather(*(c.stopped for c in conns)), 60)
    for c in conns:
        assert c.transport is not None
        c.transport.write(_zero_masked(_OP_CLOSE, b"\x03\xe8"))  # 1000, no wait for the reply
        c.transport.close()
    return LoadResult(
        [c.res for c in conns], time.perf_counter() - t_wall, time.process_time() - c0
    )
