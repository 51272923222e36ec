"""Fixtures for the operator tests: VAD frames to feed hysteresis and buffer_utterance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rxaudio.frames import AudioFrame, VadFrame


@pytest.fixture
def vf() -> Callable[..., VadFrame]:
    """``vf(k, p, n=512, rate=16000)``: the k-th window with probability p and ramp audio."""

    def make(k: int, p: float, n: int = 512, rate: int = 16000) -> VadFrame:
        start = k * n
        col = (np.arange(start, start + n) % 1000 / 1000.0).astype(np.float32)
        audio = AudioFrame(col.reshape(-1, 1), rate, start)
        return VadFrame(start, start + n, rate, p, audio, None, k)

    return make
