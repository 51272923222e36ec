"""Streaming fixed-size framing with hop, carrying the remainder between chunks."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


class Reframer:
    """Cut a stream of ``(n, channels)`` chunks into frames of ``size`` samples every ``hop``.

    Frames are identified by the sample index of their first sample. Feeding the same signal in
    any chunking yields the same frames. A chunk that completes no frame is only held (no copy);
    the held chunks are joined when a frame completes, so the work is proportional to the input
    plus the carried remainder (at most ``size - 1`` samples, or ``size`` when ``hop > size``)
    once per emitted frame, whatever the chunking.

    Parameters
    ----------
    size
        Frame length in samples.
    hop
        Distance between frame starts in samples (``hop < size`` overlaps, ``hop > size`` skips).
    channels
        Channel count of the input.
    start
        Sample index of the first input sample.
    """

    def __init__(self, size: int, hop: int, channels: int, start: int = 0) -> None:
        self.size = size
        self.hop = hop
        self._buf: F32 = np.zeros((0, channels), dtype=np.float32)
        self._held: list[F32] = []  # chunks after _buf, joined only when a frame needs them
        self._buf_start = start  # sample index of _buf[0]
        self._next = start  # sample index of the next frame's first sample
        self._end = start  # sample index one past the last input sample
        self._emitted_end = start  # end of the last emitted frame

    @property
    def end(self) -> int:
        """Sample index one past the last sample pushed."""
        return self._end

    def _joined(self, chunk: F32 | None = None) -> F32:
        """``_buf``, the held chunks and ``chunk`` as one array (no copy when only one)."""
        parts = [p for p in (self._buf, *self._held) if p.shape[0]]
        self._held = []
        if chunk is not None:
            parts.append(chunk)
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return self._buf
        return np.concatenate(parts)

    def push(self, chunk: F32) -> list[tuple[int, F32]]:
        """Append a chunk; return the completed frames as ``(start, samples)`` pairs."""
        self._end += chunk.shape[0]
        size, hop = self.size, self.hop
        nxt = self._next
        if nxt + size > self._end:  # no frame completes: hold the chunk, join it later
            if chunk.shape[0]:
                self._held.append(chunk)
            return []
        buf = self._joined(chunk)
        buf_start = self._buf_start
        out: list[tuple[int, F32]] = []
        while nxt + size <= self._end:
            i = nxt - buf_start
            out.append((nxt, np.array(buf[i : i + size], dtype=np.float32, copy=True)))
            self._emitted_end = nxt + size
            nxt += hop
        self._next = nxt
        # keep only what a future frame can still use
        keep_from = max(nxt, buf_start)
        drop = min(keep_from - buf_start, buf.shape[0])
        self._buf = buf[drop:] if drop else buf
        self._buf_start = buf_start + drop
        return out

    def flush(self, mode: str) -> list[tuple[int, F32]]:
        """End of stream: ``"flush"`` emits the samples no frame covered yet as one shorter frame,
        ``"pad"`` emits it zero-padded to ``size``, ``"drop"`` emits nothing."""
        if mode == "drop" or self._end <= max(self._emitted_end, self._next):
            return []
        if self._held:
            self._buf = self._joined()
        i = self._next - self._buf_start
        rest = self._buf[i:]
        if rest.shape[0] == 0:
            return []
        if mode == "pad":
            padded = np.zeros((self.size, rest.shape[1]), dtype=np.float32)
            padded[: rest.shape[0]] = rest
            rest = padded
        else:
            rest = np.array(rest, dtype=np.float32, copy=True)
        self._emitted_end = self._end
        return [(self._next, rest)]
