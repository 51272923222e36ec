"""``level``: values in dB, marbles and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

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


def _rms_peak_db_before(x32: np.ndarray) -> tuple[float, float, list[float], list[float]]:
    """``rms_peak_db`` as it was before its numpy calls were cut (the bit-exact reference)."""
    from rxaudio.dsp.level import to_db

    x = x32.astype(np.float64, copy=False)
    n, c = x.shape
    ms = np.add.reduce(x * x, axis=0) / n
    pk = np.maximum.reduce(np.abs(x), axis=0)
    total = np.add.reduce(ms) / c if c > 1 else ms[0]
    db = to_db(np.concatenate((np.sqrt(ms), pk, np.sqrt([total]), [np.maximum.reduce(pk)])))
    return float(db[2 * c]), float(db[2 * c + 1]), db[:c].tolist(), db[c : 2 * c].tolist()


@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 2000), st.integers(1, 3)),
        elements=st.floats(-1.0, 1.0, width=32),
    )
)
def test_level_is_bit_identical_to_the_reference(x: np.ndarray) -> None:
    from rxaudio.dsp.level import rms_peak_db

    rms, peak, ch_rms, ch_pk = rms_peak_db(x)
    assert (rms, peak, ch_rms.tolist(), ch_pk.tolist()) == _rms_peak_db_before(x)
    lv = run_marbles("-a-|", {"a": AudioFrame(x, 16000, 0)}, level()).values[0]
    assert lv.channel_rms_db == tuple(ch_rms.tolist()) and lv.rms_db == rms


@pytest.mark.parametrize("channels", [1, 2])  # mono has a path of its own
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_level_refuses_any_non_finite_sample(bad: float, channels: int) -> None:
    x = np.zeros((100, channels), dtype=np.float32)
    x[50, channels - 1] = bad
    out = run_marbles("-a-|", {"a": AudioFrame.trusted(x, 16000, 0)}, level())
    assert isinstance(out.error, StreamError) and "NaN or inf" in str(out.error)
