"""Shared by the feature operators' tests: signals, chunkings, the kernel switch, row helpers.

Not a test module (no ``test_`` prefix): ``test_mfcc``, ``test_spectrogram``, ``test_spectral``
and ``test_features`` import it, so the parity machinery they share is written once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.frames import AudioFrame, FeatureFrame
from rxaudio.testing import collect


def _rows(values: list[FeatureFrame]) -> np.ndarray:
    return np.concatenate([v.values for v in values])


# (rate, n_fft, hop): the usual 25-32 ms windows with 10 ms hops, and a non-dividing hop
CONFIGS = [
    (8000, 256, 80),
    (16000, 512, 160),
    (16000, 400, 128),
    (48000, 1024, 480),
    (48000, 2048, 512),
]


def _signal(rate: int, seed: int, seconds: float) -> np.ndarray:
    """Tones, noise, a chirp and a stretch of digital silence (exercises the dB floor)."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    f0, f1 = rng.uniform(80, rate / 8, 2)
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * (f1 + 2000 * t) * t)
    x += rng.uniform(0.001, 0.1) * rng.standard_normal(n)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 6) * t)
    a = int(rng.integers(0, n // 2))
    x[a : a + n // 5] = 0.0
    return x.astype(np.float32)


def _chunks(x: np.ndarray, rate: int, cuts: list[int]) -> list[AudioFrame]:
    edges = sorted({c % len(x) for c in cuts} - {0})
    out, start = [], 0
    for e in [*edges, len(x)]:
        out.append(AudioFrame(x[start:e].reshape(-1, 1), rate, start))
        start = e
    return out


def _stream(x: np.ndarray, rate: int, cuts: list[int], op: Any) -> np.ndarray:
    frames: list[FeatureFrame] = collect(from_iterable(_chunks(x, rate, cuts)).pipe(op))
    rows = [f.row for f in frames]
    assert rows == sorted(rows)
    assert sum(f.n_rows for f in frames) == (frames[-1].row + frames[-1].n_rows if frames else 0)
    return np.concatenate([f.values for f in frames])


signals = st.tuples(
    st.sampled_from(CONFIGS),
    st.integers(0, 2**31),
    st.floats(0.25, 0.8),
    st.lists(st.integers(0, 10**6), max_size=25),
)


# the spectrogram and mfcc kernels have two implementations (compiled, numpy): both are held
# to librosa
PATHS = pytest.mark.parametrize("path", ["compiled", "numpy"])


@contextmanager
def kernel_path(path: str) -> Iterator[None]:
    """Make the operators built inside the block use the compiled or the numpy kernel."""
    old = os.environ.get("RXAUDIO_NO_COMPILED")
    os.environ["RXAUDIO_NO_COMPILED"] = "1" if path == "numpy" else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["RXAUDIO_NO_COMPILED"]
        else:
            os.environ["RXAUDIO_NO_COMPILED"] = old


def _db(s: np.ndarray) -> np.ndarray:
    import librosa

    return np.asarray(librosa.power_to_db(s, top_db=None))


# every rate at least once, whatever hypothesis draws
PINNED = [
    ((8000, 256, 80), 1, 0.5, [777]),
    ((16000, 512, 160), 2, 0.5, [1000, 1500]),
    ((48000, 1024, 480), 3, 0.3, [4097]),
]


def librosa_spectral(
    x: np.ndarray, rate: int, n_fft: int, hop: int, roll: float, p: float = 2.0
) -> np.ndarray:
    """librosa's six spectral features per frame (uncentred), the reference of ``spectral``."""
    import librosa

    kw = {"y": x, "n_fft": n_fft, "hop_length": hop, "center": False}
    f = librosa.feature
    cols = [
        f.spectral_centroid(sr=rate, **kw),
        f.spectral_bandwidth(sr=rate, p=p, **kw),
        f.spectral_rolloff(sr=rate, roll_percent=roll, **kw),
        f.spectral_flatness(**kw),
        f.zero_crossing_rate(x, frame_length=n_fft, hop_length=hop, center=False),
        f.rms(y=x, frame_length=n_fft, hop_length=hop, center=False),
    ]
    return np.stack([c[0] for c in cols], axis=1)
