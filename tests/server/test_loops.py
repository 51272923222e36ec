"""``rxaudio serve --loop``: uvloop where installed, asyncio's loop on request; same output."""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.loadgen import run_load
from rxaudio.errors import ConfigError
from rxaudio.server import ServerConfig
from rxaudio.server.loops import loop_factory, resolve, uvloop_installed

pytestmark = pytest.mark.timeout(120)

needs_uvloop = pytest.mark.skipif(
    not uvloop_installed(), reason="uvloop has no wheel for this platform"
)


@needs_uvloop
def test_auto_is_uvloop_where_it_is_installed() -> None:
    import uvloop

    assert resolve("auto") == "uvloop"
    loop = loop_factory("auto")()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert resolve("asyncio") == "asyncio"
    loop = loop_factory("asyncio")()
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *a: Any) -> Any:
        return None if name == "uvloop" else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert resolve("auto") == "asyncio"
    assert ServerConfig(loop="auto").loop == "auto"
    with pytest.raises(ConfigError, match=r"uvloop is not installed.*pip install.*--loop asyncio"):
        ServerConfig(loop="uvloop")


def test_an_unknown_loop_is_refused_naming_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"--loop must be one of 'auto', 'uvloop', 'asyncio', got 'x'"
    ):
        ServerConfig(loop="x")


def _serve(out: Path, loop: str) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", "--loop", loop]
    proc = subprocess.Popen(
        [*cmd, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "the server did not say where it listens"
    return proc, f"http://127.0.0.1:{m.group(1)}/ws"


@needs_uvloop
async def test_both_loops_serve_the_same_events(tmp_path: Path, speech_pcm: np.ndarray) -> None:
    audio = speech_pcm[: 16000 * 4]
    seen: dict[str, list[list[tuple[int, int]]]] = {}
    for loop in ("asyncio", "uvloop"):
        proc, url = _serve(tmp_path / loop, loop)
        try:
            res = await run_load(url, audio, 16000, clients=3, frame=512, batch=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"event loop {loop}" in err
        assert all(not c.errors for c in res.clients), [c.errors for c in res.clients]
        assert [c.vad_events for c in res.clients] == [-(-audio.shape[0] // 512)] * 3
        seen[loop] = [[(u["start"], u["end"]) for u in c.utterances] for c in res.clients]
        assert all(seen[loop]), "every client gets its utterances"
    assert seen["asyncio"] == seen["uvloop"]
