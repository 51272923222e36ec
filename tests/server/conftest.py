"""Fixtures for the server tests: a real aiohttp server on loopback and protocol helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer

from rxaudio.server import ServerConfig, create_app, guard

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


class Proto:
    """The helpers above, handed to tests as a fixture (test folders are not packages)."""

    until = staticmethod(until)
    start = staticmethod(start)
    send_audio = staticmethod(send_audio)


@pytest.fixture
def proto() -> type[Proto]:
    """Protocol helpers: ``proto.start``, ``proto.until``, ``proto.send_audio``."""
    return Proto
