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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import ClientSession, web

from rxaudio.server import HUB, Hub, ServerConfig, create_app, guard
from rxaudio.server.pipeline import ChainOptions
from rxaudio.server.sessions import Session

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


@asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[tuple[Hub, str]]:
    """The real server on 127.0.0.1 (a free port); yields its hub and the page URL."""
    app = create_app(config)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    guard(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app[HUB], f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium(url: str, profile: Any, *flags: str) -> AsyncIterator[DevTools]:
    """Debian's headless Chromium on ``url``, driven over the DevTools protocol."""
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
        "--remote-debugging-port=0",
        "--window-size=1000,1200",
        *flags,
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        dport = await _devtools_port(proc)
        async with ClientSession() as http:
            targets: list[dict[str, Any]] = []
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
                yield dt
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()


async def _screenshot(dt: DevTools, *paths: Any) -> None:
    shot = await dt.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    for p in paths:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(png)


async def _start_and_read_transcripts(dt: DevTools) -> list[dict[str, Any]]:
    """Press Start, then read each utterance's id and the text under it until three have
    text and "pipeline" was said (the sample is 17 s; each text follows its utterance)."""
    await dt.js("document.getElementById('start').click()")
    shown: list[dict[str, Any]] = []
    for _ in range(600):
        await asyncio.sleep(0.1)
        shown = json.loads(
            await dt.js(
                "JSON.stringify([...document.querySelectorAll('#utterances li')].map("
                "li => ({id: li.dataset.id, text: li.querySelector('.transcript')"
                ".textContent})))"
            )
        )
        said = " ".join(s["text"] for s in shown)
        if len([s for s in shown if s["text"]]) >= 3 and "pipeline" in said:
            break
    return shown


def _client_session(hub: Hub) -> Session | None:
    live = [s for s in hub.sessions.values() if not s.id.startswith("shared")]
    return live[0] if live else None


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_browser_end_to_end(
    tmp_path: Any, speech_path: str, speech_truth: list[dict[str, float]]
) -> None:
    out = tmp_path / "out"
    fake_mic = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path}",
    )
    config = ServerConfig(out_dir=str(out), options=ChainOptions())
    async with serving(config) as (hub, url), chromium(url, tmp_path / "p1", *fake_mic) as dt:
        assert await dt.js("window.rxaudio.hello.version") == 2
        await dt.js("document.getElementById('start').click()")
        # mid-way through the second sentence the network drops (server side)
        for _ in range(200):
            await asyncio.sleep(0.1)
            s = _client_session(hub)
            if s is not None and s.received / s.sample_rate > 7.0:
                break
        assert s is not None
        session_id = s.id
        for ws in [c.ws for c in hub.connections]:
            await ws.close(code=1012, message=b"test: network drop")
        # the page reconnects by itself, resumes, re-sends; the sample is 17 s long
        found = 0
        for _ in range(400):
            await asyncio.sleep(0.1)
            s = _client_session(hub)
            if s is not None and s.received / s.sample_rate > 17.5:
                found = await dt.js("window.rxaudio.utterances.length")
                if found >= 3:
                    break
        state = json.loads(
            await dt.js(
                "JSON.stringify({rate: rxaudio.rate, reconnects: rxaudio.reconnects,"
                " resent: rxaudio.resent, session: rxaudio.session, counts: rxaudio.counts,"
                " seq: rxaudio.seq, token: rxaudio.resumeToken,"
                " errors: rxaudio.errors, utts: rxaudio.utterances,"
                " shown: document.querySelectorAll('#utterances li').length})"
            )
        )
        live = _client_session(hub)
        acked = live.acked if live is not None else -1
        await _screenshot(dt, os.path.join(ARTIFACTS, "browser.png"), tmp_path / "browser.png")
        await dt.js("document.getElementById('stop').click()")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await dt.js("rxaudio.stoppedReceived !== null"):
                break
        sent = await dt.js("rxaudio.sent")
        stopped_received = await dt.js("rxaudio.stoppedReceived")

    assert state["errors"] == [], state["errors"]
    counts = state["counts"]
    assert counts.get("level", 0) > 50 and counts.get("spectrogram", 0) > 50, counts
    assert counts.get("vad", 0) > 300 and counts.get("speech_start", 0) >= 3, counts
    assert state["rate"] in (44100, 48000)  # the page declared the AudioContext's own rate
    # one reconnect, the same session resumed, and what the server lacked was re-sent:
    # every sample the page captured reached the session exactly once
    assert state["reconnects"] == 1 and state["session"] == session_id
    assert counts["started"] == 2 and state["resent"] > 0
    assert state["token"] and state["token"] not in json.dumps(state["utts"])
    # the page acknowledged the numbered speech events it holds (at most 200 ms behind)
    assert 0 < acked <= state["seq"]
    assert stopped_received == sent
    utts = state["utts"]
    assert found >= 3 and state["shown"] == len(utts) >= 3

    # the server detected the sample's sentences (first pass of the looping fake device)
    truth = [(seg["start"], seg["end"]) for seg in speech_truth]
    first_pass = [(u["start"], u["end"]) for u in utts if u["start"] < 17.0]
    assert _best_overlap(first_pass, truth) > 0.75, (first_pass, truth)

    # their WAV files exist (closed by stop) and hold speech
    d = out / session_id
    assert [p.name for p in out.iterdir()] == [session_id]
    for u in utts:
        x, sr = sf.read(d / u["file"], dtype="float32")
        assert sr == 16000 and x.ndim == 1
        assert abs(len(x) / sr - (u["audio_end"] - u["audio_start"])) < 0.01
        rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)
        assert rms_db > -35, (u, rms_db)
    log = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    assert sum(r["type"] == "utterance" for r in log) >= len(utts)
    # every speech event up to the last the page holds reached it once, across the drop
    held = [r for r in log if r.get("seq", 0) and r["seq"] <= state["seq"]]
    assert [r["id"] for r in held if r["type"] == "utterance"] == [u["id"] for u in utts]
    assert log[-1] == {"type": "closed", "reason": "client stop", "received": sent}


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (("--use-fake-device-for-media-stream", "--deny-permission-prompts"), "denied"),
        (("--use-fake-ui-for-media-stream",), "No microphone could be opened"),
    ],
    ids=["denied", "no-device"],
)
async def test_browser_microphone_problems_are_explained(
    tmp_path: Any, flags: tuple[str, ...], expect: str
) -> None:
    async with (
        serving(ServerConfig(out_dir=str(tmp_path / "out"))) as (hub, url),
        chromium(url, tmp_path / "p2", *flags) as dt,
    ):
        await dt.js("document.getElementById('start').click()")
        text = ""
        for _ in range(100):
            await asyncio.sleep(0.05)
            text = await dt.js("document.getElementById('message').textContent")
            if text:
                break
        assert expect in text, text
        assert await dt.js("document.getElementById('start').disabled") is False
        assert not [s for s in hub.sessions.values()]  # nothing was started


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_browser_listens_to_the_server_microphone(
    tmp_path: Any, virtual_mic: Any, speech: np.ndarray
) -> None:
    """The other way in: the server captures its own (virtual PulseAudio) microphone through
    one shared pipeline, and the page, a viewer, receives its events."""
    virtual_mic.loop(speech)
    out = tmp_path / "out"
    try:
        config = ServerConfig(out_dir=str(out), source="mic", device=virtual_mic.device)
        async with serving(config) as (hub, url), chromium(url, tmp_path / "p3") as dt:
            assert await dt.js("rxaudio.hello.modes.join(',')") == "client,listen"
            assert await dt.js("document.getElementById('listen').hidden") is False
            await dt.js("document.getElementById('listen').click()")
            found = 0
            # the source runs before the page listens: the first utterance may have begun
            # (its speech_start sent) before we joined, so wait for two whole ones
            for _ in range(400):
                await asyncio.sleep(0.1)
                found = await dt.js("rxaudio.utterances.length")
                if found >= 3 and await dt.js("(rxaudio.counts.speech_start || 0) >= 2"):
                    break
            counts = json.loads(await dt.js("JSON.stringify(rxaudio.counts)"))
            utts = json.loads(await dt.js("JSON.stringify(rxaudio.utterances)"))
            assert hub.shared is not None
            shared_id = hub.shared.id
    finally:
        virtual_mic.loop(None)
    assert found >= 2, counts
    assert counts["vad"] > 100 and counts["level"] > 30 and counts["speech_start"] >= 2
    for u in utts:  # the shared pipeline wrote them, and they hold speech
        x, sr = sf.read(out / shared_id / u["file"], dtype="float32")
        assert sr == 16000 and 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12) > -35


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_browser_shows_the_transcript_under_its_utterance(
    tmp_path: Any, speech_path: str
) -> None:
    """``serve --transcribe``: each utterance's recognised text appears under it on the page."""
    pytest.importorskip("pocketsphinx")
    fake_mic = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path}",
    )
    config = ServerConfig(out_dir=str(tmp_path / "out"), options=ChainOptions(transcribe={}))
    async with serving(config) as (_hub, url), chromium(url, tmp_path / "p4", *fake_mic) as dt:
        shown = await _start_and_read_transcripts(dt)
        transcripts = json.loads(await dt.js("JSON.stringify(rxaudio.transcripts)"))
        errors = json.loads(await dt.js("JSON.stringify(rxaudio.errors)"))
        await _screenshot(dt, os.path.join(ARTIFACTS, "browser-transcript.png"), tmp_path / "t.png")
        await dt.js("document.getElementById('stop').click()")
    assert errors == []
    said = " ".join(s["text"] for s in shown)
    assert "hello" in said and "pipeline" in said, shown
    by_id = {str(t["id"]): t for t in transcripts}
    for s in shown:  # the text under each utterance is its own transcript's
        if s["text"]:
            t = by_id[s["id"]]
            assert s["text"] == (t["text"] or "(no words recognised)")
            assert t["type"] == "transcript" and t["backend"] == "pocketsphinx"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
