"""A bounded buffer of recent audio addressed by sample index (no Rx)."""

from __future__ import annotations

from collections import deque

import numpy as np

from .base import F32

COALESCE = 16
"""Appended blocks joined into one as soon as this many follow one another (see SpanBuffer)."""


class SpanBuffer:
    """Keeps ``(n, channels)`` blocks by their start sample; slices any retained span.

    Blocks must arrive in order; a gap is filled with silence so indices stay exact. Call
    :meth:`trim` to drop what is no longer needed (memory stays bounded by the caller's policy).

    Every :data:`COALESCE` appended blocks are joined into one (read-only) block as they come:
    a long span (an utterance of hundreds of 32 ms windows) is then cut from a few blocks
    instead of gathered from hundreds at the moment it ends, when a live server's sessions
    tend to end theirs all at once; the copying is spread over the stream instead.
    """

    def __init__(self) -> None:
        self._blocks: deque[tuple[int, F32]] = deque()
        self.start = 0  # first retained sample
        self.end = 0  # one past the last sample
        self.channels: int | None = None
        self._loaded = 0  # one past the last sample stored by load() (visible or not)
        self._revealed = False
        self._run = 0  # appended blocks at the end not yet joined (COALESCE)

    def append(self, start: int, samples: F32) -> None:
        """Add a block starting at sample ``start`` (>= :attr:`end` once anything was added)."""
        if self.channels is None:
            self.channels = samples.shape[1]
            self.start = self.end = start
        if start < self.end:
            raise ValueError(
                f"audio block at sample {start} overlaps the previous one ending at {self.end}; "
                "the stream must be continuous"
            )
        if start > self.end:
            gap = np.zeros((start - self.end, samples.shape[1]), dtype=np.float32)
            self._blocks.append((self.end, gap))
            self._run += 1
        self._blocks.append((start, samples))
        self.end = start + samples.shape[0]
        self._run += 1
        if self._run >= COALESCE:
            self._join_run()

    def _join_run(self) -> None:
        """Join the appended blocks at the end (consecutive by construction) into one."""
        blocks = self._blocks
        k = min(self._run, len(blocks))
        self._run = 0
        if k < 2:
            return
        parts = [blocks.pop() for _ in range(k)]
        parts.reverse()
        joined = np.concatenate([p for _, p in parts])
        joined.flags.writeable = False  # takes hand out views of it, as of the frames before
        blocks.append((parts[0][0], joined))

    def load(self, start: int, samples: F32) -> None:
        """Store a block ahead of time; its samples join the buffer only as :meth:`reveal`
        reaches them (offline use: audio read in big blocks, windows walking through it)."""
        if self.channels is None:
            self.channels = samples.shape[1]
            self._loaded = start
        elif start != self._loaded:
            raise ValueError(
                f"loaded block at sample {start} does not follow the previous one ending at "
                f"{self._loaded}; load consecutive blocks"
            )
        self._blocks.append((start, samples))
        self._loaded = start + samples.shape[0]
        self._run = 0  # a loaded block is never joined with appended ones

    @property
    def loaded_end(self) -> int:
        """One past the last sample stored by :meth:`load`."""
        return self._loaded

    def reveal(self, a: int, b: int) -> None:
        """The loaded samples ``[a, b)`` join the buffer: the same as ``append(a, samples)``."""
        if not self._revealed:
            self._revealed = True
            self.start = self.end = a
        if a != self.end or b > self._loaded:
            raise ValueError(
                f"reveal [{a}, {b}) must continue at sample {self.end} and end by the loaded "
                f"sample {self._loaded}"
            )
        self.end = b

    def take(self, a: int, b: int) -> F32:
        """Samples ``[a, b)`` clipped to what is retained, shape ``(n, channels)``."""
        a, b = max(a, self.start), min(b, self.end)
        ch = self.channels or 1
        if b <= a:
            return np.zeros((0, ch), dtype=np.float32)
        if len(self._blocks) == 1:  # the common case: one block holds the span
            s0, blk0 = self._blocks[0]
            return blk0[a - s0 : b - s0]
        # the blocks that hold any of [a, b), whole (an utterance spans hundreds of windows'
        # blocks: no slice per block), then the one array cut to the span
        parts: list[F32] = []
        first = 0
        for s, blk in self._blocks:
            if s >= b:
                break
            if s + blk.shape[0] <= a:
                continue
            if not parts:
                first = s
            parts.append(blk)
        if len(parts) == 1:
            return parts[0][a - first : b - first]
        return np.concatenate(parts)[a - first : b - first]

    def trim(self, before: int) -> None:
        """Forget samples before ``before``."""
        blocks = self._blocks
        while blocks and blocks[0][0] + blocks[0][1].shape[0] <= before:
            blocks.popleft()
        if self._run > len(blocks):
            self._run = len(blocks)
        self.start = max(self.start, min(before, self.end))
