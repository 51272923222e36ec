"""``spectral``: marbles in virtual time, and parity with librosa for any chunking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.errors import StreamError
from rxaudio.frames import AudioFrame, FeatureFrame
from rxaudio.operators import spectral
from rxaudio.testing import collect, concat, frame, run_marbles


def _rows(values: list[FeatureFrame]) -> np.ndarray:
    return np.concatenate([v.values for v in values])


def test_spectral_columns_and_flow() -> None:
    src = {"a": frame(0, 100), "b": frame(100, 700)}
    out = run_marbles("-a-b-|", src, spectral())
    assert out.marbles() == "---x-|"
    (f,) = out.values
    assert f.columns == ("centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms")
    x = concat(list(src.values()))[:, 0].astype(np.float64)
    assert np.allclose(f.values[:, 5], [np.sqrt(np.mean(x[s : s + 512] ** 2)) for s in (0, 160)])


def test_gap_is_filled_with_silence_and_overlap_refused() -> None:
    gap = run_marbles("-a-b-|", {"a": frame(0, 600, value=0.1), "b": frame(1000, 600)}, spectral())
    rows = _rows(gap.values)
    assert rows.shape[0] == 1 + (1600 - 512) // 160
    bad = run_marbles("-a-b-|", {"a": frame(0, 600), "b": frame(300, 600)}, spectral())
    assert isinstance(bad.error, StreamError)
    assert "overlap" in str(bad.error) and bad.error.sample_index == 300


def test_huge_but_finite_samples_are_not_refused() -> None:
    # the fast check sums a chunk: 1024 x 1e36 overflows float32, yet every sample is finite
    # (the rows overflow too, as librosa's would: only the refusal is under test)
    src = {"a": frame(0, 1024, value=0.1), "b": frame(1024, 1024, value=1e36)}
    with np.errstate(all="ignore"):
        out = run_marbles("-a-b-|", src, spectral())
    assert out.error is None and sum(f.n_rows for f in out.values) == 1 + (2048 - 512) // 160


librosa = pytest.importorskip("librosa")


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


def _librosa_spectral(
    x: np.ndarray, rate: int, n_fft: int, hop: int, roll: float, p: float = 2.0
) -> np.ndarray:
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


@given(signals, st.sampled_from([0.85, 0.5]), st.sampled_from([2.0, 2.0, 1.0, 3.0]))
@example(((48000, 1024, 480), 383, 0.5118525079976366, []), 0.5, 2.0)  # a tie at the threshold
def test_spectral_descriptors_equal_librosa(case: Any, roll: float, p: float) -> None:
    (rate, n_fft, hop), seed, seconds, cuts = case
    x = _signal(rate, seed, seconds)
    ref = _librosa_spectral(x, rate, n_fft, hop, roll, p)
    ours = _stream(x, rate, cuts, spectral(n_fft=n_fft, hop=hop, roll_percent=roll, p=p))
    assert ours.shape == ref.shape
    # centroid, bandwidth (Hz): float32 resolution of librosa's own magnitudes
    assert np.allclose(ours[:, :2], ref[:, :2], rtol=1e-5, atol=1e-3)
    # rolloff is a bin centre, chosen by the same float32 comparison as librosa's: equal
    assert np.array_equal(ours[:, 2], ref[:, 2].astype(np.float32))
    assert np.allclose(ours[:, 3], ref[:, 3], rtol=1e-4, atol=1e-7)  # flatness
    assert np.array_equal(ours[:, 4], ref[:, 4].astype(np.float32))  # zcr: exact counts
    assert np.allclose(ours[:, 5], ref[:, 5], rtol=1e-5, atol=1e-8)  # rms
