"""dB scaling, the DCT-II for MFCCs and streaming deltas, equal to librosa's definitions."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from ._native import compiled_module

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


def power_to_db(power: NDArray[np.floating], *, ref: float = 1.0, amin: float = 1e-10) -> F64:
    """``10 log10(max(amin, S)) - 10 log10(max(amin, ref))``: ``librosa.power_to_db`` with a
    fixed ``ref`` and ``top_db=None`` (a stream cannot know the whole signal's maximum)."""
    out = 10.0 * np.log10(np.maximum(amin, power))
    out -= 10.0 * math.log10(max(amin, abs(ref)))
    return np.asarray(out, dtype=np.float64)


@lru_cache(maxsize=32)
def dct_matrix(n_mfcc: int, n_mels: int, lifter: float = 0.0) -> F64:
    """Orthonormal DCT-II rows ``(n_mfcc, n_mels)``, with librosa's optional sinusoidal lifter.

    ``log_mel @ dct_matrix(...).T`` equals ``scipy.fft.dct(log_mel, type=2, norm="ortho")``
    truncated to ``n_mfcc`` coefficients, as ``librosa.feature.mfcc`` computes it.
    """
    k = np.arange(n_mfcc, dtype=np.float64)[:, None]
    n = np.arange(n_mels, dtype=np.float64)[None, :]
    m = np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * n_mels)) * math.sqrt(2.0 / n_mels)
    m[0] /= math.sqrt(2.0)
    if lifter > 0:
        li = np.sin(np.pi * np.arange(1, 1 + n_mfcc, dtype=np.float64) / lifter)
        m *= (1.0 + (lifter / 2.0) * li)[:, None]
    m.flags.writeable = False
    return m


@lru_cache(maxsize=64)
def derivative_weights(n: int, order: int) -> F64:
    """Weights ``w`` such that ``w @ x[t - n//2 : t + n//2 + 1]`` is the ``order``-th derivative
    of the least-squares polynomial of degree ``order`` through ``n`` points.

    This is the Savitzky-Golay filter ``librosa.feature.delta`` applies
    (``savgol_filter(x, n, deriv=order, polyorder=order)``). The fitted polynomial's
    ``order``-th derivative is a constant, so the same weights give the value anywhere in the
    window (what ``mode="interp"`` uses at the edges).
    """
    pos = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    vander = np.vander(pos, order + 1, increasing=True)
    w = math.factorial(order) * np.linalg.pinv(vander)[order]
    w.flags.writeable = False
    return np.asarray(w, dtype=np.float64)


