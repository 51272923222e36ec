"""Sinks are never bypassed: ``rxaudio features`` writes through the ``features`` sink and
``rxaudio segment`` (both paths) through :class:`rxaudio.sinks.UtteranceWriter`."""

from __future__ import annotations

import inspect
import os
import re
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from rxaudio.apps import _features, _segment
from rxaudio.apps.cli import main
from rxaudio.io.labels import read_labels


def _truncated(tmp_path: Path, speech_path: str) -> Path:
    wav = tmp_path / "t.wav"
    shutil.copy(speech_path, wav)
    with open(wav, "r+b") as f:  # header intact, half of the data gone
        f.truncate(os.path.getsize(wav) // 2)
    return wav


@pytest.mark.parametrize("module", [_features, _segment])
def test_the_apps_open_no_output_file_themselves(module: ModuleType) -> None:
    """Every utterance, label and feature file comes from a sink on the atomic-write base."""
    src = inspect.getsource(module)
    for pattern in (r"\bopen\(", r"tempfile", r"os\.replace", r"os\.remove", r"zipfile"):
        assert not re.search(pattern, src), pattern
    for writer in ("write_wav", "write_labels", "savetxt", "pyarrow", "ParquetWriter"):
        assert writer not in src, writer


@pytest.mark.parametrize("ext", ["csv", "npz"])
def test_features_keeps_the_rows_before_a_stream_error(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    wav = _truncated(tmp_path, speech_path)
    out = tmp_path / f"f.{ext}"
    assert main(["features", str(wav), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err
    # the sink finalized the file with every row computed before the error: a valid table
    if ext == "npz":
        rows = np.load(out)["values"].shape[0]
    else:
        rows = len(out.read_text().splitlines()) - 1
    assert rows > 0 and f"holds the {rows} rows before the error" in err
    assert sorted(os.listdir(tmp_path)) == sorted(["t.wav", out.name])  # no partial left


def test_segment_streaming_notes_a_failed_input_with_the_shared_writer(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = _truncated(tmp_path, speech_path)
    out = tmp_path / "out"
    argv = ["segment", str(wav), "--out", str(out), "--no-progress"]
    assert main([*argv, "--streaming"]) == 2
    part = read_labels(str(out / "t.jsonl"))
    assert len(part) >= 1 and part[0]["wav"] == "t_0001.wav"
    note = (out / "t.error").read_text()
    assert "truncated" in note and f"the labels hold the {len(part)} utterance(s)" in note
    assert {p.name for p in out.glob("*.wav")} == {r["wav"] for r in part}
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no partial left
    # the offline fast path writes the very same files
    fast = tmp_path / "fast"
    assert main(["segment", str(wav), "--out", str(fast), "--no-progress"]) == 2
    assert sorted(os.listdir(fast)) == sorted(os.listdir(out))
    for name in os.listdir(out):
        assert (fast / name).read_bytes() == (out / name).read_bytes(), name
    capsys.readouterr()
