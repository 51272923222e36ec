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
    n, c = samples.shape
    if c == 1:  # mono (a server's every stream): the same values, a third fewer numpy calls
        return _mono(samples, n)
    x = samples.astype(np.float64, copy=False)
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


_FLOOR = 10.0 ** (FLOOR_DB / 20.0)


def _mono(
    samples: NDArray[np.float32], n: int
) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """:func:`rms_peak_db` of ``(n, 1)`` samples: the same operations on the one column (the
    same pairwise sum of squares, the same square root and ``to_db`` of the same four values),
    so the very same doubles."""
    v = samples[:, 0].astype(np.float64)
    ms = np.add.reduce(v * v) / n
    pk = np.maximum.reduce(np.abs(v, out=v))
    if not math.isfinite(pk):
        raise ValueError("NaN or inf samples; a level of them is meaningless. Clean the input")
    r = math.sqrt(ms)
    a = np.array((r, pk, r, pk))
    db = 20.0 * np.log10(np.maximum(a, _FLOOR, out=a), out=a)
    return float(db[2]), float(db[3]), db[:1], db[1:2]
