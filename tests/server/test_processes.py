"""``rxaudio serve --processes 2``: one port, two worker servers, resumes on each worker's own
port (over TLS too), a stopped worker that delays no one, idle connections that cost the
supervisor nothing, summed metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from benchmarks.loadgen import run_load
from rxaudio.server.limits import origin_allowed
from rxaudio.server.supervisor import resume_url, worker_mark, worker_of

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


SERVE = [sys.executable, "-m", "rxaudio.apps.cli"]


def serve_two(out: Path, *more: str, tls: tuple[Path, Path] | None = None) -> Served:
    """``rxaudio serve --processes 2 --port 0 --out OUT MORE...``, once it listens; with
    ``tls`` (certificate, key): over HTTPS on every port."""
    cmd = [*SERVE, "serve", "--processes", "2", "--port", "0", "--out", str(out), *more]
    if tls is not None:
        cmd += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    m = re.search(r"(https?)://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "the supervisor did not say where it listens"
    assert m.group(1) == ("http" if tls is None else "https")
    served = Served(proc, int(m.group(2)), out)
    if tls is not None:
        served.base = f"https://127.0.0.1:{served.port}"
    return served


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
    # an instance prefix (NAME-) before a worker's 16-character id: the mark follows it
    sid = worker_mark(1) + "-" * 3 + "a" * 12
    assert worker_of(sid, 4) == 1
    assert worker_of("east-" + sid, 4) == 1 and worker_of("e4-" + sid, 4) == 1
    assert worker_of("east-" + worker_mark(7) + "a" * 15, 4) is None
    # the resume URL: the client's name for the server kept, the worker's port, no secret
    assert resume_url("https", "rx.test:8765", 8767, "Ab") == "wss://rx.test:8767/ws?session=Ab"
    assert resume_url("http", "rx.test", 8767, "A/b") == "ws://rx.test:8767/ws?session=A%2Fb"
    assert resume_url("https", "[::1]:443", 9000, "A") == "wss://[::1]:9000/ws?session=A"
    # a worker's own port accepts the page of the main port (same scheme and name) only
    assert origin_allowed("https://rx.test:8765", "https", "rx.test:8767", 8765)
    assert origin_allowed("https://rx.test", "https", "rx.test:8767", 443)
    assert not origin_allowed("https://rx.test:8765", "https", "rx.test:8767")
    assert not origin_allowed("https://rx.test:9999", "https", "rx.test:8767", 8765)
    assert not origin_allowed("http://rx.test:8765", "https", "rx.test:8767", 8765)
    assert not origin_allowed("https://evil.test:8765", "https", "rx.test:8767", 8765)


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


async def _resumes(
    served: Served, audio: np.ndarray, ssl_ctx: ssl.SSLContext | bool = True
) -> None:
    """A session started on the main port (from the page's origin), dropped, resumed three
    times on its ``resume_url`` with nothing lost; resumes on the main port reach the other
    worker in turn and are refused with ``wrong_process``."""
    page = {"Origin": served.base}  # a browser sends its page's origin: the main port's
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(served.base + "/ws", headers=page, ssl=ssl_ctx)
        started = await _start(ws)
        sid, token, url = started["session"], started["resume_token"], started["resume_url"]
        scheme = "wss" if served.base.startswith("https") else "ws"
        assert re.fullmatch(rf"{scheme}://127\.0\.0\.1:\d+/ws\?session={sid}", url), url
        assert f":{served.port}/" not in url  # the worker's own port
        await ws.send_bytes(audio[:16000].tobytes())
        await ws.receive_json(timeout=10)
        await ws.close()  # dropped: the session waits in grace
        for k in range(3):  # on its resume URL, every reconnect finds it
            ws = await http.ws_connect(url, headers=page, ssl=ssl_ctx)
            again = await _start(ws, session=sid, resume_token=token)
            assert again["type"] == "started" and again["resumed"] is True, again
            assert again["session"] == sid and again["received"] == 16000 * (k + 1)
            assert again["resume_url"] == url
            await ws.send_bytes(audio[16000 * (k + 1) : 16000 * (k + 2)].tobytes())
            await ws.send_json({"type": "stop"} if k == 2 else {"type": "ping"})
            while (msg := await ws.receive_json(timeout=10))["type"] not in ("pong", "stopped"):
                pass
            if k == 2:  # nothing lost: every sample of the four seconds reached the session
                assert msg["type"] == "stopped" and msg["received"] == 16000 * 4
            await ws.close()
        # the page of another origin is refused on a worker's port as on the main one
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers={"Origin": "https://127.0.0.1:1"}, ssl=ssl_ctx)
        assert refused.value.status == 403
    served.stop()
    log = served.out / sid / "events.jsonl"
    assert json.loads(log.read_text().splitlines()[-1])["type"] == "closed"


async def test_a_resume_reaches_the_process_holding_its_session(
    served: Served, speech_pcm: np.ndarray
) -> None:
    await _resumes(served, speech_pcm)


async def test_a_resume_on_the_main_port_may_reach_the_wrong_process(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(served.base + "/ws")
        started = await _start(ws)
        sid, token = started["session"], started["resume_token"]
        await ws.close()
        # connections to the main port take turns: one lands in the other process, which
        # refuses with the fix rather than starting a new session (a few tries: a worker
        # busy for a moment is skipped, so turns are not strict)
        answers = []
        for _ in range(8):
            ws = await http.ws_connect(served.base + "/ws")
            answers.append(await _start(ws, session=sid, resume_token=token))
            await ws.close()
            if len({a.get("code", "resumed") for a in answers}) == 2:
                break
        kinds = {a.get("code", "resumed") for a in answers}
        assert kinds == {"resumed", "wrong_process"}, answers
        wrong = next(a for a in answers if a["type"] == "error")
        assert "resume_url" in wrong["message"]
        assert all(a["session"] == sid for a in answers if a["type"] == "started")


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


# ---- TLS, a stopped worker, idle connections --------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (the openssl CLI), and its key."""
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"),
            *("-days", "2", "-keyout", str(key), "-out", str(crt)),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return crt, key


def _trusting(crt: Path) -> ssl.SSLContext:
    """A client context that trusts ``crt`` only (and checks the name, as a browser does)."""
    return ssl.create_default_context(cafile=str(crt))


@pytest.fixture
def served_tls(tmp_path: Path, cert: tuple[Path, Path]) -> Iterator[Served]:
    s = serve_two(tmp_path / "out", "--grace", "30", "--backend", "energy", tls=cert)
    try:
        yield s
    finally:
        for pid in s.workers():  # a test may have stopped one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(10)


async def test_a_resume_over_tls_reaches_its_worker(
    served_tls: Served, cert: tuple[Path, Path], speech_pcm: np.ndarray
) -> None:
    await _resumes(served_tls, speech_pcm, _trusting(cert[0]))
    # every port spoke TLS: the supervisor read no byte of any connection


async def _both_workers_serve(served: Served, ssl_ctx: ssl.SSLContext) -> None:
    """Start sessions until both workers have answered (both have started up)."""
    marks: set[str] = set()
    async with aiohttp.ClientSession() as http:
        for _ in range(20):
            ws = await http.ws_connect(served.base + "/ws", ssl=ssl_ctx)
            marks.add((await _start(ws))["session"][0])
            await ws.close()
            if len(marks) == 2:
                return
    raise AssertionError(f"only workers {marks} answered")


def _descriptors(pid: int) -> int:
    """How many file descriptors process ``pid`` holds (each connection is one)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def _open_silent(port: int, n: int) -> list[socket.socket]:
    """``n`` connections to the main port that send nothing (half-open, as far as the server
    knows: no TLS handshake, no request)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]


