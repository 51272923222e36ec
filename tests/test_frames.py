"""Frames: derived fields, immutability, PCM conversion, bad input, dict forms."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import FormatError
from rxaudio.frames import AudioFrame, FeatureFrame, VadFrame


def test_feature_frame_to_dict_is_compact_json() -> None:
    import json

    v = np.array([[1.23456, -80.0], [2.0, 0.5]], dtype=np.float32)
    f = FeatureFrame("log_mel", v, 320, 16000, 160, 512, 2, ("mel_0", "mel_1"), {"n_mels": 2})
    d = f.to_dict(2)
    assert d == {
        "type": "spectrogram",
        "kind": "log_mel",
        "t": 0.02,
        "hop": 0.01,
        "window": 0.032,
        "row": 2,
        "rows": 2,
        "bins": 2,
        "values": [[1.23, -80.0], [2.0, 0.5]],
    }
    assert "values" not in f.to_dict(values=False)
    full = f.to_dict(with_columns=True)
    assert full["columns"] == ["mel_0", "mel_1"] and full["params"] == {"n_mels": 2}
    assert full["latency"] == 0
    json.dumps(full, allow_nan=False)
    assert list(f.starts) == [320, 480] and f.end == 480 + 512
    assert not f.values.flags.writeable
    from rxaudio.errors import FormatError

    with pytest.raises(FormatError, match="float32"):
        FeatureFrame("mfcc", v.astype(np.float64), 0, 16000, 160, 512)
    with pytest.raises(FormatError, match="no rows"):
        FeatureFrame("mfcc", np.zeros((0, 2), np.float32), 0, 16000, 160, 512)
    with pytest.raises(FormatError, match="3 column names for 2"):
        FeatureFrame("mfcc", v, 0, 16000, 160, 512, 0, ("a", "b", "c"))


def test_derived_fields() -> None:
    f = AudioFrame(np.zeros((160, 2), dtype=np.float32), 16000, 320)
    assert (f.n, f.channels, f.end) == (160, 2, 480)
    assert f.duration == pytest.approx(0.01)
    assert f.time == pytest.approx(0.02)
    assert len(f) == 160


def test_frames_are_immutable() -> None:
    a = np.zeros((4, 1), dtype=np.float32)
    f = AudioFrame(a, 8000)
    with pytest.raises(ValueError):
        f.samples[0, 0] = 1.0
    with pytest.raises(AttributeError):
        f.start = 3  # type: ignore[misc]


def test_pcm16_roundtrip() -> None:
    x = np.array([[0.0, 0.5], [-0.5, -1.0], [0.25, 0.999]], dtype=np.float32)
    f = AudioFrame(x, 48000, 96)
    data = f.to_pcm16()
    assert len(data) == 3 * 2 * 2
    g = AudioFrame.from_pcm16(data, 48000, channels=2, start=96)
    assert g.start == 96 and g.channels == 2
    assert np.allclose(g.samples, x, atol=1 / 32768)


def test_pcm16_clips() -> None:
    f = AudioFrame(np.array([[2.0], [-2.0]], dtype=np.float32), 16000)
    assert np.frombuffer(f.to_pcm16(), "<i2").tolist() == [32767, -32768]


def test_from_array_converts_pcm_and_floats() -> None:
    f = AudioFrame.from_array(np.array([16384, -32768], dtype=np.int16), 16000)
    assert f.samples.dtype == np.float32 and f.samples[:, 0].tolist() == [0.5, -1.0]
    g = AudioFrame.from_array(np.ones((3, 2)), 16000)
    assert g.samples.shape == (3, 2) and g.samples.dtype == np.float32


@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [
        (np.zeros((4, 1), dtype=np.float64), 16000, "float32"),
        (np.zeros(4, dtype=np.float32), 16000, r"shape \(n, channels\)"),
        (np.zeros((0, 1), dtype=np.float32), 16000, "zero-length"),
        (np.zeros((4, 0), dtype=np.float32), 16000, "zero-length"),
        (np.zeros((4, 1), dtype=np.float32), 0, "sample_rate"),
        (np.zeros((4, 1), dtype=np.float32), 16000.0, "sample_rate"),
        ([0.0, 1.0], 16000, "numpy array"),
    ],
)
def test_bad_frames_are_refused(samples: object, rate: object, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        AudioFrame(samples, rate)  # type: ignore[arg-type]


def test_nan_refused_at_the_edge() -> None:
    with pytest.raises(FormatError, match="NaN"):
        AudioFrame.from_array(np.array([0.0, np.nan]), 16000)
    with pytest.raises(FormatError, match="unsupported dtype"):
        AudioFrame.from_array(np.array(["a"]), 16000)


@pytest.mark.parametrize(("n", "ch"), [(3, 1), (5, 2)])
def test_pcm16_bad_length(n: int, ch: int) -> None:
    with pytest.raises(FormatError, match="whole number"):
        AudioFrame.from_pcm16(b"\x00" * n, 16000, channels=ch)


def test_vad_frame_trusted_is_the_same_frozen_frame() -> None:
    import dataclasses

    audio = AudioFrame(np.zeros((512, 1), dtype=np.float32), 16000, 1024)
    args = (1024, 1536, 16000, 0.75, audio, True, 2, 900)
    fast, slow = VadFrame.trusted(*args), VadFrame(*args)
    assert type(fast) is VadFrame
    names = [f.name for f in dataclasses.fields(VadFrame)]
    assert [getattr(fast, n) for n in names] == [getattr(slow, n) for n in names]
    assert fast.to_dict() == slow.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.speech = False  # type: ignore[misc]
