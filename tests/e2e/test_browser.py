"""A real browser end to end: headless Chromium with a fake microphone playing known speech.

The test starts the server on 127.0.0.1, launches Debian's Chromium (no downloaded browsers)
with ``--use-file-for-fake-audio-capture`` pointing at the bundled speech sample, drives the page
over the DevTools protocol (aiohttp's WebSocket client, no Playwright), presses Start, and
checks that the server detected the sample's sentences, that the page lists the utterances, and
that their WAV files exist and hold speech. A screenshot of the page is kept under
``artifacts/browser.png``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientSession, web

from rxaudio.server import HUB, ServerConfig, create_app
from rxaudio.server.pipeline import ChainOptions

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "artifacts")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's WebSocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=30)
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    async def js(self, expr: str) -> Any:
        r = await self.call(
            "Runtime.evaluate", expression=expr, returnByValue=True, userGesture=True
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")


async def _devtools_port(proc: asyncio.subprocess.Process) -> int:
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode(errors="replace")
        if not line:
            raise RuntimeError("chromium exited before opening DevTools")
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            return int(m.group(1))


def _best_overlap(detected: list[tuple[float, float]], truth: list[tuple[float, float]]) -> float:
    """Frame IoU (10 ms) of detected vs true speech over the first pass, best time offset."""
    step = 0.01
    n = int(20.0 / step)
    t = np.zeros(n, dtype=bool)
    for a, b in truth:
        t[int(a / step) : int(b / step)] = True
    best = 0.0
    for off in np.arange(-1.0, 3.0, step):  # the fake device starts the file a little early
        d = np.zeros(n, dtype=bool)
        for a, b in detected:
            lo, hi = int((a - off) / step), int((b - off) / step)
            d[max(lo, 0) : max(min(hi, n), 0)] = True
        union = (d | t).sum()
        best = max(best, float((d & t).sum() / union) if union else 0.0)
    return best


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_browser_end_to_end(
    tmp_path: Any, speech_path: str, speech_truth: list[dict[str, float]]
) -> None:
    out = tmp_path / "out"
    app = create_app(ServerConfig(out_dir=str(out), options=ChainOptions()))
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    hub = app[HUB]
    url = f"http://127.0.0.1:{port}/"

    profile = tmp_path / "chromium-profile"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path}",
        "--remote-debugging-port=0",
        "--window-size=1000,1200",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        dport = await _devtools_port(proc)
        async with ClientSession() as http:
            targets = []
            for _ in range(100):
                async with http.get(f"http://127.0.0.1:{dport}/json") as r:
                    targets = [t for t in await r.json() if t.get("type") == "page"]
                if targets:
                    break
                await asyncio.sleep(0.1)
            async with http.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as cws:
                dt = DevTools(cws)
                for _ in range(100):  # the page connects its WebSocket and gets hello
                    if await dt.js("!!(window.rxaudio && window.rxaudio.hello)"):
                        break
                    await asyncio.sleep(0.1)
                assert await dt.js("window.rxaudio.hello.version") == 1
                await dt.js("document.getElementById('start').click()")
                # the sample is 17 s of three sentences: wait for the last one to be cut
                found = 0
                for _ in range(400):
                    await asyncio.sleep(0.1)
                    live = [s for s in hub.sessions.values() if not s.id.startswith("shared")]
                    if live and live[0].received / live[0].sample_rate > 17.5:
                        found = await dt.js("window.rxaudio.utterances.length")
                        if found >= 3:
                            break
                rate = await dt.js("window.rxaudio.rate")
                shown = await dt.js("document.querySelectorAll('#utterances li').length")
                page_utts = await dt.js("JSON.stringify(window.rxaudio.utterances)")
                errors = await dt.js("JSON.stringify(window.rxaudio.errors)")
                counts = await dt.js("JSON.stringify(window.rxaudio.counts)")
                shot = await dt.call("Page.captureScreenshot", format="png")
                png = base64.b64decode(shot["data"])
                os.makedirs(ARTIFACTS, exist_ok=True)
                with open(os.path.join(ARTIFACTS, "browser.png"), "wb") as f:
                    f.write(png)
                (tmp_path / "browser.png").write_bytes(png)
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
        await runner.cleanup()

    assert json.loads(errors) == [], errors
    counts = json.loads(counts)
    assert counts.get("level", 0) > 50 and counts.get("spectrogram", 0) > 50, counts
    assert counts.get("vad", 0) > 300 and counts.get("speech_start", 0) >= 3, counts
    assert rate in (44100, 48000)  # the page declared the AudioContext's own rate
    utts = json.loads(page_utts)
    assert found >= 3 and shown == len(utts) >= 3, (found, shown)

    # the server detected the sample's sentences (first pass of the looping fake device)
    truth = [(seg["start"], seg["end"]) for seg in speech_truth]
    first_pass = [(u["start"], u["end"]) for u in utts if u["start"] < 17.0]
    assert _best_overlap(first_pass, truth) > 0.75, (first_pass, truth)

    # their WAV files exist (closed at shutdown) and hold speech
    session_dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(session_dirs) == 1
    for u in utts:
        path = session_dirs[0] / u["file"]
        x, sr = sf.read(path, dtype="float32")
        assert sr == 16000 and x.ndim == 1
        assert abs(len(x) / sr - (u["audio_end"] - u["audio_start"])) < 0.01
        rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)
        assert rms_db > -35, (u, rms_db)
    log = [json.loads(line) for line in (session_dirs[0] / "events.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "utterance" for r in log) >= len(utts)
    assert log[-1]["type"] == "closed"
