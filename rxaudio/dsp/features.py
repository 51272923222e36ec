"""Streaming feature kernels: spectrogram, mel, log-mel, MFCC (+ deltas), spectral descriptors.

Each kernel takes 1-D float32 chunks of one signal and returns ``(first_row, rows)``: the
feature rows completed by that chunk, where row ``i`` is computed from samples
``[i * hop, i * hop + n_fft)`` of the stream, exactly as librosa's ``center=False`` does on the
whole signal. Work happens once per hop; a kernel holds at most ``n_fft - 1`` samples (and,
for deltas, ``width`` rows), whatever the stream's length.

Two implementations compute the spectrogram and MFCC rows. The compiled one
(``rxaudio/dsp/_melkernel.c``, built at install) does a chunk's framing, windowed FFT, mel
product, log and DCT in one call, in float64, rounding once; it serves power-of-two ``n_fft``.
The numpy one serves every other size, and everything where the extension could not be built
(or ``RXAUDIO_NO_COMPILED=1`` is set). Both match librosa within the documented tolerances.
The compiled one gives bit-identical rows for any chunking; the numpy one can differ by a
float32 step between chunkings (its float32 mel product goes through BLAS, whose summation
order depends on how many rows a call has). They differ from each other by float32 rounding
(the numpy path rounds the STFT to complex64 as librosa does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ._native import compiled_module as compiled_module  # re-exported for callers
from .cepstral import StreamingDelta, dct_matrix
from .mel import fft_frequencies, mel_filters
from .spectral import DESCRIPTORS, descriptors
from .stft import _MAX_VIEWS, StreamingSTFT

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

SPECTROGRAM_KINDS: tuple[str, ...] = ("power", "magnitude", "mel", "log_mel")
_MODES = {"power": 0, "magnitude": 1, "mel": 2, "log_mel": 3, "mfcc": 4}


def use_compiled(n_fft: int, amin: float, compiled: bool | None) -> bool:
    """Whether a kernel with these options runs compiled: ``compiled=None`` picks it where it
    applies, ``True`` insists (``RuntimeError`` where it cannot), ``False`` refuses it."""
    if compiled is False:
        return False
    fits = n_fft >= 16 and n_fft & (n_fft - 1) == 0 and amin >= float(np.finfo(np.float64).tiny)
    ok = fits and compiled_module() is not None
    if compiled and not ok:
        why = (
            "n_fft is not a power of two >= 16 (or amin is not a normal float)"
            if not fits
            else "the extension rxaudio.dsp._melkernel is not built (reinstall with a C "
            "compiler: pip install -e .) or RXAUDIO_NO_COMPILED is set"
        )
        raise RuntimeError(f"compiled feature kernel unavailable: {why}")
    return ok


_sum = np.add.reduce


def refuse_non_finite(chunk: F32) -> None:
    """Raise ``FloatingPointError`` naming the first NaN or infinite sample of ``chunk`` (the
    kernels' contract: such a chunk is refused before any state changes)."""
    if not math.isfinite(_sum(chunk)):  # under 1 us; a finite overflow is looked at below
        bad = np.flatnonzero(~np.isfinite(chunk))
        if bad.size:
            raise FloatingPointError(f"sample {int(bad[0])} of the chunk is not finite")


def _push_compiled(c: Any, chunk: F32, dtype: type[np.floating[Any]]) -> tuple[int, Any]:
    """Run one chunk through a compiled kernel: (first row, rows of ``dtype``)."""
    first = c.rows
    out = np.empty((c.rows_for(chunk.shape[0]), c.n_out), dtype=dtype)
    try:
        c.push(chunk, out)
    except (TypeError, ValueError, BufferError):  # not a contiguous float32 vector: convert
        c.push(np.ascontiguousarray(chunk, dtype=np.float32), out)
    return first, out


class FeatureKernel(Protocol):
    """What the feature operators drive: no Rx, plain arrays."""

    columns: tuple[str, ...]
    latency: int  # rows held back beyond the STFT's own framing

    def push(self, chunk: F32) -> tuple[int, F32]:
        """Consume samples; return (index of the first row out, rows ``(k, n_columns)``), the
        rows a fresh float32 array the caller owns.

        A chunk holding NaN or inf raises ``FloatingPointError`` and changes nothing.
        """
        ...

    def flush(self) -> tuple[int, F32]:
        """End of stream: the rows still held back."""
        ...


@dataclass(frozen=True, slots=True)
class MelSpec:
    """Mel filter bank options (librosa's names and defaults, Slaney scale and norm)."""

    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: bool = True


class SpectrogramKernel:
    """Power or magnitude STFT, mel power, or log-mel (dB) rows.

    ``log_mel`` is ``power_to_db(mel, ref=ref, amin=amin, top_db=None)``. As librosa does, the
    FFT runs in float64 and everything after it in float32.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        *,
        window: str = "hann",
        kind: str = "power",
        mel: MelSpec | None = None,
        ref: float = 1.0,
        amin: float = 1e-10,
        compiled: bool | None = None,
    ) -> None:
        if kind not in SPECTROGRAM_KINDS:
            raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(SPECTROGRAM_KINDS)}")
        self.stft = StreamingSTFT(n_fft, hop, window)
        self.kind = kind
        self.amin = np.array(amin, dtype=np.float32)  # 0-d: no scalar conversion per call
        self.ref_db = 10.0 * math.log10(max(amin, abs(ref)))
        self.latency = 0
        self.basis: F32 | None = None
        self._power: F32 = np.zeros((0, self.stft.n_bins), dtype=np.float32)
        self._melbuf: F32 = np.zeros((0, 0), dtype=np.float32)
        self._views: dict[int, tuple[F32, F32]] = {}
        if kind in ("mel", "log_mel"):
            m = mel or MelSpec()
            bank = mel_filters(sample_rate, n_fft, m.n_mels, m.fmin, m.fmax, htk=m.htk, norm=m.norm)
            self.basis = np.ascontiguousarray(bank.T)  # (bins, n_mels), float32 like librosa
            self.columns = tuple(f"mel_{i}" for i in range(m.n_mels))
        else:
            self.columns = tuple(f"bin_{i}" for i in range(n_fft // 2 + 1))
        self.compiled: Any = None
        if use_compiled(n_fft, amin, compiled):
            bank64: F64 | None = None
            if self.basis is not None:
                bank64 = np.ascontiguousarray(self.basis.T, dtype=np.float64)
            self.compiled = compiled_module().Kernel(
                n_fft, hop, self.stft.window, _MODES[kind], bank64, None, None, amin, self.ref_db
            )

    @property
    def rows(self) -> int:
        """Rows produced so far (the next row's index)."""
        return int(self.compiled.rows) if self.compiled is not None else self.stft.rows

    def _work(self, k: int) -> tuple[F32, F32]:
        """Power and mel work buffers for ``k`` rows (views cached per row count)."""
        views = self._views.get(k)
        if views is None:
            assert self.basis is not None
            if k > self._power.shape[0]:
                self._power = np.empty((k, self.stft.n_bins), dtype=np.float32)
                self._melbuf = np.empty((k, self.basis.shape[1]), dtype=np.float32)
                self._views = {}
            elif len(self._views) >= _MAX_VIEWS:
                self._views = {}
            views = self._views[k] = (self._power[:k], self._melbuf[:k])
        return views

    def _mel(self, frames: F32, out: F32 | None = None) -> F32:
        """Mel power rows of frames (into ``out`` when given, else a fresh array)."""
        basis = self.basis
        assert basis is not None
        power = self.stft.power(frames, out=self._work(frames.shape[0])[0])
        # np.dot: the same float32 product as ``@`` with less per-call overhead
        if out is None:
            return np.asarray(np.dot(power, basis), dtype=np.float32)
        return np.dot(power, basis, out=out)

    def log10_mel(self, frames: F32, *, work: bool = False) -> F32:
        """``log10(max(amin, mel power))`` of frames: a fresh float32 array, or with ``work``
        one in a work buffer, valid until the next call."""
        mel: F32 = self._mel(frames, self._work(frames.shape[0])[1] if work else None)
        np.maximum(mel, self.amin, out=mel)
        return np.log10(mel, out=mel)

    def push(self, chunk: F32) -> tuple[int, F32]:
        """Consume samples; return the completed rows (a fresh float32 array)."""
        if self.compiled is not None:
            return _push_compiled(self.compiled, chunk, np.float32)
        refuse_non_finite(chunk)
        first = self.stft.rows
        frames = self.stft.frames(chunk)
        if frames.shape[0] == 0:
            return first, np.zeros((0, len(self.columns)), dtype=np.float32)
        if self.kind == "log_mel":
            db = self.log10_mel(frames)
            db *= np.float32(10.0)
            if self.ref_db:
                db -= np.float32(self.ref_db)
            return first, db
        if self.kind == "mel":
            return first, self._mel(frames)
        power = self.stft.power(frames)
        if self.kind == "power":
            return first, power
        return first, np.sqrt(power)

    def flush(self) -> tuple[int, F32]:
        """``center=False`` drops the incomplete last frame, as librosa does: nothing to add."""
        return self.rows, np.zeros((0, len(self.columns)), dtype=np.float32)


class MfccKernel:
    """MFCCs from log-mel rows (orthonormal DCT-II), optionally with deltas."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        *,
        n_mfcc: int = 13,
        mel: MelSpec | None = None,
        window: str = "hann",
        deltas: int = 0,
        delta_width: int = 9,
        lifter: float = 0.0,
        ref: float = 1.0,
        amin: float = 1e-10,
        compiled: bool | None = None,
    ) -> None:
        m = mel or MelSpec(n_mels=40)
        self.spec = SpectrogramKernel(
            sample_rate,
            n_fft,
            hop,
            window=window,
            kind="log_mel",
            mel=m,
            ref=ref,
            amin=amin,
            compiled=False,
        )
        # dB scaling folded into the DCT: 10 log10(mel) - ref_db, then DCT (ref_db only moves
        # coefficient 0, by the DCT of a constant row). In float64 and rounded once: a float32
        # product could round differently for different numbers of rows (BLAS picks its kernel
        # by shape), and any chunking must give bit-equal rows.
        dct = dct_matrix(n_mfcc, m.n_mels, lifter)
        self.dct: F64 = np.ascontiguousarray(10.0 * dct.T)
        self.offset: F64 = dct.sum(axis=1) * self.spec.ref_db
        self._none64: F64 = np.zeros((0, n_mfcc))
        # float64 log-mel and coefficient buffers, and their views per row count
        self._logbuf: F64 = np.zeros((0, self.dct.shape[0]))
        self._coefbuf: F64 = np.zeros((0, self.dct.shape[1]))
        self._work: dict[int, tuple[F64, F64]] = {}
        self.delta = StreamingDelta(delta_width, tuple(range(1, deltas + 1))) if deltas else None
        self.latency = self.delta.latency if self.delta else 0
        base = [f"mfcc_{i}" for i in range(n_mfcc)]
        names = list(base)
        for o in range(1, deltas + 1):
            names += [f"{'d' * o}{c}" for c in base]
        self.columns = tuple(names)
        self.compiled: Any = None
        if use_compiled(n_fft, amin, compiled):
            assert self.spec.basis is not None
            self.compiled = compiled_module().Kernel(
                n_fft,
                hop,
                self.spec.stft.window,
                _MODES["mfcc"],
                np.ascontiguousarray(self.spec.basis.T, dtype=np.float64),
                np.ascontiguousarray(self.dct.T),
                self.offset,
                amin,
                0.0,
            )

    @property
    def rows(self) -> int:
        """STFT rows produced so far (deltas may still hold the last ``latency`` back)."""
        return int(self.compiled.rows) if self.compiled is not None else self.spec.stft.rows

    def _coeffs(self, chunk: F32) -> tuple[int, F64]:
        if self.compiled is not None:
            first, out = _push_compiled(self.compiled, chunk, np.float64)
            return first, out if out.shape[0] else self._none64
        refuse_non_finite(chunk)
        stft = self.spec.stft
        first = stft.rows
        frames = stft.frames(chunk)
        if frames.shape[0] == 0:
            return first, self._none64
        k = frames.shape[0]
        work = self._work.get(k)
        if work is None:
            if k > self._logbuf.shape[0]:  # buffers sized by the largest row count
                self._logbuf = np.empty((k, self.dct.shape[0]))
                self._coefbuf = np.empty((k, self.dct.shape[1]))
                self._work = {}
            elif len(self._work) >= _MAX_VIEWS:
                self._work = {}
            work = self._work[k] = (self._logbuf[:k], self._coefbuf[:k])
        log_mel, coeffs = work
        np.copyto(log_mel, self.spec.log10_mel(frames, work=True))  # exact widening
        np.dot(log_mel, self.dct, out=coeffs)
        if self.spec.ref_db:
            coeffs -= self.offset
        return first, coeffs

    def push(self, chunk: F32) -> tuple[int, F32]:
        """Consume samples; return the completed rows (late by ``latency`` with deltas)."""
        if self.delta is None and self.compiled is not None:
            return _push_compiled(self.compiled, chunk, np.float32)
        first, coeffs = self._coeffs(chunk)
        if self.delta is None:
            return first, coeffs.astype(np.float32)
        return self.delta.push(coeffs)  # copies what it keeps

    def flush(self) -> tuple[int, F32]:
        """The rows the deltas still hold back."""
        if self.delta is None:
            return self.rows, np.zeros((0, len(self.columns)), dtype=np.float32)
        return self.delta.flush()


class SpectralKernel:
    """:data:`~rxaudio.dsp.spectral.DESCRIPTORS` per row, from one magnitude STFT."""

    columns: tuple[str, ...] = DESCRIPTORS

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        *,
        window: str = "hann",
        roll_percent: float = 0.85,
        p: float = 2.0,
        amin: float = 1e-10,
        power: float = 2.0,
        compiled: bool | None = None,
    ) -> None:
        if not 0.0 < roll_percent < 1.0:
            raise ValueError(f"roll_percent must be strictly between 0 and 1, got {roll_percent}")
        self.stft = StreamingSTFT(n_fft, hop, window)
        self.freqs = fft_frequencies(sample_rate, n_fft)
        self.opts = {"roll_percent": roll_percent, "p": p, "amin": amin, "power": power}
        self.latency = 0
        # the descriptors in C (one call instead of about 35 numpy calls per chunk) from the
        # same numpy STFT: rolloff's float32 comparison and the crossing counts stay exact
        self.compiled: Any = None
        mod = None if compiled is False or power != 2.0 else compiled_module()
        if compiled and mod is None:
            raise RuntimeError(
                "compiled spectral descriptors unavailable: the extension is not built, "
                "RXAUDIO_NO_COMPILED is set, or power is not 2"
            )
        if mod is not None:
            self.compiled = mod.spectral
            self._args = (float(roll_percent), float(p), float(amin), 1e-10)

    def push(self, chunk: F32) -> tuple[int, F32]:
        """Consume samples; return the completed rows."""
        refuse_non_finite(chunk)
        first = self.stft.rows
        frames = self.stft.frames(chunk)
        if frames.shape[0] == 0:
            return first, np.zeros((0, len(DESCRIPTORS)), dtype=np.float32)
        mag32: F32 = np.abs(self.stft.spectrum(frames))  # librosa's own float32 |X|
        if self.compiled is not None:
            out = np.empty((frames.shape[0], len(DESCRIPTORS)), dtype=np.float32)
            self.compiled(mag32, frames, self.freqs, out, *self._args)
            return first, out
        power = mag32 * mag32
        rows = descriptors(
            mag32.astype(np.float64),
            frames,
            self.freqs,
            power_spec=power,
            mag32=mag32,
            **self.opts,
        )
        return first, rows.astype(np.float32)

    def flush(self) -> tuple[int, F32]:
        """Nothing is held back."""
        return self.stft.rows, np.zeros((0, len(DESCRIPTORS)), dtype=np.float32)
