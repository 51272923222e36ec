"""The subtitles sink: one cue per transcript with text, written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import reactivex as rx

from rxaudio.errors import ConfigError, FormatError
from rxaudio.frames import FileReceipt, Transcript
from rxaudio.pipeline import registry
from rxaudio.sinks import to_subtitles
from rxaudio.testing import collect, run_marbles

R = 16000
TS = [
    Transcript(0, 16000, 48000, R, "hello there"),
    Transcript(1, 64000, 70000, R, "", status="skipped"),
    Transcript(2, 80000, 96000, R, "general kenobi"),
]


def test_marbles_cues_as_they_come_one_receipt_at_completion(tmp_path: Path) -> None:
    """-T1---T2---|  ->  -----------(R|): the docstring's diagram, in virtual time."""
    out = tmp_path / "m.srt"
    r = run_marbles("-a-b-c-|", {"a": TS[0], "b": TS[1], "c": TS[2]}, to_subtitles(out))
    assert r.marbles() == "-------(x|)"
    (receipt,) = r.values
    assert isinstance(receipt, FileReceipt) and receipt.frames == 2
    assert out.read_text().count(" --> ") == 2  # the skipped one has no cue


def test_marbles_upstream_error_finalizes_the_cues_before_it(tmp_path: Path) -> None:
    out = tmp_path / "e.vtt"
    boom = RuntimeError("mic unplugged")
    r = run_marbles("-a-#", {"a": TS[0]}, to_subtitles(out), error=boom)
    assert r.marbles() == "---(x#)"
    assert r.values[0].frames == 1 and r.values[0].reason == "error" and r.error is boom
    assert "hello there" in out.read_text()


def test_srt_and_vtt(tmp_path: Path) -> None:
    (r,) = collect(rx.from_iterable([*TS, "other"]).pipe(to_subtitles(tmp_path / "a.srt")))
    assert isinstance(r, FileReceipt) and r.frames == 2 and r.reason == "completed"
    assert (tmp_path / "a.srt").read_text() == (
        "1\n00:00:01,000 --> 00:00:03,000\nhello there\n\n"
        "2\n00:00:05,000 --> 00:00:06,000\ngeneral kenobi\n\n"
    )
    collect(rx.from_iterable(TS).pipe(to_subtitles(tmp_path / "a.vtt")))
    vtt = (tmp_path / "a.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\nhello there\n\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.srt", "a.vtt"]  # no .partial left


def test_no_transcripts_is_a_valid_empty_file(tmp_path: Path) -> None:
    collect(rx.empty().pipe(to_subtitles(tmp_path / "e.vtt")))
    assert (tmp_path / "e.vtt").read_text() == "WEBVTT\n\n"


def test_upstream_error_keeps_the_cues_written(tmp_path: Path) -> None:
    boom = RuntimeError("boom")
    src = rx.from_iterable(TS[:1]).pipe(lambda s: rx.concat(s, rx.throw(boom)))
    with pytest.raises(RuntimeError, match="boom"):
        collect(src.pipe(to_subtitles(tmp_path / "x.srt")))
    assert "hello there" in (tmp_path / "x.srt").read_text()


def test_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        to_subtitles(tmp_path / "no" / "x.srt")
    with pytest.raises(FormatError, match=r"use \.srt or \.vtt"):
        to_subtitles(tmp_path / "x.ass")


def test_registered_with_a_launch_name(tmp_path: Path) -> None:
    info = registry.get("subtitles")
    assert info.kind == "sink" and info.prop("location").name == "path"
