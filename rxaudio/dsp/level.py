"""Signal level in dBFS."""

from __future__ import annotations

import math

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
    n, c = x.shape
    # the same operations as np.mean/np.max/to_db, fewer calls: one to_db over all four values
    ms = np.add.reduce(x * x, axis=0) / n
    pk = np.maximum.reduce(np.abs(x), axis=0)
    top = np.maximum.reduce(pk)  # NaN when any sample is NaN (maximum propagates it), or inf
    if not math.isfinite(top):
        raise ValueError("NaN or inf samples; a level of them is meaningless. Clean the input")
    total = np.add.reduce(ms) / c if c > 1 else ms[0]
    # math.sqrt and np.sqrt are both the correctly rounded IEEE square root: the same double
    db = to_db(np.concatenate((np.sqrt(ms), pk, (math.sqrt(total), top))))
    return float(db[2 * c]), float(db[2 * c + 1]), db[:c], db[c : 2 * c]
