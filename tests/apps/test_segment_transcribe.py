"""``rxaudio segment --transcribe``: text in the labels, subtitle files, same on both paths."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from rxaudio.apps._segment import segment_file
from rxaudio.apps.cli import main

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.slow


def _lines(p: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in p.read_text().splitlines()]


def test_cli_writes_text_and_subtitles(tmp_path: Path, speech_path: str) -> None:
    out = tmp_path / "o"
    assert main(["segment", speech_path, "--out", str(out), "--no-progress", "--transcribe"]) == 0
    recs = _lines(out / "speech_16k.jsonl")
    assert len(recs) >= 3 and all(isinstance(r["text"], str) for r in recs)
    assert all({"words", "confidence", "wav"} <= set(r) for r in recs)
    text = " ".join(r["text"] for r in recs)
    assert "hello" in text and "pipeline" in text  # PocketSphinx hears these (tests/asr)
    for r in recs:
        for w in r["words"]:  # word times inside the WAV's span, seconds of the input
            assert r["audio_start"] - 0.05 <= w["start"] < w["end"] <= r["audio_end"] + 0.05
    srt = (out / "speech_16k.srt").read_text()
    vtt = (out / "speech_16k.vtt").read_text()
    cues = [r for r in recs if r["text"]]
    assert srt.count(" --> ") == vtt.count(" --> ") == len(cues)
    assert srt.startswith("1\n") and vtt.startswith("WEBVTT\n\n1\n")
    audacity = (out / "speech_16k.txt").read_text().splitlines()
    assert [ln.split("\t")[2] for ln in audacity] == [r["text"] or "speech" for r in recs]
    assert not [n for n in os.listdir(out) if n.endswith(".partial") or n.startswith(".")]


def test_without_the_flag_nothing_changes(tmp_path: Path, speech_path: str) -> None:
    assert main(["segment", speech_path, "--out", str(tmp_path), "--no-progress"]) == 0
    assert not list(tmp_path.glob("*.srt")) and not list(tmp_path.glob("*.vtt"))
    assert all("text" not in r for r in _lines(tmp_path / "speech_16k.jsonl"))


def test_fast_path_equals_the_chain_with_transcripts(tmp_path: Path, speech_path: str) -> None:
    args = argparse.Namespace(
        backend="silero", mode=3, frame_ms=30, threshold=0.5, neg_threshold=None,
        min_speech_ms=250, min_silence_ms=300, pre_roll_ms=300, post_roll_ms=200, min_ms=0,
        max_ms=30000, transcribe=True, lm=None, dictionary=None, keyphrase=None,
        kws_threshold=None,
    )  # fmt: skip
    (tmp_path / "f").mkdir()
    (tmp_path / "s").mkdir()
    segment_file(speech_path, "x", str(tmp_path / "f"), args, streaming=False)
    segment_file(speech_path, "x", str(tmp_path / "s"), args, streaming=True)
    for n in ("x.jsonl", "x.srt", "x.vtt", "x.txt"):
        assert (tmp_path / "f" / n).read_bytes() == (tmp_path / "s" / n).read_bytes(), n


def test_bad_recogniser_options_stop_before_any_work(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    flags = ["--transcribe", "--dictionary", str(tmp_path / "missing.dict")]
    assert main(["segment", speech_path, "--out", str(out), *flags]) == 2
    assert "dictionary" in capsys.readouterr().err and not out.exists()
    assert main(["segment", speech_path, "--out", str(out), "--transcribe", "--keyphrase",
                 "zzyzxqq"]) == 2  # fmt: skip
    assert "not in the dictionary" in capsys.readouterr().err


def test_launch_string_carries_transcripts_to_jsonl(tmp_path: Path, speech_path: str) -> None:
    out = tmp_path / "t.jsonl"
    chain = (
        f"file location={speech_path} ! vad ! hysteresis min_silence_ms=300 ! buffer_utterance "
        f"! transcribe overflow=wait ! jsonl location={out}"
    )
    assert main(["launch", chain]) == 0
    recs = _lines(out)
    assert [r["type"] for r in recs] == ["transcript"] * 3
    assert [r["utterance"] for r in recs] == [0, 1, 2] and "hello" in recs[0]["text"]
