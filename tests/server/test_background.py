"""The server on a background thread, fed by an outside source (what ``rxaudio run`` does)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientSession

from rxaudio.errors import RxAudioError
from rxaudio.frames import AudioFrame
from rxaudio.server import ServerConfig
from rxaudio.server.background import BackgroundServer

N = 160 * 512  # samples fed (5.1 s)


async def test_background_server_serves_an_external_shared_source(
    tmp_path: Any, speech_pcm: np.ndarray
) -> None:
    srv = BackgroundServer(ServerConfig(out_dir=str(tmp_path)), port=0)
    url = srv.start()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    try:
        async with ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 200 and "rxaudio" in await r.text()
            x = speech_pcm.astype(np.float32) / 32768
            srv.feed(AudioFrame.from_array(x[:512], 16000))  # creates the shared session
            await asyncio.sleep(0.2)
            async with http.ws_connect(url + "ws") as ws:
                hello = await ws.receive_json()
                assert "listen" in hello["modes"]
                await ws.send_json({"type": "listen"})
                started = await ws.receive_json()
                assert started["listen"] is True
                for i in range(512, N, 512):  # from "another thread" (this one)
                    srv.feed(AudioFrame.from_array(x[i : i + 512], 16000, i))
                kinds: set[str] = set()
                while "speech_start" not in kinds:
                    kinds.add((await ws.receive_json(timeout=10))["type"])
                assert {"level", "vad"} <= kinds
    finally:
        srv.stop()
    (shared,) = list(tmp_path.iterdir())
    log = [json.loads(line) for line in (shared / "events.jsonl").read_text().splitlines()]
    assert log[-1]["type"] == "closed" and log[-1]["received"] == N
    assert any(r["type"] == "utterance" for r in log)


def test_background_server_moves_to_a_free_port_when_asked(tmp_path: Any) -> None:
    first = BackgroundServer(ServerConfig(out_dir=str(tmp_path / "a")), port=0)
    url = first.start()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        taken = BackgroundServer(ServerConfig(out_dir=str(tmp_path / "b")), port=port)
        with pytest.raises(RxAudioError, match="could not start"):
            taken.start()
        second = BackgroundServer(
            ServerConfig(out_dir=str(tmp_path / "c")), port=port, any_port=True
        )
        other = second.start()
        assert second.moved and other != url
        second.stop()
    finally:
        first.stop()


def test_wait_returns_on_seconds_or_sigterm(tmp_path: Any) -> None:
    import os
    import signal
    import threading

    srv = BackgroundServer(ServerConfig(out_dir=str(tmp_path)), port=0)
    srv.start()
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert srv.wait(0.05) == "seconds"
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        assert srv.wait(None) == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) is before  # the old handler is back
    finally:
        srv.stop()


def test_wait_returns_on_sigint_even_when_the_parent_left_it_ignored(tmp_path: Any) -> None:
    # `rxaudio run` after the sample ended waits here; started as a script's background job
    # SIGINT is ignored on entry and a KeyboardInterrupt never comes: the signal must still
    # end the wait (a bounded wait, so the old code fails with "seconds" instead of hanging)
    import os
    import signal
    import threading

    srv = BackgroundServer(ServerConfig(out_dir=str(tmp_path)), port=0)
    srv.start()
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert srv.wait(10) == "SIGINT"
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # the old handler is back
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert srv.wait(None) == "SIGINT"  # a stop request, never a KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, before)
        srv.stop()


def test_shared_session_reopens_at_the_first_frames_format(tmp_path: Any) -> None:
    import time

    srv = BackgroundServer(ServerConfig(out_dir=str(tmp_path)), port=0)  # opens at 16 kHz mono
    srv.start()
    try:
        stereo = np.zeros((4410, 2), dtype=np.float32)
        srv.feed(AudioFrame(stereo, 44100, 0))
        srv.feed(AudioFrame(stereo, 44100, 4410))
        time.sleep(0.3)
    finally:
        srv.stop()
    logs = {
        d.name: [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
        for d in tmp_path.iterdir()
    }
    reasons = sorted(log[-1]["reason"] for log in logs.values())
    assert reasons == ["reopened at the source's format", "server shutdown"]
    assert sorted(log[-1]["received"] for log in logs.values()) == [0, 8820]
