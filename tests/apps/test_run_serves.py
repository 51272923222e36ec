"""``rxaudio run`` (``make run``) serves the live page on its source and prints the URL."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from typing import Any

from aiohttp import ClientSession


async def test_run_prints_the_page_url_and_serves_its_source(tmp_path: Any) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "run", "--sample", "--seconds", "20"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--out", str(out), "--port", "0", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    m = re.match(r"rxaudio run: page at (http://127\.0\.0\.1:\d+/)$", line.strip())
    assert m, line
    kinds: set[str] = set()
    async with ClientSession() as http, http.ws_connect(m.group(1) + "ws") as ws:
        hello = await ws.receive_json()
        assert hello["modes"] == ["client", "listen"]
        await ws.send_json({"type": "listen"})
        while "utterance" not in kinds:
            kinds.add((await ws.receive_json(timeout=15))["type"])
    assert {"started", "level", "vad", "spectrogram", "speech_start"} <= kinds
    proc.terminate()  # SIGTERM: the recording and the server stop cleanly
    rest, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "rxaudio run: wrote " in rest.decode()
    (shared,) = list((out / "serve").iterdir())
    assert list(shared.glob("utt-*.wav"))
