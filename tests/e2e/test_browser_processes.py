"""The page against ``rxaudio serve --processes 2``: it resumes on the worker's own port.

Real processes, real headless Chromium with the fake microphone. The worker holding the page's
session is stopped (SIGSTOP) until the page's own keep-alive gives the connection up (no pong
for 15 s); the page then reconnects to the ``resume_url`` of its ``started`` and, once the
worker goes on, resumes the session there with every captured sample reaching it once. Had it
reconnected to the main port, the supervisor would have handed it to the other worker (the
stopped one takes nothing), which answers ``wrong_process``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load(name: str, file: str) -> ModuleType:
    """A sibling module loaded by path (test folders are not packages here)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


browser = _load("rxaudio_tests_browser", "test_browser.py")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _listening_on(port: int, pids: list[int]) -> int:
    """Which of ``pids`` holds the socket listening on ``port`` (from ``/proc/net/tcp``)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "0A":  # LISTEN
            inode = f[9]
    assert inode is not None, f"nothing listens on {port}"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"none of {pids} listens on {port}")


@pytest.mark.skipif(not os.path.exists(browser.CHROMIUM), reason="Debian chromium is missing")
async def test_the_page_resumes_on_its_workers_port(tmp_path: Any, speech_path: str) -> None:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--processes", "2", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "out"), "--backend", "energy", "--grace", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = None
    try:
        assert proc.stdout is not None
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        assert m, "the supervisor did not say where it listens"
        url = f"http://127.0.0.1:{m.group(1)}/"
        fake_mic = (
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech_path}",
        )
        async with browser.chromium(url, tmp_path / "p", *fake_mic) as dt:
            await dt.js("document.getElementById('start').click()")
            for _ in range(300):  # streaming: a session and its resume URL, 2 s of audio
                await asyncio.sleep(0.1)
                if await dt.js("!!rxaudio.resumeUrl && rxaudio.sent > 2 * rxaudio.rate"):
                    break
            else:
                raise AssertionError("the page did not start streaming")
            session = await dt.js("rxaudio.session")
            resume = await dt.js("rxaudio.resumeUrl")
            port = int(re.fullmatch(r"ws://127\.0\.0\.1:(\d+)/ws\?session=.+", resume).group(1))
            workers = [k for k in _children(proc.pid) if k != proc.pid]
            stopped = _listening_on(port, [w for w in workers if _is_worker(w)])
            os.kill(stopped, signal.SIGSTOP)
            for _ in range(600):  # the page's keep-alive gives up after 15 s without a pong
                await asyncio.sleep(0.1)
                if await dt.js("rxaudio.reconnects") >= 1:
                    break
            else:
                raise AssertionError("the page did not notice the stopped worker")
            await asyncio.sleep(1.0)  # its reconnect is under way (to the resume URL)
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            for _ in range(300):
                await asyncio.sleep(0.1)
                if await dt.js("(rxaudio.counts.started || 0) >= 2 && rxaudio.live"):
                    break
            else:
                raise AssertionError("the page did not resume")
            await asyncio.sleep(1.0)  # a little more audio after the resume
            after = json.loads(
                await dt.js(
                    "JSON.stringify({session: rxaudio.session, resent: rxaudio.resent,"
                    " resumeOk: rxaudio.resumeOk, started: rxaudio.counts.started})"
                )
            )
            await dt.js("document.getElementById('stop').click()")
            for _ in range(100):
                await asyncio.sleep(0.05)
                if await dt.js("rxaudio.stoppedReceived !== null"):
                    break
            state = json.loads(
                await dt.js(
                    "JSON.stringify({errors: rxaudio.errors, sent: rxaudio.sent,"
                    " got: rxaudio.stoppedReceived})"
                )
            )
        assert state["errors"] == [], state["errors"]  # no wrong_process, no gap
        # the same session, resumed on the resume URL (never given up), audio re-sent
        assert after["session"] == session and after["resumeOk"] is True, after
        assert after["started"] == 2 and after["resent"] > 0, after
        assert state["got"] == state["sent"]  # every captured sample reached it once
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` is a worker (its command line: multiprocessing's spawn)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
