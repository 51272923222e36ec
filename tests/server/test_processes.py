"""``rxaudio serve --processes 2``: one port, two worker servers, routed resumes, summed metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from rxaudio.server.loadgen import run_load
from rxaudio.server.supervisor import session_in_request, worker_mark, worker_of

pytestmark = pytest.mark.timeout(120)


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, out: Path) -> None:
        self.proc, self.port, self.out = proc, port, out
        self.base = f"http://127.0.0.1:{port}"

    def workers(self) -> list[int]:
        """The worker processes' pids (children of the supervisor)."""
        kids = [int(k) for k in _children(self.proc.pid)]
        return [k for k in kids if "spawn_main" in _cmdline(k)]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return err


def _children(pid: int) -> list[int]:
    """Child pids of ``pid``, from every process's parent pid in ``/proc``."""
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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def serve_two(out: Path, *more: str) -> Served:
    """``rxaudio serve --processes 2 --port 0 --out OUT MORE...``, once it listens."""
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--processes", "2", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(out), *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "the supervisor did not say where it listens"
    return Served(proc, int(m.group(1)), out)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = serve_two(tmp_path / "out", "--grace", "30")
    proc = s.proc
    try:
        yield s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_routing_rules() -> None:
    assert worker_of(worker_mark(3) + "xyz", 4) == 3
    assert worker_of(worker_mark(5) + "xyz", 4) is None  # names no worker of this server
    assert worker_of("", 4) is None
    assert session_in_request(b"GET /ws?token=t&session=abc HTTP/1.1\r\nHost: x\r\n") == "abc"
    assert session_in_request(b"GET /ws HTTP/1.1\r\n") is None
    assert session_in_request(b"garbage") is None


async def _metric(http: aiohttp.ClientSession, base: str, name: str) -> float:
    text = await (await http.get(base + "/metrics")).text()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