async def test_a_stopped_worker_with_hundreds_queued_delays_no_new_session(
    served_tls: Served, cert: tuple[Path, Path]
) -> None:
    ctx = _trusting(cert[0])
    await _both_workers_serve(served_tls, ctx)
    stopped, running = served_tls.workers()
    os.kill(stopped, signal.SIGSTOP)  # a long pause (SIGCONT in teardown)
    held = _descriptors(running)
    queued = _open_silent(served_tls.port, 300)
    try:
        for _ in range(600):  # the running worker has taken its share (it holds them)
            if _descriptors(running) >= held + 100:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the running worker did not take the queued connections")
        marks = []
        async with aiohttp.ClientSession() as http:
            for _ in range(8):  # each would wait for the stopped worker if routed to it
                ws = await asyncio.wait_for(http.ws_connect(served_tls.base + "/ws", ssl=ctx), 30)
                started = await _start(ws)
                assert started["type"] == "started", started
                marks.append(started["session"][0])
                await ws.close()
        assert len(set(marks)) == 1, marks  # all on the running worker
    finally:
        for s in queued:
            s.close()
    os.kill(stopped, signal.SIGCONT)
    assert "stopped; every session flushed" in served_tls.stop()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_idle_half_open_connections_cost_the_supervisor_nothing(
    served_tls: Served, cert: tuple[Path, Path]
) -> None:
    """400 silent connections: the supervisor hands each over at once and holds none. The
    design before polled each one every 5 ms: it used 1.15 CPU seconds in these 3 s on a
    loaded machine (45-97 % of a core in docs/apps/serve.md); handing 400 over costs a few
    hundredths."""
    await _both_workers_serve(served_tls, _trusting(cert[0]))
    sup = served_tls.proc.pid
    before = _cpu_s(sup)
    silent = _open_silent(served_tls.port, 400)
    try:
        await asyncio.sleep(3.0)  # long enough for polling to show; a CPU time is asserted
        used = _cpu_s(sup) - before
        held = _descriptors(sup)
    finally:
        for s in silent:
            s.close()
    assert used < 0.5, f"the supervisor used {used:.2f} CPU s on 400 idle connections"
    assert held < 100, f"the supervisor holds {held} descriptors: it keeps the connections"
    assert "stopped; every session flushed" in served_tls.stop()


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    """--processes 2 takes --port + 1 and + 2 for the workers' own ports: one taken is one
    line naming the fix, nothing started."""
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--processes", "2"]
    for _ in range(5):
        # a free port, let go for the server to take: another process on this machine may
        # take it first (then the refusal names it, not port + 2), so pick again
        with socket.create_server(("127.0.0.1", 0)) as main:
            port = main.getsockname()[1]
        try:
            taken = socket.create_server(("127.0.0.1", port + 2))
        except OSError:  # port + 2 is somebody else's already
            continue
        with taken:
            r = subprocess.run(
                [*cmd, "--port", str(port), "--out", str(tmp_path / "out")],
                capture_output=True,
                text=True,
                timeout=60,
            )
        if f"port {port}:" not in r.stderr:
            break
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"port {port + 2}" in r.stderr and "pick another --port" in r.stderr, r.stderr


def test_a_key_that_does_not_load_is_refused_in_one_line(
    tmp_path: Path, cert: tuple[Path, Path]
) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key\n")
    r = subprocess.run(
        [
            *(*SERVE, "serve", "--processes", "2", "--port", "0", "--out", str(tmp_path)),
            *("--certfile", str(cert[0]), "--keyfile", str(bad)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and f"--keyfile {bad}" in r.stderr, r.stderr
