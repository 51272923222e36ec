"""Streaming resampling with soxr (chunked output equals one-shot ``soxr.resample``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class StreamingResampler:
    """soxr's streaming resampler for ``(n, channels)`` float32 chunks.

    soxr keeps its filter state between chunks, so concatenated outputs equal
    ``soxr.resample(whole, in_rate, out_rate, quality)`` (within float32 rounding).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str = "HQ") -> None:
        import soxr

        self.in_rate = in_rate
        self.out_rate = out_rate
        self._rs: Any = soxr.ResampleStream(
            in_rate, out_rate, channels, dtype="float32", quality=quality
        )
        self._channels = channels

    def push(self, chunk: F32) -> F32:
        """Resample one chunk; may return fewer (even zero) samples while the filter fills."""
        out = self._rs.resample_chunk(np.ascontiguousarray(chunk), last=False)
        return np.asarray(out, dtype=np.float32).reshape(-1, self._channels)

    def flush(self) -> F32:
        """Drain the filter at the end of the stream."""
        empty = np.zeros((0, self._channels), dtype=np.float32)
        out = self._rs.resample_chunk(empty, last=True)
        return np.asarray(out, dtype=np.float32).reshape(-1, self._channels)


def resample_offline(x: F32, in_rate: int, out_rate: int, quality: str = "HQ") -> F32:
    """One-shot reference: resample a whole ``(n, channels)`` signal."""
    import soxr

    out = soxr.resample(np.ascontiguousarray(x), in_rate, out_rate, quality=quality)
    return np.asarray(out, dtype=np.float32).reshape(-1, x.shape[1])
