"""``level``: values in dB, marbles and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import StreamError
from rxaudio.frames import AudioFrame, LevelFrame
from rxaudio.operators import level
from rxaudio.testing import frame, run_marbles


def test_level_values() -> None:
    t = np.arange(16000) / 16000
    sine = AudioFrame(np.sin(2 * np.pi * 100 * t).astype(np.float32).reshape(-1, 1), 16000, 0)
    silence = AudioFrame(np.zeros((160, 2), dtype=np.float32), 16000, 16000)
    out = run_marbles("-a-b-|", {"a": sine, "b": silence}, level())
    a, b = out.values
    assert isinstance(a, LevelFrame)
    assert a.rms_db == pytest.approx(-3.0103, abs=1e-3)
    assert a.peak_db == pytest.approx(0.0, abs=1e-3)
    assert (a.start, a.end) == (0, 16000)
    assert b.rms_db == -120.0 and b.channel_rms_db == (-120.0, -120.0)
    assert out.completed


def test_level_error_and_dispose() -> None:
    boom = RuntimeError("x")
    assert run_marbles("-a-#", {"a": frame()}, level(), error=boom).error is boom
    out = run_marbles("-a-a-|", {"a": frame()}, level(), dispose_at=2)
    assert len(out.values) == 1 and not out.completed


def test_level_refuses_nan() -> None:
    bad = AudioFrame(np.array([[0.1], [np.nan]], dtype=np.float32), 16000, 0)
    out = run_marbles("-a-|", {"a": bad}, level())
    assert isinstance(out.error, StreamError) and "NaN" in str(out.error)