class StreamingDelta:
    """Append delta (and delta-delta) features to a stream of rows, with a fixed latency.

    Row ``t``'s deltas need rows up to ``t + width // 2``, so rows come out ``latency =
    width // 2`` rows late; :meth:`flush` releases the last ones. Values equal
    ``librosa.feature.delta(x, width=width, order=o, axis=0)`` (``mode="interp"``) on every row,
    edges included, for streams of at least ``width`` rows. Shorter streams (where librosa
    refuses) get the derivative of the least-squares fit over all their rows (zero for fewer
    than ``order + 1`` rows).

    Parameters
    ----------
    width
        Odd window length in rows, at least 3.
    orders
        Derivative orders to append, e.g. ``(1,)`` or ``(1, 2)``.
    """

    def __init__(self, width: int, orders: tuple[int, ...]) -> None:
        if width < 3 or width % 2 == 0:
            raise ValueError(f"delta width must be odd and >= 3, got {width}")
        self.width = width
        self.half = width // 2
        self.latency = self.half
        self.orders = orders
        self._w = np.stack([derivative_weights(width, o) for o in orders])  # (n_orders, width)
        mod = compiled_module()
        self._compiled = None if mod is None else mod.deltas  # else the numpy product below
        # rows held, in a buffer reused from push to push: valid rows [0, _n) are stream rows
        # [_base, _base + _n); rows no longer needed are dropped only when room is needed
        self._buf: F64 | None = None
        self._n = 0
        self._W: F64 | None = None
        self._base = 0
        self._seen = 0  # rows pushed
        self._done = 0  # rows emitted

    @property
    def _hist(self) -> F64 | None:
        """The rows held (a view), ``None`` before the first push."""
        return None if self._buf is None else self._buf[: self._n]

    def _rows(self, stop: int) -> F32:
        """Emit rows ``[_done, stop)`` with their deltas."""
        buf = self._buf
        assert buf is not None
        d = buf.shape[1]
        lo, hi = self.half, self._seen - 1 - self.half
        if self._compiled is not None:  # the same sums, in C (about 4 us less per call)
            out = np.empty((stop - self._done, d * (1 + len(self.orders))), dtype=np.float32)
            base = self._base
            self._compiled(buf[: self._n], self._w, out, self._done - base, lo - base, hi - base)
            self._done = stop
            return out
        W = self._W
        if W is None or W.shape[0] != self.width * d:
            # block weights: windows (k, width * d) @ W -> (k, n_orders * d)
            eye = np.eye(d)
            W = self._W = np.hstack([np.kron(w[:, None], eye) for w in self._w])
        c0, c1 = min(max(self._done, lo), hi), min(max(stop - 1, lo), hi)
        # windows of the distinct centres c0..c1 are consecutive: one strided view, no copy
        windows = np.ndarray(
            (c1 - c0 + 1, self.width * d),
            np.float64,
            buffer=buf,
            offset=(c0 - self.half - self._base) * d * 8,
            strides=(d * 8, 8),
        )
        per_centre = np.dot(windows, W)
        k = stop - self._done
        out = np.empty((k, d + W.shape[1]), dtype=np.float32)
        out[:, :d] = buf[self._done - self._base : stop - self._base]
        if c1 - c0 + 1 == k:  # no edge row among them
            out[:, d:] = per_centre
        else:  # edge rows repeat their window's centre value
            out[:, d:] = per_centre[np.clip(np.arange(self._done, stop), lo, hi) - c0]
        self._done = stop
        return out

    def push(self, rows: F32 | F64) -> tuple[int, F32]:
        """Add rows ``(k, d)``; return ``(index of the first row out, rows with deltas)``."""
        first = self._done
        k, d = rows.shape
        buf = self._buf
        if buf is None:
            buf = self._buf = np.empty((max(4 * self.width, 2 * k + self.width), d))
        n = self._n
        if n + k > buf.shape[0]:
            # drop what neither later rows nor the final edge rows still need
            keep = min(self._done - self.half, self._seen - self.width)
            if keep > self._base:
                drop = keep - self._base
                buf[: n - drop] = buf[drop:n]  # overlapping move: numpy copes
                n -= drop
                self._base = keep
            if n + k > buf.shape[0]:  # a chunk larger than any before: grow
                grown = np.empty((2 * (n + k), d))
                grown[:n] = buf[:n]
                buf = self._buf = grown
        buf[n : n + k] = rows
        self._n = n + k
        self._seen += k
        stop = self._seen - self.half if self._seen >= self.width else self._done
        if stop > self._done:
            return first, self._rows(stop)
        return first, np.zeros((0, d * (1 + len(self.orders))), dtype=np.float32)

    def flush(self) -> tuple[int, F32]:
        """End of stream: the rows still held back, with their deltas."""
        first = self._done
        hist = self._hist
        if hist is None or self._done >= self._seen:
            d = 0 if hist is None else hist.shape[1]
            return first, np.zeros((0, d * (1 + len(self.orders))), dtype=np.float32)
        if self._seen >= self.width:
            return first, self._rows(self._seen)
        # fewer rows than the window: fit over everything there is (all still held)
        n = hist.shape[0]
        ds = []
        for o in self.orders:
            if n > o:
                w = derivative_weights(n, o)
                ds.append(np.broadcast_to(w @ hist, hist.shape))
            else:
                ds.append(np.zeros_like(hist))
        self._done = self._seen
        return first, np.concatenate([hist, *ds], axis=1).astype(np.float32)
