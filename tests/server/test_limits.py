"""rxaudio.server.limits: connection and request-time caps (the connection guard), the storage
budget, Host and Origin rules (DNS rebinding); abusive requests leave no traceback.

Every live-server test runs a real server on 127.0.0.1, bounded in count and time, and
asserts on counts, completeness and protocol answers, never on wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from aiohttp import WSServerHandshakeError

from rxaudio.server.limits import (
    StorageBudget,
    TokenBucket,
    WindowCounter,
    disk_cost,
    host_allowed,
    origin_allowed,
)

pytestmark = pytest.mark.timeout(120)


async def test_connections_and_the_time_to_send_a_request_are_limited(server):
    async with server(max_connections=4, request_timeout_s=0.5) as client:
        loop = asyncio.get_running_loop()
        socks = []
        for _ in range(7):
            s = socket.socket()
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", client.port))
            socks.append(s)
        # every one of them is closed: three at once (over the cap), four after 0.5 s silent
        for s in socks:
            assert await asyncio.wait_for(loop.sock_recv(s, 100), 10) == b""
            s.close()
        text = await (await client.get("/metrics")).text()
        assert 'rxaudio_limit_reached_total{limit="connections"} 3' in text
        assert 'rxaudio_limit_reached_total{limit="request_timeout"} 4' in text
        # a normal request still works, and is not cut by the request timer
        r = await client.get("/healthz")
        assert r.status == 200


async def test_a_slow_client_on_a_kept_alive_connection_is_cut(server):
    async with server(request_timeout_s=0.5) as client:
        loop = asyncio.get_running_loop()
        r, w = await asyncio.open_connection("127.0.0.1", client.port)
        host = f"127.0.0.1:{client.port}"
        w.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        assert b" 200 " in head
        # then the next request head, one byte every 0.2 s: never completed, cut meanwhile
        cut = False
        for b in f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n".encode():
            try:
                w.write(bytes([b]))
                await w.drain()
                data = await asyncio.wait_for(r.read(65536), 0.2)
            except TimeoutError:
                continue
            except ConnectionError:
                cut = True
                break
            if data.endswith(b"}") or data == b"":  # the rest of the first body, or the end
                if data == b"":
                    cut = True
                    break
        assert cut and loop.is_running()
        w.close()
        text = await (await client.get("/metrics")).text()
        assert 'rxaudio_limit_reached_total{limit="request_timeout"} 1' in text


async def test_the_output_folder_has_a_total_cap(server, proto, speech_pcm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.bin").write_bytes(b"x" * 50_000)  # files already there count
    async with server(max_out_bytes=120_000, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm, block=16000)
        events = await proto.until(ws, "stopped", timeout=60)
        assert next(e for e in events if e["type"] == "error")["code"] == "storage_full"
        await ws.send_json({"type": "start", "sample_rate": 16000})
        await proto.error(ws, "storage_full")
        text = await (await client.get("/metrics")).text()
        assert 'rxaudio_limit_reached_total{limit="out_bytes"} 2' in text
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert total <= 120_000 + 200  # plus the closing log record


async def test_a_foreign_host_name_is_refused_everywhere(server, proto):
    async with server() as client:
        port = client.port
        evil = {"Host": f"evil.example:{port}"}
        for path in ("/", "/healthz", "/metrics", "/files/abcdefgh/events.jsonl"):
            r = await client.get(path, headers=evil)
            assert r.status == 421 and "--allowed-host" in await r.text(), path
        with pytest.raises(WSServerHandshakeError) as exc:
            await client.ws_connect(
                "/ws", headers={**evil, "Origin": f"http://evil.example:{port}"}
            )
        assert exc.value.status == 421
        # the names it answers to
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            assert (await client.get("/healthz", headers={"Host": host})).status == 200
        # the Origin must be this page exactly: scheme, name and port
        for origin in (f"https://127.0.0.1:{port}", "null", f"http://localhost:{port + 1}"):
            with pytest.raises(WSServerHandshakeError) as exc:
                await client.ws_connect("/ws", headers={"Origin": origin})
            assert exc.value.status == 403, origin
    async with server(allowed_hosts=("voice.example",)) as client:
        port = client.port
        h = {"Host": f"voice.example:{port}", "Origin": f"http://voice.example:{port}"}
        ws = await client.ws_connect("/ws", headers=h)
        assert (await ws.receive_json())["type"] == "hello"


def test_host_rules() -> None:
    assert host_allowed("127.0.0.1:8765", "127.0.0.1", ())
    assert host_allowed("LOCALHOST.:8765", "127.0.0.1", ())
    assert host_allowed("[::1]:8765", "127.0.0.1", ())  # loopback for loopback
    assert not host_allowed("10.0.0.5:8765", "127.0.0.1", ())
    assert host_allowed("10.0.0.5:8765", "0.0.0.0", ())  # every interface: any address
    assert not host_allowed("evil.example:8765", "0.0.0.0", ())  # but never a foreign name
    assert host_allowed("box.lan", "box.lan", ())
    assert host_allowed("evil.example", "127.0.0.1", ("*",))
    assert not host_allowed("", "127.0.0.1", ())
    assert origin_allowed("http://127.0.0.1:8765/", "http", "127.0.0.1:8765")
    assert not origin_allowed("https://127.0.0.1:8765", "http", "127.0.0.1:8765")


def test_abusive_requests_leave_no_traceback_in_the_log(tmp_path: Any, wire: Any) -> None:
    """Resets during the upgrade, bad header bytes, malformed HTTP, connections over the cap:
    the server answers or drops each, and its stderr holds no traceback."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0", "--out", str(out)]
    cmd += ["--token", "s3cret", "--max-connections", "250"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        for i in range(200):  # reset before, during or after the server's answer to the upgrade
            s = wire.upgrade(port, path="/ws?token=s3cret")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if i % 2:
                time.sleep(0.001 * (i % 7))
            s.close()
        deadline = time.monotonic() + 30  # the server has seen the resets (and the cap frees)
        while time.monotonic() < deadline:
            try:
                wire.get(port, "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        statuses = []
        for raw in (
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\x00b\r\n\r\n",
            b"GET /\xc3\xa9\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        ):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(raw)
            statuses.append(wire.read_head(s).split(b" ")[1:2])
            s.close()
        assert statuses[0] == [b"401"] and all(x and x[0] != b"500" for x in statuses), statuses
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(260)]
        time.sleep(0.5)
        for s in held:
            s.close()
        assert wire.get(port, "/healthz")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "Traceback" not in err and "Task exception" not in err, err[-3000:]


def test_token_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.25) is False  # half a token back
    assert bucket.take(0.5) is True  # one whole token
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst
    unlimited = TokenBucket(rate=0.0, burst=0.0, now=0.0)
    assert all(unlimited.take(0.0) for _ in range(1000))


def test_window_counter_counts_a_sliding_window_and_not_refusals() -> None:
    w = WindowCounter(2, window=60.0)
    assert [w.take(0.0), w.take(10.0), w.take(20.0)] == [True, True, False]
    assert w.take(59.9) is False  # the refusal at 20 s was not counted
    assert w.take(60.0) is True  # the event at 0 s left the window
    assert w.take(69.0) is False and w.take(70.0) is True
    assert all(WindowCounter(0).take(0.0) for _ in range(100))  # 0: unlimited


def test_storage_budget_refuses_a_write_whole_and_rescans_when_full(tmp_path: Any) -> None:
    assert disk_cost(0) == disk_cost(1) == 4096 and disk_cost(4097) == 8192
    now = [0.0]
    budget = StorageBudget(3 * 4096, str(tmp_path), rescan_s=10.0, clock=lambda: now[0])
    assert budget.used == 0 and not budget.full
    assert budget.charge(2 * 4096) and not budget.full
    assert not budget.charge(2 * 4096)  # would pass the cap: nothing reserved
    assert budget.used == 2 * 4096 and budget.full
    now[0] = 5.0
    assert budget.full  # no rescan before rescan_s
    now[0] = 10.0
    assert not budget.full  # the folder is empty: the reservations were never written
    assert budget.used == 0
    assert not StorageBudget(None).full and StorageBudget(None).charge(1 << 40)