async def test_streams_are_spread_over_both_processes_and_metrics_add_up(
    served: Served, speech_pcm: np.ndarray
) -> None:
    audio = speech_pcm[: 16000 * 3]
    res = await run_load(served.base + "/ws", audio, 16000, clients=4, batch=True)
    assert all(not c.errors for c in res.clients), [c.errors for c in res.clients]
    windows = -(-audio.shape[0] // 512)
    assert [c.vad_events for c in res.clients] == [windows] * 4
    assert {c.session[0] for c in res.clients} == {worker_mark(0), worker_mark(1)}
    sent = sum(-(-audio.shape[0] // 1024) for _ in res.clients)
    async with aiohttp.ClientSession() as http:
        # asked twice: round robin sends the two requests to the two workers; both answer
        # with the sum over both processes
        for _ in range(2):
            assert await _metric(http, served.base, "rxaudio_frames_processed_total") == sent
    assert "stopped; every session flushed" in served.stop()
    assert served.proc.returncode == 0


async def _start(ws: Any, **fields: Any) -> dict[str, Any]:
    assert (await ws.receive_json(timeout=10))["type"] == "hello"
    await ws.send_json({"type": "start", "version": 2, "sample_rate": 16000, **fields})
    while True:
        msg = await ws.receive_json(timeout=10)
        if msg["type"] in ("started", "error"):
            return dict(msg)


async def test_a_resume_reaches_the_process_holding_its_session(
    served: Served, speech_pcm: np.ndarray
) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(served.base + "/ws")
        started = await _start(ws)
        sid, token = started["session"], started["resume_token"]
        await ws.send_bytes(speech_pcm[:16000].tobytes())
        await ws.receive_json(timeout=10)
        await ws.close()  # dropped: the session waits in grace
        for _ in range(3):  # with its id in the URL, every reconnect finds it
            ws = await http.ws_connect(served.base + f"/ws?session={sid}")
            again = await _start(ws, session=sid, resume_token=token)
            assert again["type"] == "started" and again["resumed"] is True
            assert again["session"] == sid and again["received"] == 16000
            await ws.close()
        # without it, connections take turns: one of two lands in the wrong process, which
        # refuses with the fix rather than starting a new session
        answers = []
        for _ in range(2):
            ws = await http.ws_connect(served.base + "/ws")
            answers.append(await _start(ws, session=sid, resume_token=token))
            await ws.close()
        kinds = sorted(a.get("code", "resumed") for a in answers)
        assert kinds == ["resumed", "wrong_process"], answers
        wrong = next(a for a in answers if a["type"] == "error")
        assert "?session=" in wrong["message"]
    served.stop()
    log = served.out / sid / "events.jsonl"
    assert json.loads(log.read_text().splitlines()[-1])["type"] == "closed"


async def test_an_id_naming_no_worker_starts_a_new_session(served: Served) -> None:
    # "Z" is the mark of worker 51; this server has two. Such an id was never made here, so,
    # as for any unknown id, a new session starts (in whichever process the connection
    # reached, with or without the id in the URL) instead of advice that cannot work
    async with aiohttp.ClientSession() as http:
        for url in ("/ws", "/ws?session=Zunknown"):
            for _ in range(2):  # both processes, as connections take turns
                ws = await http.ws_connect(served.base + url)
                answer = await _start(ws, session="Zunknown", resume_token="x" * 32)
                await ws.close()
                assert answer["type"] == "started", answer
                assert answer["resumed"] is False and answer["session"] != "Zunknown"


async def test_a_dead_worker_is_replaced_and_the_port_keeps_serving(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await http.get(served.base + "/healthz")).status == 200
        pids = served.workers()
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        for _ in range(100):  # the supervisor notices within a second or so
            now = served.workers()
            if len(now) == 2 and pids[0] not in now:
                break
            await _sleep(0.1)
        else:
            raise AssertionError("the dead worker was not replaced")
        for _ in range(4):  # both workers answer, the new one included
            ws = await http.ws_connect(served.base + "/ws")
            assert (await _start(ws))["type"] == "started"
            await ws.close()
    err = served.stop()
    assert "exited with code -9; starting a new one" in err


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--processes", "2", "--source", "sample"], "drop --processes or --source"),
        (["--processes", "0"], "must be from 1 to 62 (or auto)"),
        (["--processes", "many"], "must be a count or auto"),
        (["--out", "/proc/rxaudio-out"], "--out /proc/rxaudio-out: cannot create the folder"),
    ],
)
def test_bad_process_options_are_refused_in_one_line(args: list[str], says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr


def test_a_worker_that_keeps_dying_at_start_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced after a crash, but not forever: three deaths in a row right after starting
    stop the supervisor (no restart loop), with one line saying so."""
    import socket

    from rxaudio.server.config import ServerConfig
    from rxaudio.server.supervisor import QUICK_DEATHS, Supervisor

    class Dead:
        pid, exitcode = 999_999, 3

    sock = socket.socket()
    sup = Supervisor(ServerConfig(out_dir=str(tmp_path)), 2, sock)
    started: list[int] = []
    monkeypatch.setattr(sup, "start_worker", started.append)
    try:
        results = []
        for _ in range(QUICK_DEATHS):
            sup.started_at[1] = time.monotonic()  # it had only just started
            results.append(sup._lost(1, Dead()))
        assert results == [True] * (QUICK_DEATHS - 1) + [False]
        assert started == [1] * (QUICK_DEATHS - 1) and sup.failed
        sup.quick[0], sup.started_at[0] = 2, -1e9  # a worker that lived long starts afresh
        assert sup._lost(0, Dead()) and sup.quick[0] == 0
    finally:
        sock.close()
        sup.stop_workers()


async def test_redis_publishing_from_every_process(
    tmp_path: Path, redis_server: Any, speech_pcm: np.ndarray
) -> None:
    """``--processes 2 --redis``: every process publishes its own sessions' speech events, and
    /metrics, whichever process answers, counts them all."""
    s = serve_two(tmp_path / "out", "--redis", redis_server.url)
    try:
        res = await run_load(s.base + "/ws", speech_pcm[: 16000 * 6], 16000, clients=4)
        assert all(not c.errors for c in res.clients)
        assert {c.session[0] for c in res.clients} == {worker_mark(0), worker_mark(1)}
        c = redis_server.client()
        async with aiohttp.ClientSession() as http:
            for _ in range(400):  # each process's writer acknowledges in the background
                written = await _metric(http, s.base, "rxaudio_redis_entries_written_total")
                if written and written == c.xlen("rxaudio"):
                    break
                await asyncio.sleep(0.05)
        entries = [f for _, f in c.xrange("rxaudio")]
        assert written == len(entries)
        for client in res.clients:  # every utterance of every session, once
            mine = [f for f in entries if f[b"session"].decode() == client.session]
            utts = [f for f in mine if f[b"type"] == b"utterance"]
            assert len(utts) == len(client.utterances) >= 1
    finally:
        assert "stopped; every session flushed" in s.stop()
