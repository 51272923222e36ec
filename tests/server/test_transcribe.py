"""``serve --transcribe``: a transcript event per utterance, numbered, logged, off the loop."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from rxaudio.errors import ConfigError
from rxaudio.pipeline.launch import LaunchError
from rxaudio.server.pipeline import ChainOptions, TranscriptionFailed, encode_item

pytest.importorskip("pocketsphinx")
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


async def test_a_transcript_per_utterance(server, proto, speech_pcm, tmp_path):
    opts = ChainOptions(transcribe={})
    async with server(options=opts, queue_max=100_000, out_dir=str(tmp_path / "out")) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        events: list[dict[str, Any]] = []
        wait = 90.0
        while True:  # until every utterance has its transcript and nothing more comes for 5 s
            try:
                ev = await ws.receive_json(timeout=wait)
            except TimeoutError:
                break
            events.append(ev)
            utts = [e for e in events if e["type"] == "utterance"]
            texts = [e for e in events if e["type"] == "transcript"]
            wait = 5.0 if len(utts) >= 3 and len(texts) == len(utts) else 90.0
        await ws.send_json({"type": "stop"})
        await proto.until(ws, "stopped")
    utts = [e for e in events if e["type"] == "utterance"]
    texts = [e for e in events if e["type"] == "transcript"]
    assert [t["id"] for t in texts] == [u["id"] for u in utts]
    for u, t in zip(utts, texts, strict=True):
        assert (t["start"], t["end"]) == (u["start"], u["end"])
        assert events.index(t) > events.index(u)  # the text follows its utterance
        assert t["backend"] == "pocketsphinx" and t["seq"] > u["seq"]
    # the audio came far faster than real time: the first four (the queue) were recognised,
    # later ones may have been skipped while the recogniser was busy, each one reported
    statuses = [t["status"] for t in texts]
    assert statuses[:4] == ["ok"] * 4 and set(statuses) <= {"ok", "skipped"}
    said = " ".join(t["text"] for t in texts)
    assert "hello" in said and "pipeline" in said
    seqs = [e["seq"] for e in events if "seq" in e]
    assert seqs == list(range(1, len(seqs) + 1))  # numbered with the other speech events
    # and logged with them
    log = os.path.join(str(tmp_path / "out"), started["session"], "events.jsonl")
    with open(log, encoding="utf-8") as f:
        logged = [json.loads(ln) for ln in f if '"transcript"' in ln]
    assert [r["text"] for r in logged] == [t["text"] for t in texts]


async def test_without_transcribe_no_transcripts(server, proto, speech_pcm):
    async with server(queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm[: 16000 * 5])
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped")
    assert "utterance" in {e["type"] for e in events}
    assert "transcript" not in {e["type"] for e in events}


def test_pipeline_string_may_end_with_transcribe() -> None:
    opts = ChainOptions.from_pipeline(
        "vad ! hysteresis ! buffer_utterance ! transcribe keyphrase=hello queue=2"
    )
    assert opts.transcribe == {"keyphrase": "hello", "queue": 2}
    assert ChainOptions.from_pipeline("vad ! hysteresis ! buffer_utterance").transcribe is None
    with pytest.raises(LaunchError, match="passthrough is the server's"):
        ChainOptions.from_pipeline("vad ! hysteresis ! buffer_utterance ! transcribe passthrough=1")
    with pytest.raises(ConfigError, match="dictionary"):
        ChainOptions(transcribe={"dictionary": "/nonexistent.dict"})


def test_a_failed_recogniser_is_an_error_event() -> None:
    ev = encode_item(TranscriptionFailed("boom"), ())
    assert ev == {"type": "error", "code": "transcribe_failed", "message": "boom"}


def test_serve_flag_and_pipeline_agree() -> None:
    import argparse

    from rxaudio.apps._serve import add_arguments, chain_options

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert chain_options(p.parse_args(["--transcribe"]), {}).transcribe == {}
    assert chain_options(p.parse_args([]), {}).transcribe is None
    args = p.parse_args(
        ["--transcribe", "--pipeline", "vad ! hysteresis ! buffer_utterance ! transcribe queue=8"]
    )
    assert chain_options(args, {}).transcribe == {"queue": 8}
