"""The WAV writer: what an interrupted write leaves, and the partial file's header."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from rxaudio.io.wav import WavWriter


def test_wav_writer_close_drops_a_block_cut_short(tmp_path: Path) -> None:
    # KeyboardInterrupt on the writing thread can stop a write part-way, leaving bytes past
    # the data counted so far. close() cuts them off; the header matches what stays.
    p = str(tmp_path / "cut.wav")
    w = WavWriter(p, 16000, 1)
    w.write(np.full((100, 1), 0.5, dtype=np.float32))
    with open(w.tmp, "ab") as f:
        f.write(b"\x01\x02\x03")  # what an interrupted write leaves behind
    w.close()
    assert os.path.getsize(p) == 44 + 200 and w.samples == 100
    y, _ = sf.read(p, dtype="float32")
    assert y.shape == (100,) and np.allclose(y, 0.5, atol=1 / 32768)
    assert os.listdir(tmp_path) == ["cut.wav"]


def test_wav_writer_partial_appears_with_its_header(tmp_path: Path) -> None:
    w = WavWriter(str(tmp_path / "h.wav"), 8000, 2, "FLOAT")
    info = sf.info(w.tmp)  # readable from the moment it exists: never an empty file
    assert info.frames == 0 and info.channels == 2 and info.samplerate == 8000
    assert os.listdir(tmp_path) == [".h.wav.partial"]  # no scratch name left beside it
    w.close()
    assert os.listdir(tmp_path) == ["h.wav"]
