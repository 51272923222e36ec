"""Label files: round trip, the bundled truth, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from rxaudio.errors import FormatError, SourceError
from rxaudio.io.labels import read_labels, write_labels

SEGS = [{"start": 0.5, "end": 1.25}, {"start": 2.0, "end": 3.5}]


@pytest.mark.parametrize("ext", [".rttm", ".jsonl", ".txt"])
def test_round_trip(tmp_path: Path, ext: str) -> None:
    p = str(tmp_path / ("a" + ext))
    write_labels(p, SEGS, uri="a")
    got = read_labels(p)
    assert [v for r in got for v in (r["start"], r["end"])] == pytest.approx(
        [v for s in SEGS for v in (s["start"], s["end"])]
    )


def test_reads_the_bundled_truth(speech_truth: list[dict[str, float]]) -> None:
    from rxaudio.data import speech_sample

    got = read_labels(speech_sample().replace(".wav", ".json"))
    assert [r["start"] for r in got] == [s["start"] for s in speech_truth]


def test_bad_label_files(tmp_path: Path) -> None:
    p = tmp_path / "x.rttm"
    p.write_text("SPEAKER a 1 0.5 1.0 <NA> <NA> speech <NA> <NA>\nSPEAKER a 1 oops\n")
    with pytest.raises(FormatError, match=r"x.rttm:2: expected 'SPEAKER"):
        read_labels(str(p))
    q = tmp_path / "y.jsonl"
    q.write_text('{"start": 2, "end": 1}\n')
    with pytest.raises(FormatError, match=r"y\.jsonl:1: bad segment start=2\.0 end=1\.0"):
        read_labels(str(q))
    with pytest.raises(FormatError, match=r"unknown label file extension \.csv"):
        read_labels(str(tmp_path / "z.csv"))
    with pytest.raises(SourceError, match="no such label file"):
        read_labels(str(tmp_path / "missing.txt"))
