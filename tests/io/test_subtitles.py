"""SubRip and WebVTT cues: timestamps, wrapping, formats."""

from __future__ import annotations

import pytest

from rxaudio.errors import FormatError
from rxaudio.io.subtitles import cue, header, subtitle_format, timestamp


def test_timestamps() -> None:
    assert timestamp(0, "srt") == "00:00:00,000"
    assert timestamp(3723.4567, "srt") == "01:02:03,457"
    assert timestamp(3723.4567, "vtt") == "01:02:03.457"
    assert timestamp(-0.001, "vtt") == "00:00:00.000"


def test_cue_wraps_and_numbers() -> None:
    text = "the quick brown fox jumps over the lazy dog and then it jumps again twice"
    c = cue("srt", 3, 1.5, 4.25, text)
    lines = c.split("\n")
    assert lines[0] == "3" and lines[1] == "00:00:01,500 --> 00:00:04,250"
    assert all(len(ln) <= 42 for ln in lines[2:]) and c.endswith("\n\n")
    assert " ".join(ln for ln in lines[2:] if ln) == text
    assert header("vtt") == "WEBVTT\n\n" and header("srt") == ""


def test_bad_input() -> None:
    with pytest.raises(FormatError, match=r"ends .* before it starts"):
        cue("srt", 1, 2.0, 1.0, "x")
    with pytest.raises(FormatError, match=r"use \.srt or \.vtt"):
        subtitle_format("talk.sub")
    with pytest.raises(FormatError, match="use srt or vtt"):
        subtitle_format("talk.srt", "ass")
    assert subtitle_format("A.VTT") == "vtt" and subtitle_format("x", "srt") == "srt"
