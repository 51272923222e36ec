"""DCT, derivative weights, dB and streaming deltas against scipy and librosa."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxaudio.dsp.cepstral import StreamingDelta, dct_matrix, derivative_weights, power_to_db

librosa = pytest.importorskip("librosa")


scipy_signal = pytest.importorskip("scipy.signal")


scipy_fft = pytest.importorskip("scipy.fft")


@pytest.mark.parametrize(("n_mfcc", "n_mels"), [(13, 40), (20, 128), (40, 40)])
def test_dct_matrix_equals_scipy_ortho_dct(n_mfcc: int, n_mels: int) -> None:
    x = np.random.default_rng(0).standard_normal((7, n_mels))
    ref = scipy_fft.dct(x, type=2, norm="ortho", axis=1)[:, :n_mfcc]
    assert np.allclose(x @ dct_matrix(n_mfcc, n_mels).T, ref, atol=1e-12)


@pytest.mark.parametrize(("width", "order"), [(3, 1), (5, 1), (9, 1), (5, 2), (9, 2), (11, 2)])
def test_derivative_weights_equal_savgol(width: int, order: int) -> None:
    ref = scipy_signal.savgol_coeffs(width, order, deriv=order, use="dot")
    assert np.allclose(derivative_weights(width, order), ref, atol=1e-12)


def test_power_to_db_equals_librosa_with_fixed_ref() -> None:
    s = np.abs(np.random.default_rng(1).standard_normal((5, 9))) ** 3
    s[0, 0] = 0.0
    for ref in (1.0, 0.01):
        want = librosa.power_to_db(s, ref=ref, amin=1e-10, top_db=None)
        assert np.allclose(power_to_db(s, ref=ref), want, atol=1e-10)


@given(st.integers(1, 40), st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_streaming_delta_any_chunking_equals_librosa(n_rows: int, cuts: list[int]) -> None:
    x = np.random.default_rng(n_rows).standard_normal((n_rows, 3))
    d = StreamingDelta(5, (1, 2))
    edges = sorted({c % n_rows for c in cuts} - {0})
    parts, start, nxt = [], 0, 0
    for e in [*edges, n_rows]:
        first, out = d.push(x[start:e])
        assert first == nxt
        nxt += out.shape[0]
        parts.append(out)
        start = e
    first, out = d.flush()
    assert first == nxt
    got = np.concatenate([*parts, out])
    assert got.shape == (n_rows, 9)
    assert np.allclose(got[:, :3], x, atol=1e-6)
    if n_rows >= 5:
        assert np.allclose(got[:, 3:6], librosa.feature.delta(x.T, width=5).T, atol=1e-5)
        assert np.allclose(got[:, 6:], librosa.feature.delta(x.T, width=5, order=2).T, atol=1e-5)
    elif n_rows >= 2:  # librosa refuses; we give the slope of the least-squares line
        slope = np.polyfit(np.arange(n_rows), x, 1)[0]
        assert np.allclose(got[:, 3:6], slope, atol=1e-5)
    else:
        assert np.all(got[:, 3:] == 0)
