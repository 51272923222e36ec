"""Streaming short-time Fourier transform: framing with carry, windowed rFFT, once per hop.

:class:`StreamingSTFT` cuts a stream of 1-D chunks into the frames ``librosa.stft(...,
center=False)`` would cut from the whole signal (frame ``i`` covers samples
``[i * hop, i * hop + n_fft)``), carrying at most ``n_fft - 1`` samples between chunks (after a
row, ``n_fft - hop`` of them are the overlap into the next row). Each frame is transformed
exactly once, whatever the chunking.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]

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
        self.window = get_window(window, n_fft)
        self.rows = 0
        self._buf: F32 = np.zeros(0, dtype=np.float32)

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
        step = buf.strides[0]
        out: F32 = as_strided(buf, shape=(k, n_fft), strides=(hop * step, step), writeable=False)
        self._buf = np.array(buf[k * hop :], dtype=np.float32, copy=True)
        self.rows += k
        return out

    def spectrum(self, frames: F32) -> C128:
        """Windowed rFFT of frames ``(k, n_fft)``: complex, shape ``(k, n_fft // 2 + 1)``.

        Computed in float64 like librosa (its float64 window promotes the frames), so power
        and dB values agree with ``librosa.stft`` to float32 rounding.
        """
        return np.asarray(np.fft.rfft(frames * self.window, axis=1), dtype=np.complex128)
