"""Label files (RTTM, JSONL, Audacity), the to_labels sink, and the evaluation metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rxaudio.errors import FormatError, SourceError
from rxaudio.frames import FileReceipt, Utterance
from rxaudio.io.labels import read_labels, write_labels
from rxaudio.sinks import to_labels
from rxaudio.testing import run_marbles
from rxaudio.vad.metrics import evaluate

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


def test_to_labels_sink(tmp_path: Path) -> None:
    def utt(a: int, b: int, i: int) -> Utterance:
        return Utterance(np.zeros((b - a, 1), np.float32), 16000, a, b, a, b, "silence", i)

    p = tmp_path / "talk.rttm"
    out = run_marbles(
        "-a-b-|", {"a": utt(16000, 32000, 0), "b": utt(48000, 56000, 1)}, to_labels(p)
    )
    (receipt,) = out.values
    assert isinstance(receipt, FileReceipt) and receipt.frames == 2
    assert p.read_text().splitlines()[1] == (
        "SPEAKER talk 1 3.000 0.500 <NA> <NA> speech <NA> <NA>"
    )
    j = tmp_path / "talk.jsonl"
    run_marbles("-a-|", {"a": utt(8000, 16000, 0)}, to_labels(j))
    rec = json.loads(j.read_text())
    assert (rec["start"], rec["end"], rec["audio_start"]) == (0.5, 1.0, 0.5)


def test_metrics_perfect_and_partial() -> None:
    ref = [(1.0, 2.0), (3.0, 4.0)]
    s = evaluate(ref, ref, duration=5.0)
    assert (s.f1, s.missed_s, s.false_alarm_s, s.onset_error_s) == (1.0, 0.0, 0.0, 0.0)
    hyp = [(1.2, 2.0), (4.5, 4.8)]  # late onset, one miss, one false alarm
    s = evaluate(ref, hyp, duration=5.0)
    assert s.missed_s == pytest.approx(1.2)
    assert s.false_alarm_s == pytest.approx(0.3)
    assert s.precision == pytest.approx(0.8 / 1.1)
    assert s.recall == pytest.approx(0.4)
    assert s.false_alarms_per_min == pytest.approx(12.0)  # 1 false alarm in 5 s
    assert s.onset_error_s == pytest.approx(0.2)


def test_late_starts_use_the_first_utterance_of_a_segment() -> None:
    ref = [(1.0, 3.0)]
    hyp = [(1.05, 1.8), (2.0, 3.0)]  # split at a pause; the second starts late by design
    ok = evaluate(ref, hyp, hyp_audio=[(0.75, 2.0), (1.7, 3.2)])
    assert ok.late_starts_pct == 0.0
    clipped = evaluate(ref, hyp, hyp_audio=[(1.05, 2.0), (1.7, 3.2)])
    assert clipped.late_starts_pct == 100.0


def test_onset_and_offset_of_a_split_sentence() -> None:
    # one sentence found in two pieces: the first starts 0.04 s late, the last ends 0.05 s late;
    # matching the most-overlapping piece used to report a 0.7 s onset error
    ref = [(1.0, 4.0)]
    hyp = [(1.04, 1.6), (1.7, 4.05)]
    s = evaluate(ref, hyp, duration=5.0)
    assert s.onset_error_s == pytest.approx(0.04)
    assert s.offset_error_s == pytest.approx(0.05)
    # and the other way round: the long piece first
    s = evaluate(ref, [(0.9, 3.2), (3.3, 3.9)], duration=5.0)
    assert (s.onset_error_s, s.offset_error_s) == pytest.approx((0.1, 0.1))


def test_eval_uses_the_reference_json_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rxaudio.apps.cli import main
    from rxaudio.io.labels import label_duration

    ref = tmp_path / "clip.json"
    ref.write_text(json.dumps({"duration": 60.0, "segments": [{"start": 1.0, "end": 2.0}]}))
    write_labels(str(tmp_path / "clip.jsonl"), [{"start": 1.0, "end": 2.0}, {"start": 3, "end": 4}])
    assert label_duration(str(ref)) == 60.0
    assert main(["eval", str(ref), str(tmp_path / "clip.jsonl"), "--json"]) == 0
    sc = json.loads(capsys.readouterr().out)["clip"]
    # one false alarm in the 60 s the reference states, not in the 4 s up to the last label
    assert sc["duration_s"] == 60.0 and sc["false_alarms_per_min"] == pytest.approx(1.0)
    assert main(["eval", str(ref), str(tmp_path / "clip.jsonl"), "--json", "--duration", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["clip"]["false_alarms_per_min"] == 2.0
    # the pooled total of several files uses each reference's duration
    (tmp_path / "r").mkdir()
    (tmp_path / "h").mkdir()
    for stem in ("x", "y"):
        (tmp_path / "r" / f"{stem}.json").write_text(ref.read_text())
        (tmp_path / "h" / f"{stem}.jsonl").write_text((tmp_path / "clip.jsonl").read_text())
    assert main(["eval", str(tmp_path / "r"), str(tmp_path / "h"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ALL"]["duration_s"] == 120.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"duration": "long", "segments": []}))
    with pytest.raises(FormatError, match="duration must be a number"):
        label_duration(str(bad))
    assert label_duration(str(tmp_path / "clip.jsonl")) is None
