from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame, LevelFrame
from rxaudio.operators import channels, gain, level, to_mono
from rxaudio.testing import frame, run_marbles


def test_gain_marbles() -> None:
    out = run_marbles(
        "-a-b-|", {"a": frame(0, 4, value=0.5), "b": frame(4, 4, value=0.25)}, gain(6.0)
    )
    assert out.marbles() == "-x-x-|"
    assert [f.start for f in out.values] == [0, 4]
    assert np.allclose(out.values[0].samples, 0.5 * 10 ** (6 / 20))
    assert np.allclose(out.values[1].samples, 0.25 * 10 ** (6 / 20))


def test_gain_error_dispose_resubscribe() -> None:
    boom = RuntimeError("boom")
    assert run_marbles("-a-#", {"a": frame()}, gain(1), error=boom).error is boom
    out = run_marbles("-a-a-a-|", {"a": frame()}, gain(1), dispose_at=3)
    assert len(out.values) == 1 and not out.completed
    op = gain(-6)
    assert len(run_marbles("-a-|", {"a": frame()}, op).values) == len(
        run_marbles("-a-|", {"a": frame()}, op).values
    )
    bad = run_marbles("-a-|", {"a": "not audio"}, gain(1))
    assert isinstance(bad.error, StreamError) and bad.error.operator == "gain"


@pytest.mark.parametrize("db", [float("nan"), float("inf"), 200.0, "6"])
def test_gain_bad_db(db: object) -> None:
    with pytest.raises(ConfigError, match="db"):
        gain(db)  # type: ignore[arg-type]


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


def test_to_mono_and_channels() -> None:
    st = AudioFrame(np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32), 16000, 7)
    out = run_marbles("-a-|", {"a": st}, to_mono())
    m = out.values[0]
    assert m.channels == 1 and m.start == 7 and np.allclose(m.samples[:, 0], [0.5, 0.5])
    dup = run_marbles("-a-|", {"a": frame(0, 3)}, channels(2)).values[0]
    assert dup.channels == 2 and np.array_equal(dup.samples[:, 0], dup.samples[:, 1])
    sel = run_marbles("-a-|", {"a": st}, channels(select=[1, 0])).values[0]
    assert np.array_equal(sel.samples, st.samples[:, ::-1])


def test_channels_bad_mapping_and_options() -> None:
    three = AudioFrame(np.zeros((2, 3), dtype=np.float32), 16000)
    out = run_marbles("-a-|", {"a": three}, channels(2))
    assert isinstance(out.error, StreamError) and "select=" in str(out.error)
    out = run_marbles("-a-|", {"a": three}, channels(select=[5]))
    assert "needs 6 channels" in str(out.error)
    with pytest.raises(ConfigError):
        channels()
    with pytest.raises(ConfigError):
        channels(2, select=[0])
    with pytest.raises(ConfigError):
        channels(0)
    with pytest.raises(ConfigError):
        channels(select=[-1])


def test_level_refuses_nan() -> None:
    bad = AudioFrame(np.array([[0.1], [np.nan]], dtype=np.float32), 16000, 0)
    out = run_marbles("-a-|", {"a": bad}, level())
    assert isinstance(out.error, StreamError) and "NaN" in str(out.error)
