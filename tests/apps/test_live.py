"""The level meter and the --seconds limit used by record and run."""

from __future__ import annotations

import io

import numpy as np
import pytest
import reactivex

from rxaudio.apps._live import LevelMeter, limit_seconds
from rxaudio.errors import ConfigError
from rxaudio.frames import LevelFrame
from rxaudio.sources import from_array
from rxaudio.testing import collect


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def lv(start: int, n: int, rms: float, peak: float) -> LevelFrame:
    return LevelFrame(start=start, end=start + n, sample_rate=16000, rms_db=rms, peak_db=peak)


def test_plain_meter_prints_one_line_per_second_of_audio() -> None:
    out = io.StringIO()
    meter = LevelMeter(out)
    assert not meter.tty
    for k in range(50):  # 50 x 512 samples = 1.6 s
        meter.update(lv(k * 512, 512, -20.0, -10.0 if k != 7 else -3.0))
    meter.close()
    assert out.getvalue().splitlines() == [
        "level 00:01.0 rms -20.0 dBFS peak -3.0 dBFS",
        "level 00:01.6 rms -20.0 dBFS peak -10.0 dBFS",
    ]


def test_tty_meter_rewrites_one_line_and_ends_it() -> None:
    out = FakeTTY()
    meter = LevelMeter(out)
    assert meter.tty
    for k in range(10):  # 10 x 400 samples = 0.25 s: two readings, one partial at close
        meter.update(lv(k * 400, 400, -30.0, -12.0))
    meter.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    first = text.split("\r")[1]
    assert first.startswith("00:00.1 [###############---------------] rms  -30.0 dBFS")


def test_meter_averages_power_not_decibels() -> None:
    out = io.StringIO()
    meter = LevelMeter(out, tty=False)
    meter.update(lv(0, 8000, -20.0, -1.0))
    meter.update(lv(8000, 8000, -120.0, -100.0))  # silence for the other half second
    assert out.getvalue().startswith("level 00:01.0 rms -23.0 dBFS")  # half the power: -3 dB


def test_limit_seconds_cuts_exactly_and_completes() -> None:
    x = np.arange(3000, dtype=np.float32) / 3000
    frames = collect(from_array(x, 1000, block_size=512).pipe(limit_seconds(1.3)))
    assert [f.start for f in frames] == [0, 512, 1024]
    assert frames[-1].n == 1300 - 1024
    assert np.array_equal(np.concatenate([f.samples[:, 0] for f in frames]), x[:1300])


def test_limit_seconds_does_not_subscribe_past_the_end() -> None:
    emitted: list[int] = []
    src = from_array(np.zeros(5000, np.float32), 1000, block_size=1000).pipe(
        reactivex.operators.do_action(lambda f: emitted.append(f.start))
    )
    frames = collect(src.pipe(limit_seconds(2.0)))
    assert [f.n for f in frames] == [1000, 1000]
    assert emitted == [0, 1000]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_limit_seconds_refuses_bad_values(bad: float) -> None:
    with pytest.raises(ConfigError, match="--seconds must be a positive number"):
        limit_seconds(bad)
