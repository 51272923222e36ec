"""wavdir (to_utterances): one WAV per utterance plus label files, written atomically."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from rxaudio.errors import ConfigError
from rxaudio.frames import FileReceipt, Utterance
from rxaudio.io.labels import read_labels
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.sinks import UtteranceWriter, to_utterances
from rxaudio.sources import from_file
from rxaudio.testing import collect, frame, run_marbles


def _utt(start: int, n: int = 1600, rate: int = 16000) -> Utterance:
    x = (np.sin(np.arange(n) / 7.0) * 0.3).astype(np.float32).reshape(-1, 1)
    return Utterance(x, rate, start + 100, start + n - 100, start, start + n, "silence")


def test_marbles_one_receipt_at_the_end(tmp_path: Any) -> None:
    out = tmp_path / "u"
    src = {"a": frame(0, 160), "U": _utt(0), "b": frame(160, 160), "V": _utt(4000)}
    r = run_marbles("-a-U-b-V-|", src, to_utterances(out))
    assert r.marbles() == "---------(x|)"
    (receipt,) = r.values
    assert isinstance(receipt, FileReceipt) and receipt.frames == 2 and receipt.samples == 3200
    assert sorted(os.listdir(out)) == [
        "utt-0001.wav",
        "utt-0002.wav",
        "utt.jsonl",
        "utt.rttm",
        "utt.txt",
    ]
    recs = [json.loads(x) for x in (out / "utt.jsonl").read_text().splitlines()]
    assert [r["wav"] for r in recs] == ["utt-0001.wav", "utt-0002.wav"]
    assert len(read_labels(str(out / "utt.rttm"))) == 2


def test_error_and_dispose_still_write_labels_for_what_was_written(tmp_path: Any) -> None:
    out = tmp_path / "e"
    r = run_marbles("-U-#", {"U": _utt(0)}, to_utterances(out), error=RuntimeError("boom"))
    assert r.error is not None and r.values[0].reason == "error"
    assert (out / "utt-0001.wav").exists()
    assert len((out / "utt.jsonl").read_text().splitlines()) == 1
    out2 = tmp_path / "d"
    r = run_marbles("-U-V-|", {"U": _utt(0), "V": _utt(4000)}, to_utterances(out2), dispose_at=3)
    assert r.values == [] and sorted(os.listdir(out2))[:1] == ["utt-0001.wav"]
    assert len((out2 / "utt.jsonl").read_text().splitlines()) == 1  # finalized on dispose


def test_resubscribe_gets_a_fresh_numbering(tmp_path: Any) -> None:
    sink = to_utterances(tmp_path / "r", labels="")
    for _ in range(2):
        run_marbles("-U-|", {"U": _utt(0)}, sink)
    assert sorted(os.listdir(tmp_path / "r")) == ["utt-0001.wav"]


def test_a_real_chain_cuts_the_sample_into_wavs(tmp_path: Any, speech_path: str) -> None:
    out = tmp_path / "talk"
    (receipt,) = collect(
        from_file(speech_path).pipe(
            vad(), hysteresis(), buffer_utterance(), to_utterances(out, stem="talk_")
        )
    )
    recs = [json.loads(x) for x in (out / "talk.jsonl").read_text().splitlines()]
    assert receipt.frames == len(recs) >= 3
    for rec in recs:
        info = sf.info(str(out / rec["wav"]))
        assert info.samplerate == 16000 and info.frames > 0
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no partial left


def test_bad_options_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="labels must be drawn from"):
        to_utterances(tmp_path, labels="jsonl,mp3")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        to_utterances(tmp_path / "f")
    with pytest.raises(ConfigError, match="does not exist"):
        to_utterances(tmp_path / "no" / "such")
    with pytest.raises(ConfigError, match="file name prefix"):
        to_utterances(tmp_path, stem="a/b")


def test_writer_charge_refuses_a_file_whole(tmp_path: Any) -> None:
    budget = [4000]

    def charge(n: int) -> bool:
        if n > budget[0]:
            return False
        budget[0] -= n
        return True

    w = UtteranceWriter(str(tmp_path), "x-", labels=("jsonl",), charge=charge)
    assert w.add(_utt(0)) == "x-0001.wav"  # 44 + 3200 bytes
    assert w.add(_utt(4000)) is None  # would pass the budget: nothing written
    w.finish()
    assert sorted(os.listdir(tmp_path)) == ["x-0001.wav", "x.jsonl"]


def test_registered_as_wavdir(tmp_path: Any, from_text: Any) -> None:
    sink = from_text("wavdir", {"location": str(tmp_path / "w"), "labels": "rttm"})
    r = run_marbles("-U-|", {"U": _utt(0)}, sink)
    assert r.values[0].frames == 1 and (tmp_path / "w" / "utt.rttm").exists()
