"""Streaming short-time Fourier transform: framing with carry, windowed rFFT, once per hop.

:class:`StreamingSTFT` cuts a stream of 1-D chunks into the frames ``librosa.stft(...,
center=False)`` would cut from the whole signal (frame ``i`` covers samples
``[i * hop, i * hop + n_fft)``), carrying at most ``n_fft - 1`` samples between chunks (after a
row, ``n_fft - hop`` of them are the overlap into the next row). Each frame is transformed
exactly once, whatever the chunking.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
C64 = NDArray[np.complex64]

WINDOWS: tuple[str, ...] = ("hann", "hamming", "blackman", "boxcar")

# periodic (``fftbins=True``) generalised cosine windows: sum_k (-1)^k a_k cos(2 pi k n / N)
_COSINE: dict[str, tuple[float, ...]] = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "boxcar": (1.0,),
}


@lru_cache(maxsize=32)
def get_window(name: str, n_fft: int) -> F64:
    """Periodic analysis window of length ``n_fft`` (float64, read-only).

    Equal to ``scipy.signal.get_window(name, n_fft, fftbins=True)``, which librosa uses.
    """
    if name not in _COSINE:
        raise ValueError(f"unknown window {name!r}; use one of {', '.join(WINDOWS)}")
    n = np.arange(n_fft, dtype=np.float64)
    w = np.zeros(n_fft, dtype=np.float64)
    for k, a in enumerate(_COSINE[name]):
        w += (-1) ** k * a * np.cos(2.0 * np.pi * k * n / n_fft)
    w.flags.writeable = False
    return w


def _pocketfft_ufunc(name: str) -> Any:
    """numpy's own rFFT kernel without ``np.fft.rfft``'s per-call Python overhead (about 2 us,
    a tenth of a chunk's work); ``None`` where this numpy does not expose it."""
    try:
        umath = importlib.import_module("numpy.fft._pocketfft_umath")  # numpy >= 2.0, private
    except ImportError:  # pragma: no cover - older numpy
        return None
    return getattr(umath, name, None)


_RFFT_EVEN = _pocketfft_ufunc("rfft_n_even")
_RFFT_ODD = _pocketfft_ufunc("rfft_n_odd")


# views of the work buffers cached per row count; a stream meets one or two row counts, one
# with chunks of every size meets many: past this many the cache starts over (the buffers
# themselves are sized by the largest row count, never per count)
_MAX_VIEWS = 8


class StreamingSTFT:
    """Frames and their windowed rFFT, computed incrementally.

    Parameters
    ----------
    n_fft
        Frame (and FFT) length in samples.
    hop
        Samples between frame starts (``hop <= n_fft``).
    window
        One of :data:`WINDOWS`.

    Attributes
    ----------
    rows
        Number of frames produced so far; the next frame is row ``rows`` and starts at sample
        ``rows * hop`` of the stream.
    """

    def __init__(self, n_fft: int, hop: int, window: str = "hann") -> None:
        if hop > n_fft:
            raise ValueError(f"hop ({hop}) must not exceed n_fft ({n_fft})")
        self.n_fft = n_fft
        self.hop = hop
        self.n_bins = n_fft // 2 + 1
        self.window = get_window(window, n_fft)
        self.rows = 0
        self._rfft = _RFFT_EVEN if n_fft % 2 == 0 else _RFFT_ODD
        # samples: carried ones at [_off, _off + _carry), moved to the front at the next call
        # (the frames of the last call are views into this buffer)
        self._sbuf: F32 = np.zeros(2 * n_fft, dtype=np.float32)
        self._off = 0
        self._carry = 0
        self._none: F32 = np.zeros((0, n_fft), dtype=np.float32)
        # work buffers, grown to the largest number of rows one chunk has produced, and their
        # views for each row count met so far (a chunk size gives one or two counts: no slicing
        # per call)
        self._cap = 0
        self._windows: F64 = np.zeros((0, n_fft))
        self._xw: F64 = np.zeros((0, n_fft))
        self._spec128: NDArray[np.complex128] = np.zeros((0, self.n_bins), dtype=np.complex128)
        self._spec: C64 = np.zeros((0, self.n_bins), dtype=np.complex64)
        self._views: dict[int, tuple[F64, F64, NDArray[np.complex128], C64]] = {}

    def frames(self, chunk: F32) -> F32:
        """Append ``chunk`` (1-D float32); return the completed frames, shape ``(k, n_fft)``.

        The result is a strided view into an internal buffer: use it before the next call.
        """
        carry, m = self._carry, chunk.shape[0]
        n = carry + m
        buf = self._sbuf
        if n > buf.shape[0]:  # grow (rare: the largest chunk so far sets the size)
            grown = np.empty(max(n, 2 * buf.shape[0]), dtype=np.float32)
            grown[:carry] = buf[self._off : self._off + carry]
            self._sbuf = buf = grown
        elif self._off:
            buf[:carry] = buf[self._off : self._off + carry]  # overlapping move: numpy copes
        self._off = 0
        buf[carry:n] = chunk
        n_fft, hop = self.n_fft, self.hop
        if n < n_fft:
            self._carry = n
            return self._none
        k = 1 + (n - n_fft) // hop
        self._off = k * hop
        self._carry = n - k * hop
        self.rows += k
        out: F32 = np.ndarray((k, n_fft), np.float32, buffer=buf, strides=(hop * 4, 4))
        return out

    def _work(self, k: int) -> tuple[F64, F64, NDArray[np.complex128], C64]:
        if k > self._cap:
            self._cap = k
            # the window repeated per row: a broadcast product would go through numpy's
            # buffered iterator (a 30-60 kB scratch allocation per call)
            self._windows = np.ascontiguousarray(np.broadcast_to(self.window, (k, self.n_fft)))
            self._xw = np.empty((k, self.n_fft))
            self._spec128 = np.empty((k, self.n_bins), dtype=np.complex128)
            self._spec = np.empty((k, self.n_bins), dtype=np.complex64)
            self._views = {}
        elif len(self._views) >= _MAX_VIEWS:  # chunk sizes all over the place: views are cheap
            self._views = {}
        views = (self._windows[:k], self._xw[:k], self._spec128[:k], self._spec[:k])
        self._views[k] = views
        return views

    def spectrum(self, frames: F32) -> C64:
        """Windowed rFFT of frames ``(k, n_fft)``: complex64, shape ``(k, n_fft // 2 + 1)``.

        As ``librosa.stft`` does: computed in float64 (the float64 window promotes the frames)
        and stored as complex64. The result lives in a work buffer: use it (or copy it) before
        the next call.
        """
        k = frames.shape[0]
        views = self._views.get(k)
        windows, xw, wide, spec = views if views is not None else self._work(k)
        np.copyto(xw, frames)  # float32 to float64, exact
        np.multiply(xw, windows, out=xw)
        if self._rfft is not None:
            # into complex128, then one rounding copy: the kernel writing complex64 itself goes
            # through a casting buffer, twice as slow
            self._rfft(xw, 1.0, out=wide)
            np.copyto(spec, wide, casting="same_kind")
        else:  # pragma: no cover - numpy without the private kernel
            spec[...] = np.fft.rfft(xw, axis=1)  # rounds to complex64
        return spec

    def power(self, frames: F32, out: F32 | None = None) -> F32:
        """``np.abs(X)**2`` of :meth:`spectrum` in float32, as ``librosa.feature.melspectrogram``
        computes it from the complex64 STFT (a fresh array unless ``out`` is given)."""
        mag: F32 = np.abs(self.spectrum(frames), out=out)
        return np.multiply(mag, mag, out=mag)
