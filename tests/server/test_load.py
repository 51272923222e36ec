"""Bounded load on loopback: 50 clients stream real speech at real-time pace for 20 s.

The server runs as ``rxaudio serve`` in its own process (one of this machine's two cores; the
clients take the other). Every client must get every one of its utterances, reported and
written, and every ``vad`` event, while one extra client that never reads anything forces the
server to drop *its* events (counted) without touching the others. The server's resident
memory must stay flat once the sessions are running, and SIGTERM must shut it down cleanly.
Latencies are measured and written to ``artifacts/load.json``, never asserted (speed belongs in
``benchmarks/bench_server.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from aiohttp import ClientSession

from benchmarks.loadgen import run_load

CLIENTS = 50
SECONDS = 20.0
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "artifacts")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    assert m is not None
    return int(m.group(1)) / 1024


def _metrics(text: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_fifty_realtime_clients_and_a_stalled_one(
    tmp_path: Any, speech_pcm: np.ndarray
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxaudio.apps.cli",
            "serve",
            "--port",
            "0",
            "--out",
            str(out),
            "--seconds",
            "150",
        ],  # default queue: 256 events (5 s) of slack for a busy machine
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        audio = np.resize(speech_pcm, int(SECONDS * 16000))

        async with ClientSession() as http:
            # reference: the same audio sent as fast as possible by one client
            ref_session, ref = await asyncio.wait_for(
                _fast_reference(http, base + "/ws", audio), 60
            )
            rss: list[tuple[float, float]] = []

            async def sample_memory() -> None:
                t0 = time.monotonic()
                while True:
                    rss.append((time.monotonic() - t0, _rss_mb(proc.pid)))
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample_memory())
            result = await run_load(base + "/ws", audio, 16000, clients=CLIENTS, stalled=1)
            sampler.cancel()
            async with http.get(base + "/metrics") as r:
                metrics = _metrics(await r.text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise

    summary = result.summary()
    summary["rss_mb"] = [round(v, 1) for _, v in rss[::4]]
    summary["server_events_dropped"] = metrics["rxaudio_events_dropped_total"]
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, "load.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, default=float)
    print("load:", summary)

    assert code == 0  # SIGTERM: graceful shutdown
    ref_spans = [(u["start"], u["end"], u["reason"]) for u in ref]
    assert len(ref_spans) >= 6
    windows = -(-audio.shape[0] // 512)
    for c in result.clients:
        assert c.errors == [] and c.sent_samples == audio.shape[0]
        # every utterance reported, the same as the reference run's
        assert [(u["start"], u["end"], u["reason"]) for u in c.utterances] == ref_spans
        # every event delivered: nothing dropped for clients that keep up
        assert c.vad_events == windows and c.stats["dropped"] == 0
        # and written
        d = out / c.session
        assert sorted(p.name for p in d.glob("utt-*.wav")) == [u["file"] for u in c.utterances]
    # the stalled client's events were dropped (all drops are its: the others have none)
    assert metrics["rxaudio_events_dropped_total"] > 0
    assert metrics["rxaudio_utterances_total"] >= (CLIENTS + 1) * len(ref_spans)
    # memory flat while 51 sessions run: the second half adds less than 12 MB. The half is of
    # the run as it went, not of SECONDS: on a loaded machine the clients start later and the
    # sessions' warm-up (utterance buffers, files, the scorer's rows growing) stretches past
    # SECONDS / 2, which read as growth (17 MB at load 6-8) though the curve was flat after it
    end = rss[-1][0]
    steady = [v for t, v in rss if t >= end / 2]
    assert max(steady) - steady[0] < 12.0, rss
    # every session closed by the shutdown left complete files and a closed log; the stalled
    # client lost events on the wire but none of its utterances on disk
    dirs = {d.name: d for d in out.iterdir()}
    assert len(dirs) == CLIENTS + 2
    for d in dirs.values():
        assert not list(d.glob(".*.partial"))
        log = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
        assert log[-1]["type"] == "closed"
    (stalled,) = set(dirs) - {c.session for c in result.clients} - {ref_session}
    log = [json.loads(x) for x in (dirs[stalled] / "events.jsonl").read_text().splitlines()]
    assert [(u["start"], u["end"]) for u in log if u["type"] == "utterance"] == [
        (u[0], u[1]) for u in ref_spans
    ]
    assert log[-1]["received"] == audio.shape[0]


async def _fast_reference(
    http: ClientSession, url: str, audio: np.ndarray
) -> tuple[str, list[dict[str, Any]]]:
    """One client, no pacing: the utterances of ``audio`` (a deep read keeps every event)."""
    from aiohttp import WSMsgType

    async with http.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "start", "sample_rate": 16000, "format": "int16"})
        session = (await ws.receive_json())["session"]
        reader_done: list[dict[str, Any]] = []

        async def read() -> None:
            async for m in ws:
                if m.type != WSMsgType.TEXT:
                    return
                ev = json.loads(m.data)
                if ev["type"] == "utterance":
                    reader_done.append(ev)
                if ev["type"] == "stopped":
                    return

        task = asyncio.create_task(read())
        for i in range(0, audio.shape[0], 1024):
            await ws.send_bytes(audio[i : i + 1024].astype("<i2").tobytes())
        await ws.send_json({"type": "stop"})
        await task
    return session, reader_done
