"""Per-frame spectral descriptors from one STFT, each equal to its librosa function.

All functions take rows (one row per frame), not librosa's columns: ``mag`` is the magnitude
spectrum ``|X|`` of shape ``(k, n_fft // 2 + 1)``, ``frames`` the unwindowed time-domain frames
``(k, n_fft)`` the spectrum was computed from. Nothing here computes an FFT.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

DESCRIPTORS: tuple[str, ...] = ("centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms")


def _normalize_l1(mag: F64) -> F64:
    """librosa.util.normalize(S, norm=1): rows whose sum is 0 are left as they are."""
    total = mag.sum(axis=1, keepdims=True)
    total[total < np.finfo(np.float64).tiny] = 1.0
    return np.asarray(mag / total, dtype=np.float64)


def centroid(mag: F64, freqs: F64) -> F64:
    """Spectral centroid (Hz): ``librosa.feature.spectral_centroid``; 0 for a silent frame."""
    return np.asarray(_normalize_l1(mag) @ freqs, dtype=np.float64)


def bandwidth(mag: F64, freqs: F64, cent: F64, p: float = 2.0) -> F64:
    """Spectral bandwidth (Hz) of order ``p`` about ``cent``:
    ``librosa.feature.spectral_bandwidth``."""
    dev = np.abs(freqs[None, :] - cent[:, None]) ** p
    return np.asarray(np.sum(_normalize_l1(mag) * dev, axis=1) ** (1.0 / p), dtype=np.float64)


def rolloff(mag: F64 | F32, freqs: F64, roll_percent: float = 0.85) -> F64:
    """Roll-off frequency (Hz): lowest bin centre where the cumulative magnitude reaches
    ``roll_percent`` of the total (``librosa.feature.spectral_rolloff``).

    Given librosa's own float32 magnitudes the comparison is made in float32 as librosa makes
    it, so the chosen bin is the same even on a tie at the threshold.
    """
    total = np.asarray(np.cumsum(mag, axis=1), dtype=mag.dtype)  # float32 in: float32 sums
    reached = total >= np.multiply(total[:, -1:], roll_percent)
    first = np.argmax(reached, axis=1)  # every row reaches it at the last bin at the latest
    return np.asarray(freqs[first], dtype=np.float64)


def flatness(mag: F64 | F32, amin: float = 1e-10, power: float = 2.0) -> F64:
    """Spectral flatness, geometric over arithmetic mean of ``max(amin, mag**power)``
    (``librosa.feature.spectral_flatness``), in [0, 1]."""
    return _flatness(np.maximum(np.float32(amin), np.asarray(mag, np.float32) ** power))


def _flatness(s: F32) -> F64:
    # float32 throughout, as librosa computes it from its float32 magnitudes
    gmean = np.exp(np.mean(np.log(s), axis=1))
    return np.asarray(gmean / np.mean(s, axis=1), dtype=np.float64)


def zero_crossing_rate(frames: F32, threshold: float = 1e-10) -> F64:
    """Fraction of sample pairs whose sign differs, per frame (samples with ``|x| <= threshold``
    count as zero, which is positive): ``librosa.feature.zero_crossing_rate(center=False)``."""
    neg = frames < -threshold  # signbit(x) and |x| > threshold
    crossings = np.count_nonzero(neg[:, 1:] != neg[:, :-1], axis=1)
    return np.asarray(crossings / frames.shape[1], dtype=np.float64)


def rms(frames: F32) -> F64:
    """Root mean square of the unwindowed frames: ``librosa.feature.rms(y=..., center=False)``
    (squares averaged in float32, as librosa does)."""
    return np.asarray(np.sqrt(np.mean(np.square(frames), axis=1)), dtype=np.float64)


def descriptors(
    mag: F64,
    frames: F32,
    freqs: F64,
    *,
    roll_percent: float = 0.85,
    p: float = 2.0,
    amin: float = 1e-10,
    power: float = 2.0,
    zcr_threshold: float = 1e-10,
    power_spec: F32 | None = None,
    mag32: F32 | None = None,
) -> F64:
    """All of :data:`DESCRIPTORS` as columns, shape ``(k, 6)``.

    ``mag32`` (the float32 magnitudes ``mag`` was widened from) and ``power_spec`` (their
    square in float32), when the caller has them, make rolloff and flatness follow librosa's
    float32 arithmetic exactly and save recomputing them.
    """
    out = np.empty((mag.shape[0], 6))
    norm = _normalize_l1(mag)
    if p == 2.0:
        # moments m0, m1, m2 of the normalised spectrum in one product:
        # centroid = m1, bandwidth**2 = sum S (f - c)**2 = m2 - 2 c m1 + c**2 m0
        m = norm @ _moment_basis(freqs)
        cent = m[:, 1]
        out[:, 1] = np.sqrt(np.maximum(m[:, 2] - 2 * cent * m[:, 1] + cent * cent * m[:, 0], 0))
    else:
        cent = norm @ freqs
        out[:, 1] = np.sum(norm * np.abs(freqs[None, :] - cent[:, None]) ** p, axis=1) ** (1 / p)
    out[:, 0] = cent
    out[:, 2] = rolloff(mag if mag32 is None else mag32, freqs, roll_percent)
    if power == 2.0 and power_spec is not None:
        out[:, 3] = _flatness(np.maximum(np.float32(amin), power_spec))
    else:
        out[:, 3] = flatness(mag, amin, power)
    out[:, 4] = zero_crossing_rate(frames, zcr_threshold)
    out[:, 5] = rms(frames)
    return out


def _moment_basis(freqs: F64) -> F64:
    return np.stack((np.ones_like(freqs), freqs, freqs * freqs), axis=1)
