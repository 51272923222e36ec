"""Mel scale and mel filter banks in plain numpy, equal to ``librosa.filters.mel``.

librosa's own ``filters.mel`` is correct but its first call in a process pays about 1.5 s of
lazy imports; these functions reproduce it step by step (same float32 rounding order) so a
streaming pipeline never pays that warm-up. ``tests/dsp/test_mel.py`` checks the equality.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]

_F_SP = 200.0 / 3  # Slaney: 66.67 Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = float(np.log(6.4) / 27.0)


def hz_to_mel(freqs: F64 | float, *, htk: bool = False) -> F64:
    """Hz to mel (Slaney's auditory toolbox scale, or HTK's ``2595 log10(1 + f/700)``)."""
    f = np.asarray(freqs, dtype=np.float64)
    if htk:
        return np.asarray(2595.0 * np.log10(1.0 + f / 700.0), dtype=np.float64)
    mels = f / _F_SP
    high = f >= _MIN_LOG_HZ
    safe = np.where(high, f, _MIN_LOG_HZ)
    return np.asarray(
        np.where(high, _MIN_LOG_MEL + np.log(safe / _MIN_LOG_HZ) / _LOGSTEP, mels),
        dtype=np.float64,
    )


def mel_to_hz(mels: F64 | float, *, htk: bool = False) -> F64:
    """Mel to Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return np.asarray(700.0 * (10.0 ** (m / 2595.0) - 1.0), dtype=np.float64)
    freqs = _F_SP * m
    high = m >= _MIN_LOG_MEL
    return np.asarray(
        np.where(high, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), freqs),
        dtype=np.float64,
    )


def mel_frequencies(n_mels: int, fmin: float, fmax: float, *, htk: bool = False) -> F64:
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale from ``fmin`` to ``fmax``."""
    mels = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels)
    return mel_to_hz(mels, htk=htk)


def fft_frequencies(sample_rate: int, n_fft: int) -> F64:
    """Centre frequency (Hz) of each of the ``n_fft // 2 + 1`` rFFT bins."""
    return np.asarray(np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate), dtype=np.float64)


def _weights(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: bool
) -> tuple[F32, F64]:
    fftfreqs = fft_frequencies(sample_rate, n_fft)
    mel_f = mel_frequencies(n_mels + 2, fmin, fmax, htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    if norm:
        enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, np.newaxis]
    return weights, mel_f


def empty_filters(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    htk: bool = False,
) -> list[int]:
    """Indices of the mel filters that no FFT bin falls into (librosa warns about these).

    The same test as librosa's (``weights.max(axis=1) > 0`` on the float32 bank), without
    building the bank: a triangle's largest weight is at one of the two bins around its peak,
    so only those two are evaluated, with the bank's own formula and rounding. O(n_mels).
    """
    top = sample_rate / 2.0 if fmax is None else fmax
    fftfreqs = fft_frequencies(sample_rate, n_fft)
    mel_f = mel_frequencies(n_mels + 2, fmin, top, htk=htk)
    fdiff = np.diff(mel_f)
    right = np.searchsorted(fftfreqs, mel_f[1:-1])  # first bin at or above each peak
    best = np.zeros(n_mels, dtype=np.float32)
    for cand in (right - 1, right):
        inside = (cand >= 0) & (cand < fftfreqs.shape[0])
        f = fftfreqs[np.clip(cand, 0, fftfreqs.shape[0] - 1)]
        lower = -(mel_f[:-2] - f) / fdiff[:-1]
        upper = (mel_f[2:] - f) / fdiff[1:]
        w = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
        best = np.maximum(best, np.where(inside, w, np.float32(0)))
    bad = ~((mel_f[:-2] == 0) | (best > 0))
    return [int(i) for i in np.flatnonzero(bad)]


def max_mels(
    sample_rate: int, n_fft: int, fmin: float = 0.0, fmax: float | None = None, *, htk: bool = False
) -> int:
    """The largest ``n_mels`` with no empty filter for this rate and FFT size.

    Bisection between 1 and ``n_fft // 2 + 1`` (more mels make narrower triangles, so empty
    filters appear from some count on): the answer has no empty filter and one more mel has
    some. About ``log2(n_fft)`` checks of :func:`empty_filters`, each O(n_mels).
    """
    lo, hi = 1, n_fft // 2 + 1
    if not empty_filters(sample_rate, n_fft, hi, fmin, fmax, htk=htk):
        return hi
    while hi - lo > 1:  # invariant: lo has no empty filter (or is 1), hi has some
        mid = (lo + hi) // 2
        if empty_filters(sample_rate, n_fft, mid, fmin, fmax, htk=htk):
            hi = mid
        else:
            lo = mid
    return lo


@lru_cache(maxsize=64)
def mel_filters(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    htk: bool = False,
    norm: bool = True,
) -> F32:
    """The mel filter bank, shape ``(n_mels, n_fft // 2 + 1)``, float32, read-only.

    Equal to ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax, htk=htk, norm="slaney" if norm else None)``. ``norm=True`` is Slaney's area
    normalisation (each triangle divided by its width in Hz, times 2).
    """
    top = sample_rate / 2.0 if fmax is None else fmax
    weights, _ = _weights(sample_rate, n_fft, n_mels, fmin, top, htk, norm)
    weights.flags.writeable = False
    return weights
