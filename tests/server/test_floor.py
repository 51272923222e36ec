"""``benchmarks/floor_server.py``, the reference server of ``bench_server --floor``.

Its capacity is only meaningful if it does the work it claims: every stream gets a ``level``
event per frame and a ``vad`` event per window, with Silero's probabilities (the same as the
library's scorer on the same audio), batched or not, through ``loadgen``'s real clients.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from benchmarks.loadgen import stream_client
from rxaudio.vad.silero import SileroOnnx

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _start(model: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_server", "--port", "0", "--model", model],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "floor server did not start"
    return proc, f"http://127.0.0.1:{m.group(1)}/ws"


async def _collect(url: str, audio: np.ndarray, batch: bool, n: int) -> list[list[dict[str, Any]]]:
    from aiohttp import ClientSession

    got: list[list[dict[str, Any]]] = [[] for _ in range(n)]

    async with ClientSession() as http:
        results = await asyncio.gather(
            *(
                stream_client(http, url, audio, 16000, frame=800, batch=batch, record=got[i])
                for i in range(n)
            )
        )
    for r in results:
        assert not r.errors
        assert r.stats["received"] == audio.shape[0]
    return got


@pytest.mark.parametrize("batch", [False, True])
async def test_floor_sends_every_event_with_silero_probabilities(
    speech_pcm: np.ndarray, batch: bool
) -> None:
    audio = speech_pcm[: 16000 * 2]  # 2 s: 40 frames of 800 samples, 62 whole windows
    proc, url = _start("silero")
    try:
        streams = await _collect(url, audio, batch, 3)
    finally:
        proc.terminate()
        proc.wait(30)
    ref = SileroOnnx(16000)
    x = audio.astype(np.float32) / 32768.0
    want = [ref.score(x[k * 512 : (k + 1) * 512]) for k in range(audio.shape[0] // 512)]
    for events in streams:
        levels = [e for e in events if e["type"] == "level"]
        vads = [e for e in events if e["type"] == "vad"]
        assert len(levels) == 40
        assert [round(v["start"] * 16000) for v in vads] == [k * 512 for k in range(len(want))]
        np.testing.assert_allclose([v["probability"] for v in vads], want, atol=1e-4)
