"""``from_array``: blocks, conversion, bad input, real-time pacing in virtual time."""

from __future__ import annotations

import numpy as np
import pytest
from reactivex.testing import TestScheduler

from rxaudio.errors import ConfigError, FormatError
from rxaudio.sources import from_array
from rxaudio.testing import collect, concat


def test_from_array_blocks() -> None:
    x = np.arange(2500, dtype=np.float32) / 4000
    frames = collect(from_array(x, 16000, block_size=1024))
    assert [f.start for f in frames] == [0, 1024, 2048]
    assert [f.n for f in frames] == [1024, 1024, 452]
    assert np.array_equal(concat(frames)[:, 0], x)


def test_from_array_int16_and_stereo() -> None:
    x = np.array([[16384, -16384]] * 10, dtype=np.int16)
    (f,) = collect(from_array(x, 8000, block_size=100))
    assert f.channels == 2 and np.allclose(f.samples, [[0.5, -0.5]] * 10)


@pytest.mark.parametrize(
    ("data", "kwargs", "exc", "match"),
    [
        (np.array([]), {}, FormatError, "empty"),
        (np.array([0.0, np.nan]), {}, FormatError, "NaN"),
        (np.zeros(4), {"block_size": 0}, ConfigError, "block_size"),
        (np.zeros(4), {"sample_rate": -1}, ConfigError, "sample_rate"),
    ],
)
def test_from_array_bad_input(
    data: np.ndarray, kwargs: dict[str, int], exc: type, match: str
) -> None:
    args = {"sample_rate": 16000, **kwargs}
    with pytest.raises(exc, match=match):
        from_array(data, args.pop("sample_rate"), **args)


def test_from_array_realtime_in_virtual_time() -> None:
    sched = TestScheduler()
    x = np.zeros(1600, dtype=np.float32)
    got: list[tuple[float, int]] = []
    obs = from_array(x, 16000, block_size=160, realtime=True, scheduler=sched)
    obs.subscribe(lambda f: got.append((sched.clock, f.start)))
    sched.start()
    # frame k is emitted when the previous frames' audio would have finished playing
    assert [s for _, s in got] == list(range(0, 1600, 160))
    assert np.allclose([t for t, _ in got], np.arange(10) * 0.01)
