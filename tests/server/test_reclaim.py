"""Ended sessions give their memory back soon (rxaudio.server.reclaim): issue 12, flat memory."""

from __future__ import annotations

import asyncio
import gc
import platform
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rxaudio.server import HUB
from rxaudio.server.connection import Connection
from rxaudio.server.reclaim import Reclaimer, malloc_trim


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Python's own collector off: only an explicit ``gc.collect`` frees cycles."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def test_an_ended_session_and_its_connection_are_freed_soon(
    server: Any, proto: Any, speech_pcm: np.ndarray, no_automatic_gc: None
) -> None:
    # A session is a web of reference cycles, so only the cyclic collector frees it; a
    # long-lived one sits in the oldest generation, which Python examines rarely. With the
    # automatic collector off, the session and its connection are freed only because the
    # server collects after they end (without it both stay alive here).
    async with server() as client:
        hub = client.server.app[HUB]
        assert hub.reclaim is not None
        hub.reclaim.delay_s = 0.05
        hub.reclaim.interval_s = 0.05
        async with client.ws_connect("/ws") as ws:
            sid = (await proto.start(ws))["session"]
            session = weakref.ref(hub.sessions[sid])
            conn = weakref.ref(next(iter(hub.connections)))
            await proto.send_audio(ws, speech_pcm[: 3 * 16000])
            await ws.send_json({"type": "stop"})
            await proto.until(ws, "stopped")
        assert sid not in hub.sessions
        for _ in range(200):  # bounded wait for the scheduled run and the handler's exit
            if session() is None and conn() is None:
                break
            await asyncio.sleep(0.05)
        assert session() is None, "the ended session is still alive"
        assert conn() is None, "the closed connection is still alive"
        assert hub.reclaim.runs >= 1
        # each run's pause is in /metrics
        assert hub.metrics.value("rxaudio_reclaim_seconds_count") == hub.reclaim.runs
        assert hub.metrics.value("rxaudio_reclaim_seconds_sum") > 0
        assert not any(type(o) is Connection for o in gc.get_objects())


async def test_reclaimer_runs_once_per_burst_and_at_most_once_per_interval() -> None:
    loop = asyncio.get_running_loop()
    collected: list[float] = []
    calls: list[str] = []
    r = Reclaimer(
        loop,
        delay_s=0.01,
        interval_s=0.3,
        collect=lambda: (collected.append(loop.time()), calls.append("collect")),
        trim=lambda: calls.append("trim"),
    )
    t0 = loop.time()
    for _ in range(50):  # a turnover: many sessions end at once
        r.soon()
    while r.runs < 1:
        await asyncio.sleep(0.01)
    assert len(collected) == 1 and collected[0] >= t0 + 0.01
    assert calls == ["collect", "trim"]  # the trim follows the collection
    for _ in range(50):  # more end at once, right after the run
        r.soon()
    while r.runs < 2:
        await asyncio.sleep(0.01)
    assert len(collected) == 2 and calls == ["collect", "trim"] * 2
    assert collected[1] - collected[0] >= 0.3 - 1e-3  # the interval holds (loop time)
    r.soon()
    r.cancel()  # shutdown drops a scheduled run
    await asyncio.sleep(0.4)
    assert r.runs == 2


def test_malloc_trim_runs_on_glibc_and_is_a_no_op_elsewhere() -> None:
    assert malloc_trim() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
