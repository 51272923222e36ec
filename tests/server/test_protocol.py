"""Protocol v1 over a real aiohttp server on loopback: every event type, every bad message;
the start message parsed and audio decoded without a socket."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiohttp import WSMsgType, WSServerHandshakeError

from rxaudio.server import HUB
from rxaudio.server.protocol import (
    MAX_MESSAGE_BYTES,
    ProtocolError,
    StartMessage,
    decode_audio,
    parse_start,
)

pytestmark = pytest.mark.timeout(60)


def _inside(utts: list[dict[str, Any]], truth: list[dict[str, float]], tol: float = 0.2) -> None:
    """Every detected utterance lies inside a true sentence; every sentence is detected."""
    for u in utts:
        assert any(t["start"] - tol <= u["start"] and u["end"] <= t["end"] + tol for t in truth), (
            u,
            truth,
        )
    for t in truth:
        assert any(u["start"] < t["end"] and u["end"] > t["start"] for u in utts), (t, utts)


async def test_session_every_event_type(server, proto, speech_pcm, speech_truth, tmp_path):
    # this client reads only after sending everything: a deep queue keeps every event
    async with server(queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        assert started["resumed"] is False and started["sample_rate"] == 16000
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped")
        kinds = {e["type"] for e in events}
        assert {
            "level",
            "vad",
            "spectrogram",
            "speech_start",
            "speech_end",
            "utterance",
            "stats",
            "stopped",
        } <= kinds
        utts = [e for e in events if e["type"] == "utterance"]
        _inside(utts, speech_truth)
        assert [u["id"] for u in utts] == list(range(1, len(utts) + 1))
        starts = [e for e in events if e["type"] == "speech_start"]
        ends = [e for e in events if e["type"] == "speech_end"]
        assert len(starts) == len(ends) == len(utts)
        # vad: one event per 32 ms window, probabilities in [0, 1], speech flag consistent
        vads = [e for e in events if e["type"] == "vad"]
        assert len(vads) == -(-len(speech_pcm) // 512)
        assert all(0.0 <= v["p"] <= 1.0 for v in vads)
        assert any(v["speech"] for v in vads) and not all(v["speech"] for v in vads)
        # spectrogram: 64 mel bands, uint8 rows, 10 ms hop
        spec = next(e for e in events if e["type"] == "spectrogram")
        assert spec["bins"] == 64 and spec["hop"] == 0.01
        levels = [e for e in events if e["type"] == "level"]
        assert max(e["rms_db"] for e in levels) > -40 > min(e["rms_db"] for e in levels)
        stats = [e for e in events if e["type"] == "stats"]
        assert stats[-1]["received"] == len(speech_pcm) and stats[-1]["dropped"] == 0

        # each utterance's WAV is served back over HTTP and holds speech
        for u in utts:
            r = await client.get(u["url"])
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
            path = tmp_path / "dl.wav"
            path.write_bytes(await r.read())
            x, sr = sf.read(path, dtype="float32")
            assert sr == 16000
            assert abs(len(x) / sr - (u["audio_end"] - u["audio_start"])) < 1e-3
            assert np.sqrt(np.mean(x**2)) > 0.01
        # the JSONL log holds the same speech events and ends with the close
        r = await client.get(f"/files/{started['session']}/events.jsonl")
        log = [json.loads(line) for line in (await r.text()).splitlines()]
        assert [x for x in log if x["type"] == "utterance"] == utts
        assert log[-1] == {"type": "closed", "reason": "client stop", "received": len(speech_pcm)}


async def test_float32_and_44k_stereo_give_the_same_utterances(
    server, proto, speech_pcm, speech_truth
):
    import soxr

    async with server() as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        ref = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]

        x = speech_pcm.astype(np.float32) / 32768
        await ws.send_json({"type": "start", "sample_rate": 16000, "format": "float32"})
        await proto.until(ws, "started")
        await proto.send_audio(ws, x)
        await ws.send_json({"type": "stop"})
        f32 = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]
        assert [(u["start"], u["end"]) for u in f32] == [(u["start"], u["end"]) for u in ref]

        y = soxr.resample(x, 16000, 44100).astype(np.float32)
        stereo = np.stack([y, y], axis=1)
        msg = {"type": "start", "sample_rate": 44100, "channels": 2, "format": "float32"}
        await ws.send_json(msg)
        started = (await proto.until(ws, "started"))[-1]
        assert started["sample_rate"] == 44100 and started["pipeline_rate"] == 16000
        await proto.send_audio(ws, stereo, block=4410)
        await ws.send_json({"type": "stop"})
        conv = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]
        _inside(conv, speech_truth)
        assert len(conv) == len(ref)
        for a, b in zip(conv, ref, strict=True):  # converted audio: boundaries within 2 windows
            assert abs(a["start"] - b["start"]) <= 0.064 and abs(a["end"] - b["end"]) <= 0.064


async def test_config_retunes_live_and_refuses_bad_settings(server, proto, speech_pcm):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await ws.send_json({"type": "config", "options": {"min_silence_ms": 1500}})
        ack = (await proto.until(ws, "config"))[-1]
        assert ack["settings"] == {  # every live setting, effective (operator defaults)
            "threshold": 0.5,
            "neg_threshold": None,
            "min_speech_ms": 250.0,
            "min_silence_ms": 1500.0,
            "pre_roll_ms": 300.0,
            "post_roll_ms": 200.0,
            "max_ms": 30000.0,
        }
        # neg_threshold above threshold: refused, old settings stay
        await ws.send_json({"type": "config", "options": {"threshold": 0.3, "neg_threshold": 0.6}})
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "bad_config" and "neg_threshold" in err["message"]
        await ws.send_json({"type": "config", "options": {"bogus": 1}})
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "bad_config" and "bogus" in err["message"]
        await ws.send_json({"type": "config", "options": {"threshold": 7}})
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "bad_config" and "threshold" in err["message"]
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        utts = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]
        # 1.5 s of silence needed: the three sentences stay whole
        assert len(utts) == 3


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"kind": "start"}', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "start", "sample_rate": 12345}', "unsupported_rate"),
        ('{"type": "start"}', "bad_message"),
        ('{"type": "start", "sample_rate": "16000"}', "bad_message"),
        ('{"type": "start", "sample_rate": 16000, "format": "mp3"}', "unsupported_format"),
        ('{"type": "start", "sample_rate": 16000, "channels": 3}', "unsupported_channels"),
        ('{"type": "start", "sample_rate": 16000, "options": {"max_ms": 5}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "options": {"events": ["x"]}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "session": 5}', "bad_message"),
        # every field is checked by type before use (these used to crash the handler: 1006)
        ('{"type": "start", "sample_rate": 16000, "format": ["int16"]}', "unsupported_format"),
        ('{"type": "start", "sample_rate": 16000, "format": {}}', "unsupported_format"),
        ('{"type": "start", "sample_rate": 16000, "channels": 1.5}', "bad_message"),
        ('{"type": "start", "sample_rate": true}', "bad_message"),
        ('{"type": "start", "sample_rate": 16000, "options": [1]}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "options": {"events": [[1]]}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "options": {"events": "vad"}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "options": {"threshold": "0.5"}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "options": {"threshold": true}}', "bad_config"),
        ('{"type": "start", "sample_rate": 16000, "resume_token": 5}', "bad_message"),
        ('{"type": "start", "sample_rate": 16000, "ack": -1}', "bad_message"),
        ('{"type": "start", "sample_rate": 16000, "ack": 1.5}', "bad_message"),
        ('{"type": 5}', "bad_message"),
        ('{"type": "ping", "id": {"a": 1}}', "bad_message"),
        ('{"type": "ping", "id": [1]}', "bad_message"),
        ('{"type": "ack", "seq": "x"}', "bad_message"),
        ('{"type": "ack", "seq": 1}', "not_started"),
        ('{"type": "config", "options": {"threshold": 0.4}}', "not_started"),
        ('{"type": "stop"}', "not_started"),
        ('{"type": "listen"}', "no_server_source"),
        (b"\x00\x01\x02\x03", "not_started"),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_lives(server, send, code):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        assert (await ws.receive_json())["type"] == "hello"
        await (ws.send_bytes(send) if isinstance(send, bytes) else ws.send_str(send))
        err = await ws.receive_json(timeout=10)
        assert err["type"] == "error" and err["code"] == code, err
        assert err["message"]
        # still usable: a good start works afterwards
        await ws.send_json({"type": "start", "sample_rate": 16000})
        assert (await ws.receive_json(timeout=10))["type"] == "started"


@pytest.mark.parametrize(
    ("fmt", "payload", "fragment"),
    [
        ("int16", b"\x00\x01\x02", "not a whole number"),
        ("float32", b"\x00" * 6, "not a whole number"),
        ("float32", np.array([0.1, np.nan], dtype="<f4").tobytes(), "NaN"),
        ("int16", b"\x00\x00" * 16001, "more than 1.0 s"),
    ],
)
async def test_bad_frames_are_dropped_with_an_error(server, proto, fmt, payload, fragment):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws, format=fmt)
        await ws.send_bytes(payload)
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "bad_frame" and fragment in err["message"]
        await ws.send_bytes(np.zeros(1600, dtype="<i2" if fmt == "int16" else "<f4").tobytes())
        await ws.send_json({"type": "stop"})
        stopped = (await proto.until(ws, "stopped"))[-1]
        assert stopped["received"] == 1600  # the bad frame was not counted


async def test_start_twice_version_and_oversize_and_error_flood(server, proto):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await ws.send_json({"type": "start", "sample_rate": 16000})
        assert (await proto.until(ws, "error"))[-1]["code"] == "already_started"
        # a message over the limit: error, then close 1009
        await ws.send_bytes(b"\x00" * (MAX_MESSAGE_BYTES + 2))
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "too_big"
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1009

        # a text message over the limit too (within aiohttp's hard cap of 4x the limit)
        ws = await client.ws_connect("/ws")
        await ws.receive_json()
        await ws.send_str(json.dumps({"type": "ping", "pad": "x" * (MAX_MESSAGE_BYTES + 2)}))
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "too_big" and "text message" in err["message"]
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1009

        # versions 1 and 2 are spoken; 3, true and 1.0 are not (true == 1 in Python)
        for version in (3, True, 1.0, "1"):
            ws = await client.ws_connect("/ws")
            await ws.receive_json()
            await ws.send_json({"type": "start", "version": version, "sample_rate": 16000})
            assert (await ws.receive_json())["code"] == "bad_version"
            msg = await ws.receive(timeout=10)
            assert msg.type == WSMsgType.CLOSE and msg.data == 4002

        ws = await client.ws_connect("/ws")
        await ws.receive_json()
        for _ in range(40):
            await ws.send_str("{")
        codes = []
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != WSMsgType.TEXT:
                break
            codes.append(json.loads(msg.data)["code"])
        assert codes[-1] == "too_many_errors" and codes.count("bad_json") == 32
        assert msg.type == WSMsgType.CLOSE and msg.data == 1008


async def test_ping_pong_and_heartbeat_timeout(server, proto):
    async with server(heartbeat_s=0.3) as client:
        ws = await client.ws_connect("/ws")
        await ws.receive_json()
        await ws.send_json({"type": "ping", "id": 7})
        assert await ws.receive_json() == {"type": "pong", "id": 7}
        # a peer that never answers WebSocket pings is disconnected by the server
        mute = await client.ws_connect("/ws", autoping=False)
        await mute.receive_json()
        deadline = 40
        kinds = []
        while deadline:
            msg = await mute.receive(timeout=10)
            kinds.append(msg.type)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
            deadline -= 1
        assert WSMsgType.PING in kinds and kinds[-1] != WSMsgType.PING


async def test_token_required_on_ws_and_files(server, proto, speech_pcm):
    async with server(token="s3cret") as client:
        for url in ("/ws", "/ws?token=wrong"):
            with pytest.raises(WSServerHandshakeError) as exc:
                await client.ws_connect(url)
            assert exc.value.status == 401
        ws = await client.ws_connect("/ws?token=s3cret")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[:80000])
        await ws.send_json({"type": "stop"})
        utt = next(e for e in await proto.until(ws, "stopped") if e["type"] == "utterance")
        assert (await client.get(utt["url"])).status == 401
        assert (await client.get(utt["url"] + "?token=s3cret")).status == 200
        auth = {"Authorization": "Bearer s3cret"}
        assert (await client.get(utt["url"], headers=auth)).status == 200
        assert (
            await client.get(f"/files/{started['session']}/../x.wav?token=s3cret")
        ).status == 404
        assert (await client.get("/files/nope/utt-0001.wav?token=s3cret")).status == 404
        assert (await client.get("/healthz")).status == 200  # health needs no token


async def test_healthz_and_metrics(server, proto, speech_pcm):
    async with server(queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_str("nonsense")
        await ws.send_json({"type": "stop"})
        await proto.until(ws, "stopped")
        h = await (await client.get("/healthz")).json()
        assert h["status"] == "ok" and h["protocol"] == 2 and h["clients"] == 1
        r = await client.get("/metrics")
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert values["rxaudio_clients_connected"] == 1
        assert values["rxaudio_samples_processed_total"] == len(speech_pcm)
        assert values["rxaudio_frames_processed_total"] == -(-len(speech_pcm) // 2048)
        assert values["rxaudio_protocol_errors_total"] == 1
        assert values["rxaudio_utterances_total"] >= 3
        assert values["rxaudio_events_dropped_total"] == 0
        assert values["rxaudio_vad_batch_size_count"] >= len(speech_pcm) // 512
        n = values["rxaudio_frame_to_event_seconds_count"]
        assert n == values["rxaudio_events_sent_total"] - 1 or n > 500
        assert values['rxaudio_frame_to_event_seconds_bucket{le="+Inf"}'] == n
        for name in ("rxaudio_outbound_queue_depth", "rxaudio_outbound_queue_depth_max"):
            assert name in values


async def test_resume_after_a_drop_loses_no_audio(server, proto, speech_pcm):
    async with server(grace_s=10) as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        ref = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]

        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        half = 100_000  # mid-sentence
        await proto.send_audio(ws, speech_pcm[:half])
        await proto.until(ws, "stats")
        await ws.close()  # the network drops
        await asyncio.sleep(0.1)
        ws = await client.ws_connect("/ws")
        again = await proto.start(
            ws, session=started["session"], resume_token=started["resume_token"]
        )
        assert again["resumed"] is True and again["session"] == started["session"]
        assert again["received"] == half
        await proto.send_audio(ws, speech_pcm[again["received"] :])
        await ws.send_json({"type": "stop"})
        await proto.until(ws, "stopped")
        # the session's log over both connections equals the unbroken run's, exactly
        r = await client.get(f"/files/{started['session']}/events.jsonl")
        log = [json.loads(line) for line in (await r.text()).splitlines()]
        both = [x for x in log if x["type"] == "utterance"]
        assert [(u["start"], u["end"], u["reason"]) for u in both] == [
            (u["start"], u["end"], u["reason"]) for u in ref
        ]
        assert log[-1]["received"] == len(speech_pcm)

        # an unknown or expired session id starts a fresh session
        ws = await client.ws_connect("/ws")
        fresh = await proto.start(ws, session="no-such-session")
        assert fresh["resumed"] is False and fresh["session"] != "no-such-session"


async def test_client_vanishing_mid_utterance_keeps_a_complete_file(
    server, proto, speech_pcm, tmp_path
):
    async with server(grace_s=0.2) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[: int(3.0 * 16000)])  # inside sentence one
        await ws.send_json({"type": "ping"})  # answered after every frame before it is in
        await proto.until(ws, "pong")
        await ws.close()
        sid = started["session"]
        for _ in range(100):
            await asyncio.sleep(0.05)
            if sid not in client.app[HUB].sessions:
                break
    d = tmp_path / "out" / sid
    log = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    assert log[-1]["type"] == "closed" and log[-1]["reason"] == "client gone"
    last = [r for r in log if r["type"] == "utterance"][-1]
    assert last["reason"] == "end_of_stream" and last["end"] == pytest.approx(3.0, abs=0.04)
    x, sr = sf.read(d / last["file"])
    assert len(x) / sr == pytest.approx(last["audio_end"] - last["audio_start"], abs=1e-3)
    assert not list(d.glob(".*partial"))


async def test_graceful_shutdown_flushes_and_closes_going_away(server, proto, speech_pcm, tmp_path):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[: int(2.5 * 16000)])
        await ws.send_json({"type": "ping"})  # answered after every frame before it is in
        await proto.until(ws, "pong")
        await client.server.runner.shutdown()  # what Ctrl-C runs
        msg = await ws.receive(timeout=10)
        last: list[dict[str, Any]] = []
        while msg.type == WSMsgType.TEXT:
            last.append(json.loads(msg.data))
            msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 1001
        # the client got the pipeline's final events before the close frame
        final = [e for e in last if e["type"] == "utterance"]
        assert final and final[-1]["reason"] == "end_of_stream"
    d = tmp_path / "out" / started["session"]
    log = [json.loads(line) for line in (d / "events.jsonl").read_text().splitlines()]
    assert log[-1] == {"type": "closed", "reason": "server shutdown", "received": 40000}
    assert [r["reason"] for r in log if r["type"] == "utterance"][-1] == "end_of_stream"
    for r in log:
        if r["type"] == "utterance":
            sf.info(d / r["file"])  # complete, readable


async def test_listen_to_the_shared_source(server, proto, speech_path):
    async with server(source=speech_path) as client:
        a = await client.ws_connect("/ws")
        b = await client.ws_connect("/ws")
        for ws in (a, b):
            hello = await ws.receive_json()
            assert hello["modes"] == ["client", "listen"]
            await ws.send_json({"type": "listen"})
            started = (await proto.until(ws, "started"))[-1]
            assert started["listen"] is True and started["session"].startswith("shared")
        # both viewers see the same shared pipeline's events (it plays in real time)
        va = [e for e in await proto.until(a, "level") if e["type"] == "level"][-1]
        vb = [e for e in await proto.until(b, "level") if e["type"] == "level"][-1]
        assert abs(va["t"] - vb["t"]) < 0.5
        await a.send_json({"type": "config", "options": {"threshold": 0.4}})
        assert (await proto.until(a, "error"))[-1]["code"] == "bad_config"
        await a.send_json({"type": "stop"})
        assert (await proto.until(a, "stopped"))[-1]["type"] == "stopped"


async def test_batched_scoring_equals_per_session_scoring(server, proto, speech_pcm):
    async def two_clients(client: Any) -> list[list[tuple[float, float, str]]]:
        a, b = await client.ws_connect("/ws"), await client.ws_connect("/ws")
        await proto.start(a)
        await proto.start(b, format="float32")
        x = speech_pcm.astype(np.float32) / 32768
        for i in range(0, len(speech_pcm), 2048):  # interleaved: windows meet in the batcher
            await a.send_bytes(speech_pcm[i : i + 2048].tobytes())
            await b.send_bytes(x[i : i + 2048].tobytes())
        out = []
        for ws in (a, b):
            await ws.send_json({"type": "stop"})
            events = await proto.until(ws, "stopped")
            out.append(
                [(e["start"], e["end"], e["reason"]) for e in events if e["type"] == "utterance"]
            )
        return out

    async with server(queue_max=100_000) as client:
        batched = await two_clients(client)
        text = await (await client.get("/metrics")).text()
        one = float(text.split('rxaudio_vad_batch_size_bucket{le="1"} ')[1].split()[0])
        two = float(text.split('rxaudio_vad_batch_size_bucket{le="2"} ')[1].split()[0])
        assert two > one  # some calls scored both sessions at once
    async with server(queue_max=100_000, batch=False) as client:
        single = await two_clients(client)
        text = await (await client.get("/metrics")).text()
        assert "rxaudio_vad_batch_size_count 0" in text
    assert batched[0] == batched[1] == single[0] == single[1]
    assert len(batched[0]) >= 3


async def test_resume_takes_over_a_half_open_connection(server, proto, speech_pcm):
    async with server(queue_max=100_000) as client:
        old = await client.ws_connect("/ws")
        started = await proto.start(old)
        await proto.send_audio(old, speech_pcm[:48000])
        await proto.until(old, "stats")
        # the client lost its network, but the server has not noticed yet: a new connection
        # resumes the session, and the old one is closed by the server
        new = await client.ws_connect("/ws")
        again = await proto.start(
            new, session=started["session"], resume_token=started["resume_token"]
        )
        # frames of the old connection still being read when the new one took over are not
        # fed; the client re-sends from what the server says it has
        assert again["resumed"] is True and 16000 <= again["received"] <= 48000
        msg = await old.receive(timeout=10)
        while msg.type == WSMsgType.TEXT:
            msg = await old.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE and msg.data == 4005
        # a different format cannot resume it: a fresh session, the original untouched
        other = await client.ws_connect("/ws")
        fresh = await proto.start(
            other,
            session=started["session"],
            resume_token=started["resume_token"],
            sample_rate=44100,
        )
        assert fresh["resumed"] is False and fresh["session"] != started["session"]
        await proto.send_audio(new, speech_pcm[again["received"] :])
        await new.send_json({"type": "stop"})
        stopped = (await proto.until(new, "stopped"))[-1]
        assert stopped["received"] == len(speech_pcm)


async def test_server_default_settings_apply_and_are_reported(server, proto, speech_pcm):
    from rxaudio.server.pipeline import ChainOptions

    opts = ChainOptions(settings={"min_silence_ms": 1500.0, "threshold": 0.6})
    async with server(options=opts, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        assert started["settings"]["min_silence_ms"] == 1500.0
        assert started["settings"]["threshold"] == 0.6
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        utts = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]
        assert len(utts) == 3  # whole sentences, as with the client-sent setting
        # a client's own options override the server's for its session only
        await ws.send_json({"type": "start", "sample_rate": 16000, "options": {"threshold": 0.4}})
        again = (await proto.until(ws, "started"))[-1]
        assert again["settings"]["threshold"] == 0.4
        assert again["settings"]["min_silence_ms"] == 1500.0


async def test_a_failed_pipeline_reports_and_the_client_starts_again(
    server, proto, speech_pcm, tmp_path
):
    async with server() as client:
        hub = client.app[HUB]
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)

        def broken(windows: Any) -> Any:
            raise RuntimeError("model exploded")

        real = hub.batcher.shared.score_batch
        hub.batcher.shared.score_batch = broken
        await proto.send_audio(ws, speech_pcm[:16000])
        err = (await proto.until(ws, "error"))[-1]
        assert err["code"] == "pipeline_error" and "model exploded" in err["message"]
        hub.batcher.shared.score_batch = real
        # later audio is not fed, and never dropped silently: each frame gets an error naming it
        await proto.send_audio(ws, speech_pcm[:4096])
        await ws.send_json({"type": "start", "sample_rate": 16000})
        events = await proto.until(ws, "started")
        dropped = [e for e in events if e.get("code") == "session_failed"]
        # the first dropped frame is named at once, later ones summed up once a second
        assert dropped and all("dropped" in e["message"] for e in dropped)
        again = events[-1]
        assert again["session"] != started["session"]
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        assert any(e["type"] == "utterance" for e in await proto.until(ws, "stopped"))
    log = (tmp_path / "out" / started["session"] / "events.jsonl").read_text().splitlines()
    assert json.loads(log[-2])["type"] == "error"
    closed = json.loads(log[-1])
    assert closed["reason"] == "pipeline error" and closed["received"] < 16000  # fed no more
    # every sample sent was either fed or in a frame refused with an error naming its size
    refused = sum(int(re.search(r"(?:frame of |\()(\d+) bytes", e["message"])[1]) for e in dropped)
    assert closed["received"] + refused // 2 == 16000 + 4096


async def test_cross_site_pages_are_refused_unless_allowed(server):
    async with server() as client:
        host = f"{client.host}:{client.port}"
        ws = await client.ws_connect("/ws", headers={"Origin": f"http://{host}"})
        assert (await ws.receive_json())["type"] == "hello"  # our own page
        with pytest.raises(WSServerHandshakeError) as exc:
            await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
        assert exc.value.status == 403
    async with server(any_origin=True) as client:
        ws = await client.ws_connect("/ws", headers={"Origin": "http://elsewhere.example"})
        assert (await ws.receive_json())["type"] == "hello"


@pytest.mark.parametrize("backend", ["webrtc", "energy"])
async def test_other_backends_run_the_same_chain(server, proto, speech_pcm, backend):
    from rxaudio.server.pipeline import ChainOptions

    async with server(options=ChainOptions(backend=backend), queue_max=100_000) as client:
        assert client.app[HUB].batcher is None  # batching is Silero's
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped")
        assert sum(e["type"] == "vad" for e in events) > 100
        assert any(e["type"] == "utterance" for e in events)


async def test_a_silent_client_mid_speech_gets_its_utterance_after_the_gap(
    server, proto, speech_pcm
):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[: int(2.5 * 16000)])  # stops mid-sentence
        utts: list[dict[str, Any]] = []
        while not utts or utts[-1]["reason"] == "silence":  # words before the open one
            events = await proto.until(ws, "utterance", timeout=7)  # max_gap_ms is 2000
            utts.append(events[-1])
        utt = utts[-1]
        assert utt["reason"] == "gap" and utt["end"] == pytest.approx(2.5, abs=0.04)
        # the client is still connected and can go on
        await proto.send_audio(ws, speech_pcm[int(2.5 * 16000) :])
        await ws.send_json({"type": "stop"})
        assert (await proto.until(ws, "stopped"))[-1]["received"] == len(speech_pcm)


async def _events(ws: Any, kind: str, arrays: list[int]) -> list[dict[str, Any]]:
    """Events up to the first ``kind``, batched arrays flattened (their sizes in ``arrays``)."""
    got: list[dict[str, Any]] = []
    while True:
        msg = json.loads((await ws.receive(timeout=30)).data)
        batch = msg if isinstance(msg, list) else [msg]
        if isinstance(msg, list):
            arrays.append(len(msg))
        got.extend(batch)
        if any(e["type"] == kind for e in batch):
            return got


async def test_batched_events_are_the_same_events_fewer_messages(server, proto, speech_pcm):
    """``start.batch``: events several to a message (a JSON array, in order); the same events
    as an unbatched session of the same audio, field for field."""

    def same(e: dict[str, Any]) -> dict[str, Any]:  # what may differ between two sessions
        return {k: v for k, v in e.items() if k not in ("session", "url", "queue")}

    runs = []
    for batch in (False, True):
        async with server(queue_max=100_000) as client:
            ws = await client.ws_connect("/ws")
            await proto.start(ws, version=2, batch=batch)
            await proto.send_audio(ws, speech_pcm)  # sent before reading: events queue up
            await ws.send_json({"type": "stop"})
            arrays: list[int] = []
            events = await _events(ws, "stopped", arrays)
            runs.append(([same(e) for e in events], arrays))
    (plain, no_arrays), (batched, arrays) = runs
    assert no_arrays == []
    assert arrays and max(arrays) > 1  # queued events went out together
    # in order within each stream: display events, and what waits for utterance files
    # (an utterance's event may come after display events of later windows: Outbox.hold)
    assert proto.streams(batched) == proto.streams(plain)


@pytest.mark.parametrize("bad", [1, "yes", None])
async def test_a_bad_batch_flag_is_refused(server, proto, bad):
    async with server() as client:
        ws = await client.ws_connect("/ws")
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await ws.send_json({"type": "start", "sample_rate": 16000, "batch": bad})
        err = await ws.receive_json(timeout=10)
        assert err["type"] == "error" and err["code"] == "bad_message" and "batch" in err["message"]


def test_parse_start_defaults_and_errors() -> None:
    s = parse_start({"type": "start", "sample_rate": 44100})
    assert (s.sample_rate, s.channels, s.format, s.session) == (44100, 1, "int16", None)
    assert s.bytes_per_frame == 2
    with pytest.raises(ProtocolError) as e:
        parse_start({"type": "start", "sample_rate": 16000, "channels": True})
    assert e.value.code == "bad_message"
    with pytest.raises(ProtocolError) as e:
        parse_start({"type": "start", "sample_rate": 16000, "options": {"threshold": "x"}})
    assert e.value.code == "bad_config" and "threshold" in e.value.message


def test_decode_audio_int16_float32_stereo() -> None:
    st = StartMessage(16000, 2, "int16")
    x = np.array([[0, -32768], [16384, 32767]], dtype="<i2")
    a = decode_audio(x.tobytes(), st)
    assert a.dtype == np.float32 and a.shape == (2, 2)
    assert a[0, 1] == -1.0 and a[1, 0] == 0.5
    f = np.array([0.25, -2.0], dtype="<f4")  # out-of-range floats are clipped
    b = decode_audio(f.tobytes(), StartMessage(16000, 1, "float32"))
    assert b[:, 0].tolist() == [0.25, -1.0]


def test_decode_audio_int16_is_exactly_x_over_32768_for_every_value() -> None:
    every = np.arange(-32768, 32768, dtype="<i2")
    st = StartMessage(16000, 1, "int16")  # in 1 s messages, the most one may hold
    a = np.concatenate([decode_audio(p.tobytes(), st) for p in np.split(every, 8)])
    assert np.array_equal(a[:, 0], every.astype(np.float32) / np.float32(32768.0))
