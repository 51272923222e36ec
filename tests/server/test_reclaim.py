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
    server: Any, proto: Any, speech_pcm: np.ndarray, no_automatic_gc: None, metric: Any
) -> None:
    # With the automatic collector off, the session and its connection are freed when they end
    # (they break their own reference cycles); the reclaimer's run that follows finds them
    # gone, so it trims the heap without a full collection (a pause of every session).
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
            if session() is None and conn() is None and hub.reclaim.runs >= 1:
                break
            await asyncio.sleep(0.05)
        assert session() is None, "the ended session is still alive"
        assert conn() is None, "the closed connection is still alive"
        assert hub.reclaim.runs >= 1
        assert hub.reclaim.collections == 0  # nothing was left for the collector
        # each run's pause is in /metrics, and the collections (none)
        assert metric(hub.metrics, "rxaudio_reclaim_seconds_count") == hub.reclaim.runs
        assert metric(hub.metrics, "rxaudio_reclaim_seconds_sum") > 0
        assert metric(hub.metrics, "rxaudio_reclaim_collections_total") == 0
        assert not any(type(o) is Connection for o in gc.get_objects())


async def test_reclaimer_collects_only_when_what_ended_is_still_alive() -> None:
    loop = asyncio.get_running_loop()
    calls: list[str] = []
    r = Reclaimer(
        loop,
        delay_s=0.0,
        interval_s=0.0,
        collect=lambda: calls.append("collect"),
        trim=lambda: calls.append("trim"),
    )

    class Ended:
        pass

    gone = Ended()
    r.soon(gone)
    del gone  # freed by reference counting: nothing to collect
    r.run()
    assert calls == ["trim"] and r.collections == 0
    kept = Ended()
    kept.me = kept  # type: ignore[attr-defined]  # a reference cycle keeps it alive
    r.soon(kept)
    del kept
    r.run()
    assert calls == ["trim", "collect", "trim"] and r.collections == 1
    r.run()  # what was watched is forgotten after a run
    assert calls[-1] == "trim" and r.collections == 1
    r.soon()  # an end of something unknown: collect to be sure
    r.run()
    assert r.collections == 2


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


@pytest.mark.parametrize(
    ("rate", "channels", "events"),
    [
        (16000, 1, ["level", "vad", "spectrogram"]),  # every event, no conversion
        (48000, 2, ["vad"]),  # phase 1 converts (conform) before reframing
    ],
)
async def test_an_ended_session_is_freed_by_reference_counting_alone(
    server: Any,
    proto: Any,
    speech_pcm: np.ndarray,
    no_automatic_gc: None,
    rate: int,
    channels: int,
    events: list[str],
) -> None:
    # A session breaks its own reference cycles when it ends (its subscriptions, the fused
    # chain's closures), so its memory (the pre-roll audio above all) comes back at once,
    # without a cyclic collection: the reclaimer is kept from running here.
    async with server() as client:
        hub = client.server.app[HUB]
        assert hub.reclaim is not None
        hub.reclaim.delay_s = hub.reclaim.interval_s = 3600.0
        async with client.ws_connect("/ws") as ws:
            sid = (
                await proto.start(
                    ws, sample_rate=rate, channels=channels, options={"events": events}
                )
            )["session"]
            session = weakref.ref(hub.sessions[sid])
            pcm = np.repeat(speech_pcm[: 4 * 16000], rate // 16000)
            pcm = np.repeat(pcm[:, None], channels, axis=1)
            await proto.send_audio(ws, pcm)
            await ws.send_json({"type": "stop"})
            await proto.until(ws, "stopped")
            assert sid not in hub.sessions
            for _ in range(100):  # the batcher's last round and the handler's exit
                if session() is None:
                    break
                await asyncio.sleep(0.02)
            assert session() is None, _holders(session())
        assert hub.reclaim.runs == 0


def _holders(obj: Any) -> str:
    """What still refers to ``obj`` (the failure message names the cycle to break)."""
    return "the ended session is still alive, held by " + ", ".join(
        sorted({type(r).__qualname__ for r in gc.get_referrers(obj)})
    )


async def test_a_session_whose_client_vanished_is_freed_without_a_collection(
    server: Any, proto: Any, speech_pcm: np.ndarray, no_automatic_gc: None
) -> None:
    # the other common end: the connection drops mid-utterance (no stop) and, with no grace,
    # the session ends at once; its open utterance is flushed and it frees itself
    async with server(grace_s=0.0) as client:
        hub = client.server.app[HUB]
        assert hub.reclaim is not None
        hub.reclaim.delay_s = hub.reclaim.interval_s = 0.05
        async with client.ws_connect("/ws") as ws:
            sid = (await proto.start(ws))["session"]
            session = weakref.ref(hub.sessions[sid])
            await proto.send_audio(ws, speech_pcm[: int(2.2 * 16000)])
            await proto.until(ws, "speech_start")
        for _ in range(200):
            if session() is None and hub.reclaim.runs >= 1:
                break
            await asyncio.sleep(0.05)
        assert sid not in hub.sessions
        assert session() is None, _holders(session())
        assert hub.reclaim.collections == 0
