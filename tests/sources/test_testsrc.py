"""``testsrc``: every wave, any rate and channel count, lengths, determinism and chunking,
real-time pacing in virtual time, and the speech pattern detected by every VAD backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reactivex.testing import TestScheduler

from rxaudio.dsp.testsignal import WAVES, TestSignal
from rxaudio.errors import ConfigError
from rxaudio.operators import hysteresis, vad
from rxaudio.sources import testsrc
from rxaudio.testing import collect, concat


def test_num_buffers_samplesperbuffer_and_caps() -> None:
    src = testsrc(num_buffers=3, samplesperbuffer=100, rate=8000, channels=2)
    frames = collect(src)
    assert [f.start for f in frames] == [0, 100, 200]
    assert all(f.n == 100 and f.channels == 2 and f.sample_rate == 8000 for f in frames)
    assert (src.caps.sample_rate, src.caps.channels, src.caps.frame_size) == (8000, 2, 100)


def test_seconds_cuts_the_last_frame_and_the_shorter_limit_wins() -> None:
    frames = collect(testsrc(seconds=0.25, samplesperbuffer=1000, rate=10000))
    assert [f.n for f in frames] == [1000, 1000, 500]
    frames = collect(testsrc(seconds=10.0, num_buffers=2, samplesperbuffer=10))
    assert len(frames) == 2


@pytest.mark.parametrize("wave", WAVES)
def test_every_wave_is_bounded_deterministic_and_the_same_in_any_chunking(wave: str) -> None:
    a = concat(collect(testsrc(wave=wave, seconds=1.5, samplesperbuffer=1000, channels=2)))
    b = concat(collect(testsrc(wave=wave, seconds=1.5, samplesperbuffer=377, channels=2)))
    assert a.shape == (24000, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.isfinite(a).all() and np.abs(a).max() <= 0.8 + 1e-6
    if wave == "silence":
        assert not a.any()
    else:
        assert np.abs(a).max() > 0.3
    if wave.endswith("noise"):
        assert not np.array_equal(a[:, 0], a[:, 1])  # independent channels
        other = concat(collect(testsrc(wave=wave, seconds=1.5, seed=1, channels=2)))
        assert not np.array_equal(a, other)
    else:
        assert np.array_equal(a[:, 0], a[:, 1])


def test_sine_and_square_have_their_frequency_and_volume() -> None:
    x = concat(collect(testsrc(freq=1000.0, volume=0.5, seconds=1.0)))[:, 0]
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    assert np.isclose(np.abs(x).max(), 0.5, atol=1e-3)
    sq = concat(collect(testsrc(wave="square", freq=100.0, volume=0.25, seconds=0.1)))
    assert set(np.unique(sq)) == {np.float32(-0.25), np.float32(0.25)}


def test_chirp_sweeps_upwards_and_pink_noise_leans_to_the_low_end() -> None:
    x = concat(collect(testsrc(wave="chirp", freq=100.0, seconds=1.0)))[:, 0]
    first = np.argmax(np.abs(np.fft.rfft(x[:1600])))
    last = np.argmax(np.abs(np.fft.rfft(x[-1600:])))
    assert first < last
    pink = concat(collect(testsrc(wave="pink-noise", seconds=4.0)))[:, 0]
    white = concat(collect(testsrc(wave="white-noise", seconds=4.0)))[:, 0]

    def low_share(y: np.ndarray) -> float:
        p = np.abs(np.fft.rfft(y)) ** 2
        return float(p[: len(p) // 8].sum() / p.sum())

    assert low_share(pink) > 2 * low_share(white)


def test_is_live_paces_frames_in_virtual_time() -> None:
    sched = TestScheduler()
    got: list[tuple[float, int]] = []
    src = testsrc(num_buffers=4, samplesperbuffer=1600, is_live=True, scheduler=sched)
    src.subscribe(lambda f: got.append((sched.clock, f.start)))
    sched.start()
    assert [s for _, s in got] == [0, 1600, 3200, 4800]
    gaps = np.diff([t for t, _ in got])
    assert np.allclose(gaps, 0.1)  # 1600 samples at 16 kHz, in virtual seconds


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"wave": "saw"}, "wave"),
        ({"rate": 0}, "rate"),
        ({"volume": 2.0}, "volume"),
        ({"num_buffers": -2}, "num_buffers"),
        ({"seconds": 0.0}, "seconds"),
        ({"seconds": 1e-9}, "less than one sample"),
        ({"channels": 0}, "channels"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        testsrc(**kwargs)


def spans_of(events: list[Any], rate: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for e in events:
        kind = type(e).__name__
        if kind == "SpeechStart":
            out.append((e.start / rate, -1.0))
        elif kind == "SpeechEnd":
            out[-1] = (out[-1][0], e.end / rate)
    return out


@pytest.mark.parametrize("backend", ["energy", "webrtc", "silero"])
def test_speech_bursts_are_speech_to_every_vad_backend(backend: str) -> None:
    seconds, rate = 12.0, 16000
    every = TestSignal("speech", rate, 1, 440.0, 0.8, 0).speech_spans(seconds)
    bursts = [(a, b) for a, b in every if b < seconds]  # whole within the stream
    assert len(bursts) >= 4
    events = collect(testsrc(wave="speech", seconds=seconds).pipe(vad(backend), hysteresis()))
    found = spans_of(events, rate)
    # every burst is found, and everything found lies in (or next to) a burst
    for a, b in bursts:
        assert any(s < b and (e < 0 or e > a) for s, e in found), (backend, (a, b), found)
    for s, _e in found:
        assert any(a - 0.1 <= s <= b for a, b in every), (backend, s, every)


@pytest.mark.parametrize("backend", ["energy", "webrtc", "silero"])
def test_silence_is_not_speech(backend: str) -> None:
    events = collect(testsrc(wave="silence", seconds=3.0).pipe(vad(backend), hysteresis()))
    assert spans_of(events, 16000) == []
