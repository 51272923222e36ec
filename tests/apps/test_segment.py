"""``rxaudio segment``: outputs, folders, backends, errors, and the offline fast path that
equals the operator chain byte for byte."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from rxaudio.apps._segment import segment_file
from rxaudio.apps.cli import main
from rxaudio.io.labels import read_labels

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "make_devset.py")


def _args(**kw: Any) -> argparse.Namespace:
    base = dict(
        backend="silero", mode=3, frame_ms=30, threshold=0.5, neg_threshold=None,
        min_speech_ms=250, min_silence_ms=100, pre_roll_ms=300, post_roll_ms=200, min_ms=0,
        max_ms=30000,
    )  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def _same_outputs(path: str, tmp: Path, args: argparse.Namespace) -> int:
    """Run both paths on ``path``; assert every output file is byte-identical; return count."""
    fast, slow = tmp / "fast", tmp / "slow"
    fast.mkdir(parents=True)
    slow.mkdir(parents=True)
    a = segment_file(path, "x", str(fast), args, streaming=False)
    b = segment_file(path, "x", str(slow), args, streaming=True)
    assert a == b
    names = sorted(os.listdir(fast))
    assert names == sorted(os.listdir(slow))
    assert {"x.jsonl", "x.rttm", "x.txt"} <= set(names)
    for n in names:
        assert (fast / n).read_bytes() == (slow / n).read_bytes(), n
    return int(a["utterances"])


def test_fast_path_equals_chain_on_the_bundled_sample(tmp_path: Path, speech_path: str) -> None:
    assert _same_outputs(speech_path, tmp_path / "d", _args()) >= 3
    # long utterances split at max_ms, no pre-roll clipping at the file start, min_ms drops
    n = _same_outputs(speech_path, tmp_path / "s", _args(max_ms=1400, pre_roll_ms=350, min_ms=200))
    assert n >= 6


@pytest.mark.parametrize("backend", ["webrtc", "energy"])
def test_fast_path_equals_chain_other_backends(
    tmp_path: Path, speech_path: str, backend: str
) -> None:
    assert _same_outputs(speech_path, tmp_path, _args(backend=backend)) >= 1


def test_fast_path_equals_chain_on_devset_clips_at_several_rates(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_devset", SCRIPT)
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    for i, (snr, rate, channels) in enumerate(
        [(10, 8000, 1), (5, 44100, 2), (0, 48000, 1), (20, 22050, 1)]
    ):
        x, _truth, _kind = dev.make_clip(400 + i, snr, rate, n_sentences=3)
        if channels == 2:  # a different right channel: the mono mix must match too
            x = np.stack((x, 0.5 * np.roll(x, 37)), axis=1)
        path = str(tmp_path / f"clip{rate}.wav")
        sf.write(path, x, rate, subtype="FLOAT")
        args = _args(max_ms=2500) if i % 2 else _args()
        assert _same_outputs(path, tmp_path / str(rate), args) >= 2, rate


def test_cli_streaming_flag(tmp_path: Path, speech_path: str) -> None:
    for flag, out in (([], "a"), (["--streaming"], "b")):
        d = str(tmp_path / out)
        assert main(["segment", speech_path, "--out", d, "--no-progress", *flag]) == 0
    a = sorted(os.listdir(tmp_path / "a"))
    assert a == sorted(os.listdir(tmp_path / "b")) and len(a) > 3
    for n in a:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()


def test_segment_one_file_outputs(
    tmp_path: Path, speech_path: str, speech: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["segment", speech_path, "--out", str(out), "--no-progress"]) == 0
    recs = [json.loads(line) for line in (out / "speech_16k.jsonl").read_text().splitlines()]
    assert len(recs) >= 3
    for r in recs:
        x, sr = sf.read(out / r["wav"], dtype="float32")
        assert sr == 16000
        a, b = round(r["audio_start"] * sr), round(r["audio_end"] * sr)
        assert len(x) == b - a
        assert np.allclose(x, speech[a:b], atol=1 / 32768 + 1e-6)  # the source, PCM-rounded
        assert r["audio_start"] <= r["start"] - 0.299 or r["audio_start"] == 0.0  # pre-roll
    for ext in (".rttm", ".txt"):
        back = read_labels(str(out / ("speech_16k" + ext)))
        assert [v for x in back for v in (x["start"], x["end"])] == pytest.approx(
            [v for r in recs for v in (r["start"], r["end"])], abs=1e-3
        )
    assert "utterances" in capsys.readouterr().out


def test_segment_folder_parallel_jobs_and_rates(
    tmp_path: Path, speech8k: np.ndarray, speech: np.ndarray
) -> None:
    import soxr

    src = tmp_path / "in" / "sub"
    src.mkdir(parents=True)
    sf.write(src / "eight.wav", speech8k, 8000)
    x44 = np.asarray(soxr.resample(speech, 16000, 44100), dtype=np.float32)
    sf.write(tmp_path / "in" / "stereo44.flac", np.stack([x44, 0.5 * x44], 1), 44100)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "segment", str(tmp_path / "in"),
         "--out", str(out), "--jobs", "2"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "segment" in r.stderr  # the progress bar
    for stem, rate in (("eight", 8000), ("stereo44", 44100)):
        recs = read_labels(str(out / f"{stem}.jsonl"))
        assert len(recs) >= 3
        x, sr = sf.read(out / recs[0]["wav"], dtype="float32")
        assert sr == rate  # the source's own rate
        assert len(x) == round(recs[0]["audio_end"] * rate) - round(recs[0]["audio_start"] * rate)
    x, _sr = sf.read(out / "stereo44_0001.wav", dtype="float32")
    assert x.shape[1] == 2  # source channels kept, in order
    assert np.allclose(x[:, 1], 0.5 * x[:, 0], atol=2 / 32768)


@pytest.mark.parametrize("streaming", [False, True])
def test_segment_reports_a_nan_at_its_own_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], streaming: bool
) -> None:
    x = np.zeros(3 * 16000, dtype=np.float32)
    x[1000] = np.nan  # inside the first 16 s block: was "at sample 0", the block's start
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    args = ["segment", str(tmp_path / "nan.wav"), "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(args + (["--streaming"] if streaming else [])) == 2
    err = capsys.readouterr().err
    assert "NaN or inf samples at sample 1000 (0.062 s)" in err and "sample 0" not in err


def test_segment_says_symlink_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "o")
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    assert main(["segment", str(tmp_path / "loop.wav"), "--out", out, "--no-progress"]) == 2
    assert "loop.wav: symlink loop (ELOOP" in capsys.readouterr().err
    d = tmp_path / "in"  # inside a folder: that input fails by name, the run goes on
    d.mkdir()
    (d / "loop.wav").symlink_to("loop.wav")
    assert main(["segment", str(d), "--out", out, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "loop.wav: symlink loop (ELOOP" in err and "no such file" not in err


def test_segment_errors_are_one_line(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    assert main(["segment", str(tmp_path / "nope.wav"), "--out", out]) == 2
    assert capsys.readouterr().err.strip().endswith("no such file or folder")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    assert main(["segment", str(empty), "--out", out, "--no-progress"]) == 2
    assert "holds no audio" in capsys.readouterr().err
    assert main(["segment", speech_path, "--out", out, "--threshold", "1.5"]) == 2
    err = capsys.readouterr().err
    assert (
        "hysteresis: threshold must be a finite number in (0, 1], got 1.5" in err
        and len(err.strip().splitlines()) == 1
    )
    assert main(["segment", speech_path, "--out", out, "--neg-threshold", "0.9"]) == 2
    assert "must not be above threshold" in capsys.readouterr().err
    assert main(["segment", speech_path, "--out", out, "--backend", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rxaudio segment: error: vad: backend must be one of 'silero', ")
    assert err.strip().endswith("got 'nope'")


@pytest.mark.parametrize("backend", ["webrtc", "energy"])
def test_segment_other_backends(tmp_path: Path, speech_path: str, backend: str) -> None:
    out = tmp_path / "o"
    assert main(["segment", speech_path, "--out", str(out), "--backend", backend,
                 "--no-progress"]) == 0  # fmt: skip
    assert read_labels(str(out / "speech_16k.jsonl"))


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
