"""``to_jsonl``: lines as they come, finalized on error and dispose."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rxaudio.operators import level, spectrogram
from rxaudio.sinks import to_jsonl
from rxaudio.sources import from_array
from rxaudio.testing import collect, run_marbles


def test_to_jsonl(tmp_path: os.PathLike[str], speech: np.ndarray) -> None:
    p = os.path.join(tmp_path, "levels.jsonl")
    (receipt,) = collect(from_array(speech, 16000, block_size=1600).pipe(level(), to_jsonl(p)))
    lines = [json.loads(line) for line in open(p)]
    assert receipt.frames == len(lines) == int(np.ceil(speech.shape[0] / 1600))
    assert lines[0]["type"] == "level" and lines[1]["t"] == 0.1
    assert set(lines[1]) == {"type", "t", "rms_db", "peak_db"}  # mono: no per-channel lists


def test_to_jsonl_unserialisable_keeps_earlier_lines(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "bad.jsonl")
    out = run_marbles("-a-b-c-|", {"a": {"x": 1}, "b": object(), "c": {"x": 2}}, to_jsonl(p))
    assert "cannot serialise" in str(out.error)
    assert [json.loads(line) for line in open(p)] == [{"x": 1}]


def test_to_jsonl_dispose_finalizes(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "d.jsonl")
    out = run_marbles(
        "-a-b-c-|", {"a": {"i": 1}, "b": {"i": 2}, "c": {"i": 3}}, to_jsonl(p), dispose_at=4
    )
    assert not out.completed
    assert [json.loads(line)["i"] for line in open(p)] == [1, 2]


def test_log_mel_rows_through_the_jsonl_sink(tmp_path: Path, speech_path: str) -> None:
    """What the live server sends: FeatureFrame.to_dict() lines, rows rebuilt from them."""
    import json

    from rxaudio.sinks import to_jsonl
    from rxaudio.sources import from_file

    out = tmp_path / "rows.jsonl"
    (receipt,) = collect(
        from_file(speech_path, block_size=1024).pipe(spectrogram(kind="log_mel"), to_jsonl(out))
    )
    lines = [json.loads(s) for s in out.read_text().splitlines()]
    assert receipt.frames == len(lines) > 100
    assert {d["kind"] for d in lines} == {"log_mel"}
    assert {d["type"] for d in lines} == {"spectrogram"}
    rows = [r for d in lines for r in d["values"]]
    assert len(rows) == lines[-1]["row"] + len(lines[-1]["values"]) == 1705
    assert all(len(r) == 64 and d["bins"] == 64 for d in lines for r in d["values"])
    assert all(d["rows"] == len(d["values"]) and d["hop"] == 0.01 for d in lines)
    starts = [d["t"] for d in lines]
    assert starts == [round(d["row"] * 160 / 16000, 6) for d in lines]
    # three decimals of dB: a row is within 0.0005 dB of the operator's float32 values
    whole = collect(from_file(speech_path, block_size=1024).pipe(spectrogram(kind="log_mel")))
    ref = np.concatenate([f.values for f in whole])
    assert np.abs(np.asarray(rows) - ref).max() <= 5e-4 + 1e-6


def test_jsonl_log_appends_flushed_lines_and_a_charge_can_refuse_one(tmp_path: Path) -> None:
    from rxaudio.sinks import JsonlLog, to_json

    path = tmp_path / "events.jsonl"
    log = JsonlLog(path)
    assert log.write({"type": "a", "t": 0.5})
    assert path.read_text() == to_json({"type": "a", "t": 0.5}) + "\n"  # flushed as it comes
    sizes: list[int] = []
    assert not log.write({"type": "b"}, lambda n: sizes.append(n) is not None)  # refused
    assert sizes == [len(to_json({"type": "b"})) + 1]
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.write({"type": "c"})
    again = JsonlLog(path)  # reopening appends
    again.write({"type": "d"})
    again.close()
    assert [json.loads(x)["type"] for x in path.read_text().splitlines()] == ["a", "d"]
    assert log.count == 1 and again.count == 1


def test_to_json_is_the_standard_librarys_json_and_never_nan() -> None:
    from rxaudio.sinks import to_json

    rec = {"type": "vad", "t": 1e-05, "p": [0.5, 2], "s": "\u00e9", "n": None, "i": 2**40}
    assert json.loads(to_json(rec)) == rec
    assert json.loads(to_json({"x": float("nan"), "y": float("-inf")})) == {"x": None, "y": None}
    with pytest.raises(TypeError):
        to_json({"x": object()})
