"""``spectral``: marbles in virtual time, and parity with librosa for any chunking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rxaudio.errors import StreamError
from rxaudio.operators import spectral
from rxaudio.testing import concat, frame, run_marbles

from .feature_parity import _rows, _signal, _stream, librosa_spectral, signals


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


@given(signals, st.sampled_from([0.85, 0.5]), st.sampled_from([2.0, 2.0, 1.0, 3.0]))
@example(((48000, 1024, 480), 383, 0.5118525079976366, []), 0.5, 2.0)  # a tie at the threshold
def test_spectral_descriptors_equal_librosa(case: Any, roll: float, p: float) -> None:
    (rate, n_fft, hop), seed, seconds, cuts = case
    x = _signal(rate, seed, seconds)
    ref = librosa_spectral(x, rate, n_fft, hop, roll, p)
    ours = _stream(x, rate, cuts, spectral(n_fft=n_fft, hop=hop, roll_percent=roll, p=p))
    assert ours.shape == ref.shape
    # centroid, bandwidth (Hz): float32 resolution of librosa's own magnitudes
    assert np.allclose(ours[:, :2], ref[:, :2], rtol=1e-5, atol=1e-3)
    # rolloff is a bin centre, chosen by the same float32 comparison as librosa's: equal
    assert np.array_equal(ours[:, 2], ref[:, 2].astype(np.float32))
    assert np.allclose(ours[:, 3], ref[:, 3], rtol=1e-4, atol=1e-7)  # flatness
    assert np.array_equal(ours[:, 4], ref[:, 4].astype(np.float32))  # zcr: exact counts
    assert np.allclose(ours[:, 5], ref[:, 5], rtol=1e-5, atol=1e-8)  # rms
