"""rxaudio.server.sessions: a session's byte cap, the events it replays on resume, its ids, and
the outbox (bounded in events and bytes, oldest droppable events dropped first).

Every live-server test runs a real server on 127.0.0.1, bounded in count and time, and
asserts on counts, completeness and protocol answers, never on wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import soundfile as sf

from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.sessions import Outbox, new_session_id

pytestmark = pytest.mark.timeout(120)


async def test_a_session_past_its_bytes_ends_cleanly(server, proto, speech_pcm, tmp_path):
    limit = 60_000  # the first utterance (about 1.9 s at 16 kHz, 16-bit) does not fit twice
    async with server(max_session_bytes=limit, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm, block=16000)  # < 32 frames: no error flood
        events = await proto.until(ws, "stopped", timeout=60)
        err = [e for e in events if e["type"] == "error"]
        assert (
            err[0]["code"] == "session_storage_limit" and "--max-session-bytes" in err[0]["message"]
        )
        assert events[-1]["reason"] == "session_bytes limit"
        # audio after the end is refused by name, never dropped silently
        await ws.send_bytes(speech_pcm[:1000].tobytes())
        late = await proto.error(ws, "session_ended", "2000 bytes")
        assert "was dropped" in late["message"]
        text = await (await client.get("/metrics")).text()
        assert 'rxaudio_limit_reached_total{limit="session_bytes"} 1' in text
    folder = tmp_path / "out" / started["session"]
    size = sum(f.stat().st_size for f in folder.iterdir())
    log = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert log[-1]["type"] == "closed" and log[-1]["reason"] == "session_bytes limit"
    assert size <= limit + len(json.dumps(log[-1])) + 1  # only the closing record past it
    for f in folder.glob("utt-*.wav"):
        assert sf.info(str(f)).frames > 0  # complete files only
    assert not list(folder.glob(".*"))


async def test_speech_events_lost_at_a_drop_come_again_on_resume(
    server, proto, speech_pcm, tmp_path
):
    async with server(grace_s=30, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        assert started["seq"] == 0
        await proto.send_audio(ws, speech_pcm)
        # read until the first utterance, acknowledge it, then "lose" the rest: the events the
        # server sends meanwhile go into a socket nobody reads, and the network drops
        got = await proto.until(ws, "utterance", timeout=60)
        speech = [e for e in got if e["type"] in ("speech_start", "speech_end", "utterance")]
        assert [e["seq"] for e in speech] == [1, 2, 3]
        await ws.send_json({"type": "ack", "seq": 3})
        await asyncio.sleep(0.5)  # the pipeline runs on: more speech events are sent and lost
        await ws.close()
        await asyncio.sleep(0.1)
        ws = await client.ws_connect("/ws")
        again = await proto.start(
            ws, session=started["session"], resume_token=started["resume_token"], ack=3
        )
        assert again["resumed"] is True and again["received"] == len(speech_pcm)
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped", timeout=60)
        replayed = [e for e in events if "seq" in e]
    log = tmp_path / "out" / started["session"] / "events.jsonl"
    logged = [json.loads(x) for x in log.read_text().splitlines() if '"seq"' in x]
    # what the client holds now is exactly every speech event of the session, once each
    held = speech + replayed
    assert [e["seq"] for e in held] == list(range(1, len(logged) + 1))
    assert held == logged and len(logged) > 3


async def test_acknowledged_events_are_not_sent_again(server, proto, speech_pcm):
    async with server(grace_s=30, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        events = await proto.until(ws, "stats")
        while not any(e["type"] == "utterance" and e["id"] == 2 for e in events):
            events.append(await ws.receive_json(timeout=60))
        last = max(e["seq"] for e in events if "seq" in e)
        await ws.send_json({"type": "ack", "seq": last})
        await ws.send_json({"type": "ack", "seq": last + 100})  # beyond what was sent
        assert (await proto.until(ws, "error"))[-1]["code"] == "bad_message"
        await ws.close()
        ws = await client.ws_connect("/ws")
        again = await proto.start(
            ws, session=started["session"], resume_token=started["resume_token"]
        )
        assert again["resumed"] and again["seq"] >= last
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped", timeout=60)
        assert all(e["seq"] > last for e in events if "seq" in e)


def test_session_ids_never_begin_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    real = secrets.token_urlsafe
    given = iter(["-abcdefghijklmno", "-bcdefghijklmnop", "Qbcdefghijklmnop"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(given))
    assert new_session_id() == "Qbcdefghijklmnop"
    monkeypatch.setattr(secrets, "token_urlsafe", real)
    assert not any(new_session_id().startswith("-") for _ in range(5000))


async def test_outbox_drops_oldest_droppable_first_and_counts(metric: Any) -> None:
    gate = asyncio.Event()
    sent: list[str] = []

    async def slow_send(text: str) -> None:  # a client that does not read
        await gate.wait()
        sent.append(text)

    m = ServerMetrics()
    ob = Outbox(slow_send, m, maxlen=8)
    task = asyncio.create_task(ob.run())
    ob.put({"type": "vad", "i": -1}, 0.0)
    await asyncio.sleep(0)  # the sender takes it and blocks in send
    ob.put({"type": "utterance", "id": 1}, 0.0)
    for i in range(20):
        ob.put({"type": "vad", "i": i}, 0.0)
    ob.put({"type": "speech_end"}, 0.0)
    assert len(ob) == 8
    assert ob.dropped == 14 and metric(m, "rxaudio_events_dropped_total") == 14
    queued = [json.loads(text) for _, text, _ in ob.queue]
    kinds = [e["type"] for e in queued]
    assert kinds[0] == "utterance" and kinds[-1] == "speech_end"  # critical events kept
    assert [e["i"] for e in queued if e["type"] == "vad"] == list(range(14, 20))  # newest
    gate.set()
    ob.close()
    await asyncio.wait_for(task, 5)
    assert len(sent) == 9 and metric(m, "rxaudio_events_sent_total") == 9
    assert metric(m, "rxaudio_frame_to_event_seconds_count") == 9


async def test_outbox_of_only_critical_events_still_bounded() -> None:
    ob = Outbox(lambda text: asyncio.sleep(0), ServerMetrics(), maxlen=8)
    for i in range(12):
        ob.put({"type": "utterance", "id": i}, 0.0)
    assert len(ob) == 8 and ob.dropped == 4
    assert [json.loads(text)["id"] for _, text, _ in ob.queue] == list(range(4, 12))


async def test_outbox_bytes_are_bounded_even_for_critical_events() -> None:
    from rxaudio.server.metrics import ServerMetrics
    from rxaudio.server.sessions import Outbox

    gate = asyncio.Event()

    async def never(text: str) -> None:
        await gate.wait()

    ob = Outbox(never, ServerMetrics(), maxlen=10_000, maxbytes=100_000)
    for i in range(200):
        ob.put({"type": "error", "code": "x", "message": "m" * 5000, "i": i}, 0.0)
    assert ob.bytes <= 100_000 and len(ob) < 25 and ob.dropped > 175
