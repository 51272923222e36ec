"""The WAV writer: what an interrupted write leaves, and the partial file's header."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rxaudio.io.wav import WavWriter, write_wav


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


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_write_wav_in_one_go_equals_the_streaming_writer(tmp_path: Path, subtype: str) -> None:
    """write_wav writes the whole signal at once: the very bytes WavWriter gives for it, no
    temporary file left beside it, and through a symlink the link stays a link."""
    x = (np.random.default_rng(3).standard_normal((1234, 2)) * 0.4).astype(np.float32)
    ref = str(tmp_path / "ref.wav")
    w = WavWriter(ref, 16000, 2, subtype)
    w.write(x)
    w.close()
    out = tmp_path / "one"
    out.mkdir()
    assert write_wav(str(out / "a.wav"), x, 16000, subtype) == str(out / "a.wav")
    assert (out / "a.wav").read_bytes() == Path(ref).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["a.wav"]
    (out / "real.wav").write_bytes(b"old")
    (out / "link.wav").symlink_to(out / "real.wav")
    write_wav(str(out / "link.wav"), x, 16000, subtype)
    assert (out / "link.wav").is_symlink()
    assert (out / "real.wav").read_bytes() == Path(ref).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "link.wav", "real.wav"]
    with pytest.raises(ValueError, match="subtype"):
        write_wav(str(out / "b.wav"), x, 16000, "PCM_24")
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "link.wav", "real.wav"]
