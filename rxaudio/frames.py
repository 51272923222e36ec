"""Immutable, self-describing frame types.

Time inside the library is a *sample index* since the start of the stream, never wall-clock
time: virtual-time tests, offline files and live capture then behave exactly alike. Samples are
float32 arrays of shape ``(n, channels)`` in [-1, 1]; int16 PCM bytes exist only at I/O edges
(:meth:`AudioFrame.from_pcm16`, :meth:`AudioFrame.to_pcm16`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import FormatError

Samples = NDArray[np.float32]

_PCM16_SCALE = 32768.0


def _readonly(a: Samples) -> Samples:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@dataclass(frozen=True, slots=True, eq=False)
class AudioFrame:
    """A block of audio.

    Parameters
    ----------
    samples
        float32 array of shape ``(n, channels)``, ``n >= 1``. Stored read-only.
    sample_rate
        Samples per second (Hz), a positive int.
    start
        Index of the first sample since the start of the stream, at ``sample_rate``.
    """

    samples: Samples
    sample_rate: int
    start: int = 0

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray):
            raise FormatError(
                f"AudioFrame: samples must be a numpy array, got {type(s).__name__}; "
                "wrap it with np.asarray(..., dtype=np.float32)"
            )
        if s.dtype != np.float32:
            raise FormatError(
                f"AudioFrame: samples must be float32, got {s.dtype}; convert with "
                "AudioFrame.from_array(x, rate) or x.astype(np.float32) (int16 PCM: x / 32768)"
            )
        if s.ndim != 2:
            raise FormatError(
                f"AudioFrame: samples must have shape (n, channels), got shape {s.shape}; "
                "use x.reshape(-1, 1) for mono"
            )
        if s.shape[0] == 0 or s.shape[1] == 0:
            raise FormatError(
                f"AudioFrame: zero-length frame (shape {s.shape}); a frame holds at least one "
                "sample of at least one channel"
            )
        if not isinstance(self.sample_rate, int | np.integer) or self.sample_rate <= 0:
            raise FormatError(
                f"AudioFrame: sample_rate must be a positive int, got {self.sample_rate!r}"
            )
        if self.start < 0:
            raise FormatError(f"AudioFrame: start must be >= 0, got {self.start}")
        object.__setattr__(self, "samples", _readonly(s))
        object.__setattr__(self, "sample_rate", int(self.sample_rate))
        object.__setattr__(self, "start", int(self.start))

    @classmethod
    def from_array(
        cls, data: Any, sample_rate: int, start: int = 0, *, check_finite: bool = True
    ) -> AudioFrame:
        """Build a frame from any array-like: 1-D is mono, 2-D is ``(n, channels)``.

        Integer input is scaled as PCM (int16 by 32768, int32 by 2**31); float input is cast.
        Raises :class:`FormatError` on NaN/inf when ``check_finite``.
        """
        a = np.asarray(data)
        if a.dtype == np.int16:
            a = a.astype(np.float32) / np.float32(_PCM16_SCALE)
        elif a.dtype == np.int32:
            a = (a.astype(np.float64) / 2147483648.0).astype(np.float32)
        elif np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32, copy=False)
        else:
            raise FormatError(
                f"AudioFrame.from_array: unsupported dtype {a.dtype}; use float32/float64 "
                "in [-1, 1] or int16/int32 PCM"
            )
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if check_finite and not np.isfinite(a).all():
            raise FormatError(
                "AudioFrame.from_array: samples contain NaN or inf; clean the signal "
                "(np.nan_to_num) before streaming it"
            )
        return cls(np.ascontiguousarray(a), sample_rate, start)

    @classmethod
    def from_pcm16(
        cls, data: bytes, sample_rate: int, channels: int = 1, start: int = 0
    ) -> AudioFrame:
        """Decode little-endian interleaved int16 PCM bytes (an I/O edge)."""
        if channels <= 0:
            raise FormatError(f"from_pcm16: channels must be >= 1, got {channels}")
        width = 2 * channels
        if len(data) == 0 or len(data) % width:
            raise FormatError(
                f"from_pcm16: {len(data)} bytes is not a whole number of {channels}-channel "
                f"int16 samples ({width} bytes each)"
            )
        a = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
        return cls(a.astype(np.float32) / np.float32(_PCM16_SCALE), sample_rate, start)

    def to_pcm16(self) -> bytes:
        """Encode as little-endian interleaved int16 PCM bytes (clipped to [-1, 1))."""
        scaled = np.clip(self.samples * _PCM16_SCALE, -32768, 32767)
        data: bytes = np.rint(scaled).astype("<i2").tobytes()
        return data

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def n(self) -> int:
        """Number of samples (per channel)."""
        return int(self.samples.shape[0])

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def end(self) -> int:
        """Sample index one past the last sample."""
        return self.start + int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return float(self.samples.shape[0] / self.sample_rate)

    @property
    def time(self) -> float:
        """Start time in seconds since the start of the stream."""
        return self.start / self.sample_rate

    @property
    def mono(self) -> NDArray[np.float32]:
        """1-D view (channel 0 if mono, otherwise the channel mean)."""
        if self.samples.shape[1] == 1:
            return self.samples[:, 0]
        out: NDArray[np.float32] = self.samples.mean(axis=1, dtype=np.float32)
        return out

    def with_samples(self, samples: Samples, start: int | None = None) -> AudioFrame:
        """A copy with new samples (and optionally a new start)."""
        return replace(self, samples=samples, start=self.start if start is None else start)

    def __repr__(self) -> str:
        return (
            f"AudioFrame(start={self.start}, n={self.n}, channels={self.channels}, "
            f"sample_rate={self.sample_rate})"
        )


@dataclass(frozen=True, slots=True)
class LevelFrame:
    """RMS and peak level of one audio frame, in dBFS per channel and overall.

    ``rms_db``/``peak_db`` are over all channels; ``floor_db`` is the value used for silence.
    """

    start: int
    end: int
    sample_rate: int
    rms_db: float
    peak_db: float
    channel_rms_db: tuple[float, ...] = field(default=())
    channel_peak_db: tuple[float, ...] = field(default=())

    @property
    def time(self) -> float:
        """Start time in seconds."""
        return self.start / self.sample_rate

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return (self.end - self.start) / self.sample_rate


@dataclass(frozen=True, slots=True)
class FileReceipt:
    """What a file sink wrote: emitted once when the file is complete."""

    path: str
    frames: int
    samples: int
    sample_rate: int | None = None
    channels: int | None = None
    reason: str = "completed"

    @property
    def seconds(self) -> float:
        """Duration written, in seconds (0 when nothing or not audio)."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0
