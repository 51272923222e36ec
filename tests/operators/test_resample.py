from __future__ import annotations

import numpy as np
import pytest
import soxr
from hypothesis import given
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import resample
from rxaudio.testing import concat, frame, run_marbles


def _signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 48000.0
    x = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((n, channels))
    return x.astype(np.float32)


def _chunks(x: np.ndarray, sizes: list[int], rate: int) -> list[AudioFrame]:
    out, i, k = [], 0, 0
    while i < x.shape[0]:
        n = sizes[k % len(sizes)]
        out.append(AudioFrame(np.ascontiguousarray(x[i : i + n]), rate, i))
        i += n
        k += 1
    return out


def test_marbles_timestamps_at_new_rate() -> None:
    src = {k: frame(i * 480, 480, sample_rate=48000) for i, k in enumerate("abcdef")}
    out = run_marbles("-a-b-c-d-e-f-|", src, resample(16000))
    assert out.completed
    starts = [f.start for f in out.values]
    sizes = [f.n for f in out.values]
    assert all(f.sample_rate == 16000 for f in out.values)
    assert starts == list(np.cumsum([0, *sizes[:-1]]))
    # 2880 samples at 48k -> 960 at 16k; soxr emits in bursts, the rest flushed at completion
    assert sum(sizes) == 960
    assert out.ticks[0] < 13 and out.marbles().endswith("|)")


def test_same_rate_passes_through_untouched() -> None:
    a = frame(0, 4)
    out = run_marbles("-a-|", {"a": a}, resample(16000))
    assert out.values[0] is a


def test_error_and_dispose() -> None:
    boom = ValueError("x")
    src = {"a": frame(0, 480, sample_rate=48000)}
    out = run_marbles("-a-#", src, resample(16000), error=boom)
    assert out.error is boom
    out2 = run_marbles("-a-a-|", src, resample(16000), dispose_at=2)
    assert not out2.completed and len(out2.values) <= 1


def test_resubscribe_fresh_state() -> None:
    op = resample(16000)
    src = {"a": frame(0, 480, sample_rate=48000), "b": frame(480, 480, sample_rate=48000)}
    r1 = run_marbles("-a-b-|", src, op)
    r2 = run_marbles("-a-b-|", src, op)
    assert [f.start for f in r1.values] == [f.start for f in r2.values]
    assert np.array_equal(concat(r1.values), concat(r2.values))


def test_rate_change_refused() -> None:
    src = {"a": frame(0, 480, sample_rate=48000), "b": frame(480, 441, sample_rate=44100)}
    out = run_marbles("-a-b-|", src, resample(16000))
    assert isinstance(out.error, StreamError) and "44100" in str(out.error)


@pytest.mark.parametrize(
    "kwargs", [{"rate": 0}, {"rate": 10**7}, {"rate": 16000, "quality": "best"}]
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        resample(**kwargs)  # type: ignore[arg-type]


@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=6),
    rates=st.sampled_from(
        [(48000, 16000), (44100, 16000), (16000, 48000), (8000, 16000), (22050, 44100)]
    ),
    channels=st.sampled_from([1, 2]),
)
def test_chunked_equals_one_shot_soxr(
    sizes: list[int], rates: tuple[int, int], channels: int
) -> None:
    src_rate, dst_rate = rates
    x = _signal(12000, channels)
    got: list[AudioFrame] = []
    from_iterable(_chunks(x, sizes, src_rate)).pipe(resample(dst_rate)).subscribe(got.append)
    y = concat(got)
    ref = soxr.resample(x, src_rate, dst_rate, quality="HQ").reshape(-1, channels)
    assert y.shape == ref.shape
    assert np.max(np.abs(y - ref)) < 1e-5
    # contiguous timestamps at the new rate
    assert [f.start for f in got] == list(np.cumsum([0] + [f.n for f in got[:-1]]))
