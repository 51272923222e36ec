"""The span buffer behind the offline segmenter."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.vad.spans import SpanBuffer


def test_span_buffer_load_and_reveal() -> None:
    buf = SpanBuffer()
    a = np.arange(10, dtype=np.float32).reshape(-1, 1)
    buf.load(100, a)
    buf.load(110, a + 10)
    assert buf.loaded_end == 120 and buf.end - buf.start == 0
    buf.reveal(103, 108)
    assert (buf.start, buf.end) == (103, 108)
    np.testing.assert_array_equal(buf.take(0, 1000)[:, 0], np.arange(3, 8))
    buf.reveal(108, 115)
    np.testing.assert_array_equal(buf.take(104, 113)[:, 0], np.arange(4, 13))
    buf.trim(112)
    assert buf.start == 112
    np.testing.assert_array_equal(buf.take(0, 1000)[:, 0], np.arange(12, 15))
    with pytest.raises(ValueError, match="must continue at sample 115"):
        buf.reveal(116, 118)
    with pytest.raises(ValueError, match="end by the loaded sample 120"):
        buf.reveal(115, 121)
    with pytest.raises(ValueError, match="load consecutive blocks"):
        buf.load(121, a)


def test_appended_blocks_are_joined_as_they_come_and_every_span_is_unchanged() -> None:
    """Every COALESCE appended blocks become one (read-only) block; takes across any boundary,
    gaps (silence) and trims give exactly the samples appended, in two channels."""
    from rxaudio.vad.spans import COALESCE

    rng = np.random.default_rng(3)
    buf = SpanBuffer()
    ref = np.zeros((0, 2), np.float32)
    at = 1000
    for i in range(5 * COALESCE + 3):
        n = int(rng.integers(1, 700))
        if i % 23 == 22:  # a gap: silence in the buffer, and in the reference
            ref = np.concatenate((ref, np.zeros((37, 2), np.float32)))
            at += 37
        blk = rng.standard_normal((n, 2)).astype(np.float32)
        blk.flags.writeable = False  # as a frame's samples are
        buf.append(at, blk)
        ref = np.concatenate((ref, blk))
        at += n
    assert len(buf._blocks) < 2 * COALESCE  # joined: 86 blocks were appended
    for a, b in [(1000, at), (1000, 1001), (1500, 9000), (at - 5, at + 5), (0, 1200)]:
        lo, hi = max(a, 1000), min(b, at)
        np.testing.assert_array_equal(buf.take(a, b), ref[lo - 1000 : hi - 1000])
    span = buf.take(1200, 4000)
    assert not span.flags.writeable  # a view of the buffer's audio can not change it
    buf.trim(5000)
    assert buf.start == 5000
    np.testing.assert_array_equal(buf.take(0, at), ref[4000:])
    buf.trim(at)  # everything: appending goes on from the end
    blk = np.ones((COALESCE, 2), np.float32)
    for i in range(COALESCE):
        buf.append(at + i, blk[i : i + 1])
    np.testing.assert_array_equal(buf.take(at, at + COALESCE), blk)
