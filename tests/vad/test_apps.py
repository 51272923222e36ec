"""rxaudio segment, eval and record --segment, in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rxaudio.apps.cli import main
from rxaudio.io.labels import read_labels


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


def test_eval_against_the_truth(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    main(["segment", speech_path, "--out", str(out), "--no-progress"])
    capsys.readouterr()
    truth = speech_path.replace(".wav", ".json")
    assert main(["eval", truth, str(out / "speech_16k.jsonl"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)["speech_16k"]
    assert scores["f1"] > 0.9 and scores["late_starts_pct"] == 0.0
    assert main(["eval", truth, str(out / "speech_16k.rttm")]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["file", "F1", "prec"]
    assert main(["eval", truth, str(tmp_path)]) == 2
    assert "both be files or both be folders" in capsys.readouterr().err


def test_record_segment_live(tmp_path: Path, speech_path: str) -> None:
    # 6 s of the sample in real time: the first sentence (1.0-4.4 s) is cut while recording
    r = subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "record", str(tmp_path / "take.wav"),
         "--source", speech_path, "--seconds", "6", "--quiet", "--segment", str(tmp_path / "u")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    recs = read_labels(str(tmp_path / "u" / "take.jsonl"))
    assert len(recs) >= 1 and recs[0]["start"] == pytest.approx(1.056, abs=0.04)
    assert os.path.exists(tmp_path / "u" / recs[0]["wav"])
    assert "utterances ->" in r.stdout