async def test_browser_shows_a_redis_workers_transcript_under_its_utterance(
    tmp_path: Any, speech_path: str, redis_server: Any
) -> None:
    """``serve --redis`` and one ``rxaudio worker`` running ``redis_src ! transcribe``: the
    worker's transcript of each utterance comes back as a ``result`` event and shows under
    the utterance on the page."""
    pytest.importorskip("pocketsphinx")
    import threading

    from rxaudio.pipeline.worker import StreamWorker

    fake_mic = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path}",
    )
    worker = StreamWorker(f"redis_src url={redis_server.url} stream=rxaudio ! transcribe")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    config = ServerConfig(out_dir=str(tmp_path / "out"), redis_url=redis_server.url)
    try:
        async with serving(config) as (_hub, url), chromium(url, tmp_path / "p5", *fake_mic) as dt:
            shown = await _start_and_read_transcripts(dt)
            results = json.loads(await dt.js("JSON.stringify(rxaudio.results)"))
            errors = json.loads(await dt.js("JSON.stringify(rxaudio.errors)"))
            await dt.js("document.getElementById('stop').click()")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    said = " ".join(s["text"] for s in shown)
    assert "hello" in said and "pipeline" in said, shown
    by_utt = {str(r["utterance"]): r for r in results}
    for s in shown:  # each text is the worker's transcript of that very utterance
        if s["text"]:
            r = by_utt[s["id"]]
            assert r["worker"] == worker.reader.consumer
            assert r["result"]["type"] == "transcript"
            assert s["text"] == (r["result"]["text"] or "(no words recognised)")
