"""rxaudio.server.hub: the server's state (sessions, grace, storage) and its shutdown, which
finishes while a client never reads.

Every live-server test runs a real server on 127.0.0.1, bounded in count and time, and
asserts on counts, completeness and protocol answers, never on wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from rxaudio.server import HUB

pytestmark = pytest.mark.timeout(120)


def test_sigterm_finishes_while_a_client_never_reads(
    tmp_path: Any, speech_pcm: np.ndarray, wire: Any
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "page at http://127.0.0.1:" in line, line
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        # a tiny receive buffer and no reads: the server's sends back up at once
        s = wire.upgrade(port, rcvbuf=2048)
        assert b" 101 " in wire.read_head(s)
        s.sendall(wire.frame(0x1, json.dumps({"type": "start", "sample_rate": 16000}).encode()))
        pcm = speech_pcm[: 16000 * 12]
        for i in range(0, len(pcm), 1024):
            s.sendall(wire.frame(0x2, pcm[i : i + 1024].tobytes()))
        # the server has taken every frame and cut utterances; its events are stuck behind
        # our closed window
        deadline = time.monotonic() + 60
        want = f"rxaudio_samples_processed_total {len(pcm)}\n"
        while time.monotonic() < deadline and want not in wire.get(port, "/metrics"):
            time.sleep(0.1)
        assert want in wire.get(port, "/metrics")
        assert list(out.glob("*/utt-0001.wav"))
        proc.send_signal(signal.SIGTERM)
        # documented bound: about 2 x --shutdown-timeout (2 s); without the fix 45-100 s
        proc.wait(timeout=30)
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    (session,) = [d for d in out.iterdir() if d.is_dir()]
    log = [json.loads(x) for x in (session / "events.jsonl").read_text().splitlines()]
    assert log[-1]["type"] == "closed" and log[-1]["reason"] == "server shutdown"
    assert log[-1]["received"] == len(pcm)  # every frame sent was fed before the flush
    utts = [e for e in log if e["type"] == "utterance"]
    assert utts and not list(session.glob(".*.partial"))
    for u in utts:
        info = sf.info(str(session / u["file"]))
        assert abs(info.duration - (u["audio_end"] - u["audio_start"])) < 1e-3


async def test_sessions_held_in_grace_are_bounded(server, proto):
    async with server(max_grace_sessions=2, grace_s=60) as client:
        hub = client.app[HUB]
        ids = []
        for _ in range(4):
            ws = await client.ws_connect("/ws")
            ids.append((await proto.start(ws))["session"])
            await ws.close()
        for _ in range(100):
            if len(hub.in_grace) == 2 and len(hub.sessions) == 2:
                break
            await asyncio.sleep(0.02)
        assert list(hub.in_grace) == ids[2:] and sorted(hub.sessions) == sorted(ids[2:])
        text = await (await client.get("/metrics")).text()
        assert 'rxaudio_limit_reached_total{limit="grace_sessions"} 2' in text
        assert "rxaudio_sessions_in_grace 2" in text


async def test_empty_sessions_count_in_the_storage_budget(server, proto):
    async with server() as client:
        hub = client.app[HUB]
        before = hub.budget.used
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        for _ in range(9):
            await ws.send_json({"type": "stop"})
            await proto.until(ws, "stopped")
            await ws.send_json({"type": "start", "sample_rate": 16000})
            await proto.until(ws, "started")
        assert hub.budget.used - before >= 10 * 2 * 4096  # a folder and a log each
