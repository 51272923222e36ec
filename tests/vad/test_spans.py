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
