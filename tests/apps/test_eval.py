"""``rxaudio eval``: against the truth, and the reference's duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rxaudio.apps.cli import main
from rxaudio.errors import FormatError
from rxaudio.io.labels import write_labels


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


def test_eval_says_symlink_loop_not_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loop.jsonl").symlink_to("loop.jsonl")
    write_labels(str(tmp_path / "h.jsonl"), [{"start": 1.0, "end": 2.0}])
    assert main(["eval", str(tmp_path / "loop.jsonl"), str(tmp_path / "h.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "loop.jsonl: symlink loop (ELOOP" in err and "no such" not in err
