"""Fixtures for the server tests: a real aiohttp server on loopback and protocol helpers."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer

from benchmarks.loadgen import ws_frame
from rxaudio.server import ServerConfig, create_app, guard
from rxaudio.server.sessions import WAITS

ServerFactory = Callable[..., AbstractAsyncContextManager[TestClient[Any, Any]]]


class GuardedServer(TestServer):
    """aiohttp's test server with rxaudio's connection guard, as ``rxaudio serve`` runs it."""

    async def start_server(self, **kwargs: Any) -> None:
        await super().start_server(**kwargs)
        assert self.runner is not None
        guard(self.runner)


@pytest.fixture
def server(tmp_path: Any) -> ServerFactory:
    """``async with server(**config) as client``: a live server on 127.0.0.1 and its client."""

    @asynccontextmanager
    async def make(**kw: Any) -> AsyncIterator[TestClient[Any, Any]]:
        kw.setdefault("out_dir", str(tmp_path / "out"))
        app = create_app(ServerConfig(**kw))
        async with TestClient(GuardedServer(app, host="127.0.0.1")) as client:
            yield client

    return make


@pytest.fixture(scope="session")
def speech_pcm(speech_path: str) -> np.ndarray:
    """The bundled sample as int16 (n,) at 16 kHz."""
    x, sr = sf.read(speech_path, dtype="int16")
    assert sr == 16000
    return x


async def until(
    ws: ClientWebSocketResponse, kind: str, timeout: float = 30
) -> list[dict[str, Any]]:
    """Receive events up to and including the first of type ``kind``."""
    got: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive_json(timeout=timeout)
        got.append(msg)
        if msg["type"] == kind:
            return got


async def start(ws: ClientWebSocketResponse, **fields: Any) -> dict[str, Any]:
    """Read ``hello``, send ``start`` (16 kHz mono int16 unless told), return ``started``."""
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello"
    msg = {"type": "start", "version": 1, "sample_rate": 16000, "channels": 1, "format": "int16"}
    msg.update(fields)
    await ws.send_json(msg)
    started = (await until(ws, "started"))[-1]
    return started


async def send_audio(ws: ClientWebSocketResponse, data: np.ndarray, block: int = 2048) -> None:
    """Send interleaved samples (int16 or float32 array, shape (n,) or (n, ch)) in blocks."""
    for i in range(0, data.shape[0], block):
        await ws.send_bytes(np.ascontiguousarray(data[i : i + block]).tobytes())


def scrape(metrics: Any, name: str, **labels: str) -> float:
    """The value of one ``/metrics`` line of ``metrics`` (a ``ServerMetrics``), read as a
    scraper reads it: its exposition parsed by prometheus-client's parser (``KeyError`` when no
    such line), e.g. ``scrape(m, "rxaudio_limit_reached_total", limit="connections")``."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise KeyError(f"no line {name} {labels} in the exposition")


@pytest.fixture
def metric() -> Callable[..., float]:
    """``metric(server_metrics, name, **labels)``: one exposed value, parsed from /metrics."""
    return scrape


async def error(ws: ClientWebSocketResponse, code: str, fragment: str = "") -> dict[str, Any]:
    """Read until an ``error`` with ``code`` (and ``fragment`` in its message)."""
    while True:
        ev = await ws.receive_json(timeout=30)
        if ev["type"] == "error" and ev["code"] == code and fragment in ev["message"]:
            return dict(ev)


def streams(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A session's events as its two ordered streams (docs/protocol.md, "Order"): the display
    events, and those that wait for utterance files (``WAITS``: numbered speech events,
    ``stats``, ``stopped``, errors). Each is in order; between the two an ``utterance`` may
    come after display events of later windows."""
    return (
        [e for e in events if e["type"] not in WAITS],
        [e for e in events if e["type"] in WAITS],
    )


class Proto:
    """The helpers above, handed to tests as a fixture (test folders are not packages)."""

    until = staticmethod(until)
    start = staticmethod(start)
    send_audio = staticmethod(send_audio)
    error = staticmethod(error)
    streams = staticmethod(streams)


class Wire:
    """A raw WebSocket client on blocking sockets: one that can refuse to read, or reset in the
    middle of the upgrade (what aiohttp's client never does)."""

    frame = staticmethod(ws_frame)  # one masked client frame: frame(opcode, payload)

    @staticmethod
    def upgrade(
        port: int, *, rcvbuf: int | None = None, host: str | None = None, path: str = "/ws"
    ) -> socket.socket:
        """A socket that has sent a WebSocket upgrade request (the answer is left unread)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        return s

    @staticmethod
    def read_head(s: socket.socket) -> bytes:
        """Bytes up to the end of a response head (or of the stream)."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    @staticmethod
    def get(port: int, path: str) -> str:
        """The body of a plain GET on 127.0.0.1."""
        from urllib.request import urlopen

        with urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return str(r.read().decode())


@pytest.fixture
def wire() -> type[Wire]:
    """The raw client: ``wire.upgrade``, ``wire.frame``, ``wire.read_head``, ``wire.get``."""
    return Wire


@pytest.fixture
def proto() -> type[Proto]:
    """Protocol helpers: ``proto.start``, ``proto.until``, ``proto.send_audio``."""
    return Proto
