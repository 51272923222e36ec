"""rxaudio.server.routes: the WebSocket handler's loop (one message per connection per turn:
a flood does not starve another client) and the upgrade (a reset logs one line).

Every live-server test runs a real server on 127.0.0.1, bounded in count and time, and
asserts on counts, completeness and protocol answers, never on wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest

from rxaudio.server import HUB
from rxaudio.server.connection import Connection

pytestmark = pytest.mark.timeout(120)


async def test_a_text_flood_does_not_starve_another_client(server, proto, speech_pcm, monkeypatch):
    """Between a normal client's first frame and its stop, a flooder gets about one message per
    message of the normal client, however many it has queued (no rate limit here)."""
    marks: dict[str, dict[Connection, int]] = {}
    handled: dict[Connection, int] = {}  # messages each connection handled, text and binary
    on_binary, control, stop = Connection.on_binary, Connection._control, Connection._stop

    def binary(self: Connection, data: bytes, arrival: float) -> None:
        if "first" not in marks:
            marks["first"] = dict(handled)
        handled[self] = handled.get(self, 0) + 1
        on_binary(self, data, arrival)

    def counted(self: Connection) -> None:
        handled[self] = handled.get(self, 0) + 1
        control(self)

    def stopped(self: Connection) -> None:
        marks["stop"] = dict(handled)
        stop(self)

    monkeypatch.setattr(Connection, "on_binary", binary)
    monkeypatch.setattr(Connection, "_control", counted)
    monkeypatch.setattr(Connection, "_stop", stopped)
    floods = 6000
    async with server(control_rate=0, queue_max=100_000) as client:
        hub = client.app[HUB]
        flooder = await client.ws_connect("/ws")
        fsid = (await proto.start(flooder))["session"]  # valid configs: no error, no close
        normal = await client.ws_connect("/ws")
        nsid = (await proto.start(normal))["session"]
        (fconn,) = [c for c in hub.connections if c.session and c.session.id == fsid]
        (nconn,) = [c for c in hub.connections if c.session and c.session.id == nsid]
        frames = [speech_pcm[i : i + 512] for i in range(0, 512 * 300, 512)]
        for _ in range(floods):
            await flooder.send_str('{"type":"config","options":{"threshold":0.5}}')
        for f in frames:
            await normal.send_bytes(f.tobytes())
        await normal.send_json({"type": "stop"})
        events = await proto.until(normal, "stopped", timeout=60)
        assert events[-1]["received"] == 512 * 300  # complete
        assert sum(e["type"] == "vad" for e in events) == 300
        first, last = marks["first"], marks["stop"]
        normal_done = last[nconn] - first[nconn]
        flood_done = last[fconn] - first[fconn]
        assert normal_done == len(frames) + 1  # every frame and the stop
        # fair: the flooder did not get its whole backlog in while the normal client waited
        assert last[fconn] < floods, (flood_done, normal_done)
        assert flood_done <= 2 * normal_done + 50, (flood_done, normal_done)
        assert fconn.errors == 0 and not flooder.closed
        await flooder.close()


async def test_a_reset_during_the_upgrade_logs_one_line_not_a_traceback(server, caplog, wire):
    caplog.set_level(logging.DEBUG)
    async with server() as client:
        for _ in range(20):
            s = wire.upgrade(client.port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST, before or while the server answers 101
        await asyncio.sleep(0.3)
        assert (await client.get("/healthz")).status == 200
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert all(len(r.getMessage().splitlines()) == 1 for r in caplog.records)
