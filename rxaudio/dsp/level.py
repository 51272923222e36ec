"""Signal level in dBFS."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FLOOR_DB = -120.0


def to_db(x: NDArray[np.float64] | float) -> NDArray[np.float64]:
    """20*log10(x), floored at :data:`FLOOR_DB` (silence is -120 dBFS, never -inf)."""
    a = np.maximum(np.asarray(x, dtype=np.float64), 10.0 ** (FLOOR_DB / 20.0))
    return np.asarray(20.0 * np.log10(a), dtype=np.float64)


def rms_peak_db(
    samples: NDArray[np.float32],
) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """RMS and peak of ``(n, channels)`` samples: overall and per channel, in dBFS.

    Full-scale square wave is 0 dBFS RMS; a full-scale sine is -3.01 dBFS RMS, 0 dBFS peak.
    """
    x = samples.astype(np.float64, copy=False)
    ms = np.mean(x * x, axis=0)
    pk = np.max(np.abs(x), axis=0)
    if not np.isfinite(pk).all():
        raise ValueError("NaN or inf samples; a level of them is meaningless. Clean the input")
    ch_rms = to_db(np.sqrt(ms))
    ch_pk = to_db(pk)
    rms = float(to_db(np.sqrt(float(np.mean(ms)))))
    peak = float(to_db(float(np.max(pk))))
    return rms, peak, ch_rms, ch_pk
