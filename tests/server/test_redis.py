"""``rxaudio serve --redis``: speech events and utterances out to a real redis-server, workers'
results back to the session's client."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from rxaudio.apps.cli import main
from rxaudio.pipeline.worker import StreamWorker

pytestmark = pytest.mark.e2e


def stream_entries(server: Any, stream: str = "rxaudio") -> list[dict[str, Any]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in server.client().xrange(stream)]


async def test_speech_events_and_utterances_are_published_with_the_session(
    server: Any, proto: Any, speech_pcm: np.ndarray, redis_server: Any, tmp_path: Path
) -> None:
    async with server(redis_url=redis_server.url, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped")
    # the server has shut down: its writer wrote everything queued
    speech = [e for e in events if e["type"] in ("speech_start", "speech_end", "utterance")]
    got = stream_entries(redis_server)
    assert len(got) == len(speech) >= 6
    for e, f in zip(speech, got, strict=True):
        assert f["session"].decode() == started["session"]
        assert json.loads(f["data"]) == e  # the very event the client got (seq, id, url...)
        assert f["type"].decode() == e["type"]
    for e, f in zip(speech, got, strict=True):
        if e["type"] != "utterance":
            assert "audio" not in f
            continue
        wav, sr = sf.read(tmp_path / "out" / started["session"] / e["file"], dtype="int16")
        assert int(f["sample_rate"]) == sr == 16000 and f["audio_format"] == b"int16"
        np.testing.assert_array_equal(np.frombuffer(f["audio"], "<i2"), wav)


async def test_a_workers_results_reach_the_sessions_client(
    server: Any, proto: Any, speech_pcm: np.ndarray, redis_server: Any, tmp_path: Path
) -> None:
    out = tmp_path / "worker"
    out.mkdir()
    worker = StreamWorker(
        f"redis_src url={redis_server.url} stream=rxaudio group=g emit=audio "
        f"! wav location={out}/{{id}}.wav",
        results="rxaudio:results",
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        async with server(redis_url=redis_server.url, queue_max=100_000) as client:
            ws = await client.ws_connect("/ws")
            started = await proto.start(ws)
            await proto.send_audio(ws, speech_pcm)
            await ws.send_json({"type": "stop"})
            events = await proto.until(ws, "stopped")
            n = sum(e["type"] == "utterance" for e in events)
            assert n >= 3
            # results come back while a session lives: a second one, with silence after the
            # speech so its every utterance ends (as in the first) without a stop
            ws2 = await client.ws_connect("/ws")
            s2 = await proto.start(ws2)
            silence = np.zeros(32000, dtype=np.int16)
            await proto.send_audio(ws2, np.concatenate([speech_pcm, silence]))
            seen: list[dict[str, Any]] = []
            utts: list[dict[str, Any]] = []
            while len(seen) < n:
                msg = await ws2.receive_json(timeout=60)
                if msg["type"] == "result":
                    seen.append(msg)
                elif msg["type"] == "utterance":
                    utts.append(msg)
            await ws2.send_json({"type": "stop"})
            await proto.until(ws2, "stopped")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert started["session"] != s2["session"]
    assert sorted(r["utterance"] for r in seen) == [u["id"] for u in utts[: len(seen)]]
    for r in seen:
        assert r["result"]["type"] == "file" and r["result"]["path"].startswith(str(out))
        assert r["worker"] == worker.reader.consumer and r["source_id"]
    assert len(list(out.iterdir())) == 2 * n  # both sessions' utterances, each once


async def test_metrics_count_written_and_relayed(
    server: Any, proto: Any, speech_pcm: np.ndarray, redis_server: Any
) -> None:
    async with server(redis_url=redis_server.url, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        # a result for this session, as a worker would write it
        redis_server.client().xadd(
            "rxaudio:results",
            {
                "type": "transcript",
                "data": '{"type":"transcript","text":"hello"}',
                "session": started["session"],
                "utterance": "1",
                "source_id": "1-0",
                "producer": "w",
            },
        )
        got = await proto.until(ws, "result")
        assert got[-1]["result"] == {"type": "transcript", "text": "hello"}
        assert got[-1]["utterance"] == 1 and got[-1]["worker"] == "w"
        await ws.send_json({"type": "stop"})
        await proto.until(ws, "stopped")
        # the writer thread writes in the background and the counter follows within 0.5 s:
        # wait until nothing waits and the counter has caught up with the stream
        for _ in range(400):
            text = await (await client.get("/metrics")).text()
            n = len(stream_entries(redis_server))
            if "rxaudio_redis_entries_waiting 0\n" in text and (
                f"rxaudio_redis_entries_written_total {n}\n" in text
            ):
                break
            await asyncio.sleep(0.05)
    speech = len(stream_entries(redis_server))
    assert speech >= 6
    assert f"rxaudio_redis_entries_written_total {speech}" in text
    assert "rxaudio_redis_results_relayed_total 1" in text
    assert "rxaudio_redis_entries_not_written_total 0" in text


def test_redis_down_at_start_is_one_line(dead_url: str, capsys: Any, tmp_path: Path) -> None:
    code = main(["serve", "--redis", dead_url, "--port", "0", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach it (Connection refused)" in err[0]


def test_bad_redis_options_are_refused(capsys: Any, tmp_path: Path) -> None:
    assert main(["serve", "--redis", "http://x", "--port", "0", "--out", str(tmp_path)]) == 2
    assert "must start with redis://" in capsys.readouterr().err


async def test_redis_stopped_and_restarted_the_loop_goes_on_and_every_event_is_written_once(
    server: Any, proto: Any, speech_pcm: np.ndarray, redis_server: Any
) -> None:
    """Redis killed while a session streams: the session's frames keep being answered (its
    events arrive: the event loop never waits for Redis) while the writer queues and retries;
    after the restart every event is written once, in order, and results are relayed again."""
    async with server(redis_url=redis_server.url, queue_max=100_000, redis_retry_s=120) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[:16000])
        redis_server.kill()
        await proto.send_audio(ws, speech_pcm[16000:])
        events = await proto.until(ws, "utterance")  # answered while Redis is away
        n_away = sum(e["type"] in ("speech_start", "speech_end", "utterance") for e in events)
        metrics = await (await client.get("/metrics")).text()
        waiting = [ln for ln in metrics.splitlines() if ln.startswith("rxaudio_redis_entries_wait")]
        assert n_away >= 3 and waiting and float(waiting[0].split()[-1]) >= 1, waiting
        await asyncio.to_thread(redis_server.start)  # same port, appendonly: the data is back
        redis_server.client().xadd(
            "rxaudio:results",
            {"type": "t", "data": '{"type":"t"}', "session": started["session"], "producer": "w"},
        )
        events += await proto.until(ws, "result")  # the relay reconnected
        await ws.send_json({"type": "stop"})
        events += await proto.until(ws, "stopped")
    speech = [e for e in events if e["type"] in ("speech_start", "speech_end", "utterance")]
    got = stream_entries(redis_server)
    assert [json.loads(f["data"]) for f in got] == speech  # in order, each once
    assert [int(f["seq"]) for f in got] == list(range(len(speech)))
