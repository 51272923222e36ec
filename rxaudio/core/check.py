"""Argument validation shared by operator factories (raise ConfigError at construction)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..frames import AudioFrame


def positive_int(op: str, name: str, value: Any, *, maximum: int | None = None) -> int:
    """Validate a positive int option."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{op}: {name} must be a positive int, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{op}: {name} must be at most {maximum}, got {value}")
    return value


def finite(
    op: str, name: str, value: Any, lo: float | None = None, hi: float | None = None
) -> float:
    """Validate a finite float option within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{op}: {name} must be a finite number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            bound = f">= {lo:g}"
        elif lo is None:
            bound = f"<= {hi:g}"
        else:
            bound = f"in [{lo:g}, {hi:g}]"
        raise ConfigError(f"{op}: {name} must be {bound}, got {value!r}")
    return float(value)


def choice(op: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """Validate a string option from a fixed set."""
    if value not in allowed:
        raise ConfigError(f"{op}: {name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def audio(op: str, item: Any) -> AudioFrame:
    """Check that a stream item is an AudioFrame (raised inside the stream)."""
    if not isinstance(item, AudioFrame):
        raise TypeError(
            f"{op}: expected AudioFrame, got {type(item).__name__}; put {op} on an audio stream"
        )
    return item


_ZEROS: list[np.ndarray] = [np.zeros(4096, dtype=np.float32)]  # grown when a longer one comes


# all_finite's dot product with an infinity sets numpy's "invalid value" flag, which numpy
# reports as a RuntimeWarning; the caller refuses such an array with its own message, so the
# warning says nothing new. Ignored for this module only (np.errstate would double the cost).
warnings.filterwarnings(
    "ignore", "invalid value encountered in dot", RuntimeWarning, r"rxaudio\.core\.check"
)


def all_finite(a: np.ndarray) -> bool:
    """Whether every element of the float array ``a`` is finite.

    For float32 it is one BLAS call, about half the cost of ``np.isfinite(a).all()`` on a
    512-sample window: the dot product with zeros is exactly 0 when every element is finite
    and NaN when any is NaN or infinite (``inf * 0``), and it cannot overflow. (Like any
    arithmetic on an infinity, that last case sets numpy's "invalid value" flag: such an array
    is refused by its caller anyway; the warning numpy would print for it is filtered.)"""
    if a.dtype != np.float32:
        return bool(np.isfinite(a).all())
    flat = a.reshape(-1)
    n = flat.shape[0]
    zeros = _ZEROS[0]
    if zeros.shape[0] < n:
        zeros = _ZEROS[0] = np.zeros(n, dtype=np.float32)
    return math.isfinite(flat.dot(zeros[:n]))


MAX_GAP_SECONDS = 10.0
"""Longest gap between consecutive frames that is filled with silence (dropped capture blocks);
a longer one means the frames are not one continuous stream."""


def gap_samples(op: str, expected: int, frame: AudioFrame) -> int:
    """Samples missing between the end of the previous frame (``expected``) and ``frame``.

    Raises on an overlap, or on a gap longer than :data:`MAX_GAP_SECONDS`.
    """
    gap = frame.start - expected
    if gap < 0:
        raise ValueError(
            f"frame starts at sample {frame.start} but the previous one ended at {expected}; "
            f"frames must not overlap ({op} expects one continuous stream)"
        )
    if gap > MAX_GAP_SECONDS * frame.sample_rate:
        raise ValueError(
            f"gap of {gap} samples before sample {frame.start} is longer than "
            f"{MAX_GAP_SECONDS:g} s; the input is not one continuous stream"
        )
    return gap


class FormatTracker:
    """Remembers a stream's sample rate and channel count and refuses changes mid-stream."""

    __slots__ = ("channels", "op", "sample_rate")

    def __init__(self, op: str) -> None:
        self.op = op
        self.sample_rate: int | None = None
        self.channels: int | None = None

    def check(self, frame: AudioFrame) -> bool:
        """Return True on the first frame; raise on a change of rate or channels."""
        if self.sample_rate is None:
            self.sample_rate = frame.sample_rate
            self.channels = frame.channels
            return True
        if frame.sample_rate != self.sample_rate:
            raise ValueError(
                f"sample rate changed mid-stream from {self.sample_rate} to "
                f"{frame.sample_rate} Hz; put resample(rate) before {self.op}"
            )
        if frame.channels != self.channels:
            raise ValueError(
                f"channel count changed mid-stream from {self.channels} to {frame.channels}; "
                f"put channels(n) before {self.op}"
            )
        return False
