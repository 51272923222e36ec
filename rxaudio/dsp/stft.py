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
        self._buf: F32 = np.zeros(0, dtype=np.float32)
        self._rfft = _RFFT_EVEN if n_fft % 2 == 0 else _RFFT_ODD
        # work buffers, grown to the largest number of rows one chunk has produced
        self._cap = 0
        self._xw: F64 = np.zeros((0, n_fft))
        self._spec: C64 = np.zeros((0, self.n_bins), dtype=np.complex64)

    def frames(self, chunk: F32) -> F32:
        """Append ``chunk`` (1-D float32); return the completed frames, shape ``(k, n_fft)``.

        The result may be a strided view into an internal buffer: use it before the next call.
        """
        n_fft, hop = self.n_fft, self.hop
        buf = np.concatenate((self._buf, chunk)) if self._buf.shape[0] else chunk
        n = buf.shape[0]
        if n < n_fft:
            self._buf = np.array(buf, dtype=np.float32, copy=True)
            return np.zeros((0, n_fft), dtype=np.float32)
        k = 1 + (n - n_fft) // hop
        buf = np.ascontiguousarray(buf, dtype=np.float32)
        out: F32 = np.ndarray((k, n_fft), np.float32, buffer=buf, strides=(hop * 4, 4))
        self._buf = np.array(buf[k * hop :], dtype=np.float32, copy=True)
        self.rows += k
        return out

    def _grow(self, k: int) -> None:
        if k > self._cap:
            self._cap = k
            self._xw = np.empty((k, self.n_fft))
            self._spec = np.empty((k, self.n_bins), dtype=np.complex64)

    def spectrum(self, frames: F32) -> C64:
        """Windowed rFFT of frames ``(k, n_fft)``: complex64, shape ``(k, n_fft // 2 + 1)``.

        As ``librosa.stft`` does: computed in float64 (the float64 window promotes the frames)
        and stored as complex64. The result lives in a work buffer: use it (or copy it) before
        the next call.
        """
        k = frames.shape[0]
        self._grow(k)
        xw = np.multiply(frames, self.window, out=self._xw[:k])
        spec = self._spec[:k]
        if self._rfft is not None:
            self._rfft(xw, 1.0, out=spec)
        else:  # pragma: no cover - numpy without the private kernel
            spec[...] = np.fft.rfft(xw, axis=1)  # rounds to complex64
        return spec

    def power(self, frames: F32) -> F32:
        """``np.abs(X)**2`` of :meth:`spectrum` in float32, as ``librosa.feature.melspectrogram``
        computes it from the complex64 STFT (a fresh array)."""
        mag: F32 = np.abs(self.spectrum(frames))
        return np.multiply(mag, mag, out=mag)
