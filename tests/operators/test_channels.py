"""``to_mono`` and ``channels``: mixing, selecting, bad mappings and options."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import channels, to_mono
from rxaudio.testing import frame, run_marbles


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
