"""``to_labels``: the label sink."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rxaudio.frames import FileReceipt, Utterance
from rxaudio.sinks import to_labels
from rxaudio.testing import run_marbles


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
