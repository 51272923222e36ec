"""rxaudio segment with a file that fails part-way among good ones: no orphan WAVs, the rest
processed, one line per failure, exit 2 at the end."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rxaudio.apps.cli import main
from rxaudio.io.labels import read_labels


def _inputs(tmp_path: Path, speech_path: str) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        shutil.copy(speech_path, src / name)
    size = os.path.getsize(src / "b.wav")
    with open(src / "b.wav", "r+b") as f:  # header intact, half of the data gone
        f.truncate(size // 2)
    return src


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_truncated_file_among_good_ones(
    tmp_path: Path, speech_path: str, jobs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _inputs(tmp_path, speech_path)
    out = tmp_path / "out"
    args = ["segment", str(src), "--out", str(out), "--jobs", jobs, "--no-progress"]
    assert main(args) == 2
    cap = capsys.readouterr()
    err = [line for line in cap.err.splitlines() if line.strip()]
    assert len(err) == 1 and "b.wav" in err[0] and "truncated" in err[0], cap.err
    # the good inputs after the bad one were processed too
    assert len(read_labels(str(out / "a.jsonl"))) == len(read_labels(str(out / "c.jsonl"))) >= 3
    # the bad one has label files for what was cut before the error, and the error is noted
    part = read_labels(str(out / "b.jsonl"))
    assert 1 <= len(part) < len(read_labels(str(out / "a.jsonl")))
    assert all(os.path.exists(out / "b.rttm") and os.path.exists(out / "b.txt") for _ in [0])
    assert "truncated" in (out / "b.error").read_text()
    # no orphan WAVs: every WAV written is in its file's labels
    listed = {r["wav"] for stem in "abc" for r in read_labels(str(out / f"{stem}.jsonl"))}
    assert {p.name for p in out.glob("*.wav")} == listed
    assert "a.wav: " in cap.out and "c.wav: " in cap.out and "b.wav: " not in cap.out


def test_error_note_removed_by_a_later_good_run(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _inputs(tmp_path, speech_path)
    out = tmp_path / "out"
    assert main(["segment", str(src / "b.wav"), "--out", str(out), "--no-progress"]) == 2
    assert (out / "b.error").exists()
    shutil.copy(speech_path, src / "b.wav")
    assert main(["segment", str(src / "b.wav"), "--out", str(out), "--no-progress"]) == 0
    assert not (out / "b.error").exists()
    capsys.readouterr()
