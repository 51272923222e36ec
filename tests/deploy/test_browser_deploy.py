"""Real headless Chromium on a name that is not localhost (``rxaudio.test``, resolved to
127.0.0.1 by a resolver rule): over HTTPS with a self-signed certificate the page records from
the fake microphone and gets utterances; over plain HTTP it explains what fixes the microphone,
and listening to the server's source still works."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rxaudio.server import HUB, Hub, ServerConfig, create_app, guard
from rxaudio.server.tls import server_context

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _load(name: str, path: Path) -> Any:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


HERE = Path(__file__).resolve().parent
browser = _load("rxaudio_tests_e2e_browser", HERE.parent / "e2e" / "test_browser.py")
cf = _load("rxaudio_tests_deploy_conftest", HERE / "conftest.py")
NAME = cf.NAME
# the name resolves to loopback inside Chromium only; no proxy from the environment
ON_NAME = (f"--host-resolver-rules=MAP {NAME} 127.0.0.1", "--no-proxy-server")


@asynccontextmanager
async def serving(config: ServerConfig, tls: Any = None) -> AsyncIterator[tuple[Hub, int]]:
    app = create_app(config)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    guard(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app[HUB], port
    finally:
        await runner.cleanup()


async def test_https_on_a_public_name_records_and_gets_utterances(
    tmp_path: Path, certs: Any, speech_path: str
) -> None:
    fake_mic = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path}",
        "--ignore-certificate-errors",  # the test's own self-signed certificate
    )
    config = ServerConfig(out_dir=str(tmp_path / "out"), allowed_hosts=(NAME,))
    tls = server_context(str(certs.cert), str(certs.key))
    async with serving(config, tls) as (_hub, port):
        url = f"https://{NAME}:{port}/"
        async with browser.chromium(url, tmp_path / "p", *ON_NAME, *fake_mic) as dt:
            assert await dt.js("location.origin") == f"https://{NAME}:{port}"
            assert await dt.js("window.isSecureContext") is True
            assert await dt.js("document.getElementById('insecure').hidden") is True
            await dt.js("document.getElementById('start').click()")
            found = 0
            for _ in range(400):
                await asyncio.sleep(0.1)
                found = await dt.js("rxaudio.utterances.length")
                if found >= 2:
                    break
            state = json.loads(
                await dt.js("JSON.stringify({errors: rxaudio.errors, counts: rxaudio.counts})")
            )
            await dt.js("document.getElementById('stop').click()")
    assert found >= 2, state
    assert state["errors"] == [] and state["counts"].get("started") == 1, state


async def test_plain_http_on_a_public_name_explains_the_fix_and_listen_works(
    tmp_path: Path, speech_path: str
) -> None:
    config = ServerConfig(out_dir=str(tmp_path / "out"), allowed_hosts=(NAME,), source=speech_path)
    async with serving(config) as (_hub, port):
        url = f"http://{NAME}:{port}/"
        async with browser.chromium(url, tmp_path / "p", *ON_NAME) as dt:
            assert await dt.js("window.isSecureContext") is False
            assert await dt.js("document.getElementById('insecure').hidden") is False
            text = await dt.js("document.getElementById('insecure').textContent")
            for words in ("--certfile", "--keyfile", "reverse", "docs/deploy.md", f"{NAME}:{port}"):
                assert words in " ".join(text.split()), text
            assert await dt.js("document.getElementById('start').disabled") is True
            # listening to the server's source needs no microphone, so no secure context
            await dt.js("document.getElementById('listen').click()")
            found = 0
            for _ in range(400):
                await asyncio.sleep(0.1)
                found = await dt.js("rxaudio.utterances.length")
                if found >= 1:
                    break
            errors = json.loads(await dt.js("JSON.stringify(rxaudio.errors)"))
    assert found >= 1 and errors == []
