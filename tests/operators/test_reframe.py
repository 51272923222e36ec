from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import reframe
from rxaudio.sources import from_array
from rxaudio.testing import collect, concat, frame, ramp_frames, run_marbles


def test_marbles_normal_flow_and_flush() -> None:
    src = {"a": frame(0, 300), "b": frame(300, 300), "c": frame(600, 300)}
    out = run_marbles("-a-b-c-|", src, reframe(256))
    assert out.marbles() == "-x-x-x-(x|)"
    assert [f.start for f in out.values] == [0, 256, 512, 768]
    assert [f.n for f in out.values] == [256, 256, 256, 132]
    assert np.allclose(concat(out.values), concat(list(src.values())))


def test_marbles_chunk_smaller_than_frame() -> None:
    src = {k: frame(i * 100, 100) for i, k in enumerate("abcde")}
    out = run_marbles("-a-b-c-d-e-|", src, reframe(256, tail="drop"))
    assert out.marbles() == "-----x-----|"
    assert [f.start for f in out.values] == [0]


def test_tail_pad_and_overlap() -> None:
    src = {"a": frame(0, 11)}
    out = run_marbles("-a-|", src, reframe(4, hop=2, tail="pad"))
    assert [f.start for f in out.values] == [0, 2, 4, 6, 8]
    assert out.values[-1].n == 4
    assert np.allclose(out.values[-1].samples[:, 0], [8e-4, 9e-4, 10e-4, 0])
    # a signal fully covered by full frames has no tail frame
    covered = run_marbles("-a-|", {"a": frame(0, 10)}, reframe(4, hop=2, tail="pad"))
    assert [f.start for f in covered.values] == [0, 2, 4, 6]


def test_hop_larger_than_size_skips() -> None:
    out = run_marbles("-a-b-|", {"a": frame(0, 7), "b": frame(7, 7)}, reframe(2, hop=5))
    assert [f.start for f in out.values] == [0, 5, 10]
    assert np.allclose(out.values[1].samples[:, 0], [5e-4, 6e-4])


def test_error_propagates_after_emitted_frames() -> None:
    boom = RuntimeError("boom")
    out = run_marbles("-a-#", {"a": frame(0, 300)}, reframe(256), error=boom)
    assert out.marbles() == "-x-#"
    assert out.error is boom


def test_dispose_mid_stream() -> None:
    src = {k: frame(i * 256, 256) for i, k in enumerate("abcd")}
    out = run_marbles("-a-b-c-d-|", src, reframe(256), dispose_at=4)
    assert [f.start for f in out.values] == [0, 256]
    assert not out.completed


def test_resubscribe_gets_fresh_state() -> None:
    op = reframe(256)
    src = {"a": frame(0, 300)}
    first = run_marbles("-a-|", src, op)
    second = run_marbles("-a-|", src, op)
    assert [f.start for f in first.values] == [f.start for f in second.values] == [0, 256]


def test_gap_is_filled_with_silence_and_overlap_refused() -> None:
    out = run_marbles("-a-b-|", {"a": frame(0, 4), "b": frame(8, 4)}, reframe(4))
    assert [f.start for f in out.values] == [0, 4, 8]
    assert np.all(out.values[1].samples == 0)
    bad = run_marbles("-a-b-|", {"a": frame(0, 4), "b": frame(2, 4)}, reframe(4))
    assert isinstance(bad.error, StreamError)
    assert "overlap" in str(bad.error) and bad.error.sample_index == 2


def test_rate_change_mid_stream_is_an_error() -> None:
    src = {"a": frame(0, 4), "b": frame(4, 4, sample_rate=8000)}
    out = run_marbles("-a-b-|", src, reframe(4))
    assert isinstance(out.error, StreamError)
    assert "resample" in str(out.error) and out.error.operator == "reframe"


def test_not_audio_is_an_error() -> None:
    out = run_marbles("-a-|", {"a": 42}, reframe(4))
    assert "expected AudioFrame" in str(out.error)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 0}, {"size": -3}, {"size": 2.5}, {"size": 4, "hop": 0}, {"size": 4, "tail": "x"}],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        reframe(**kwargs)  # type: ignore[arg-type]


@given(
    chunks=st.lists(st.integers(1, 700), min_size=1, max_size=12),
    size=st.integers(1, 600),
    hop=st.integers(1, 700),
    tail=st.sampled_from(["flush", "pad", "drop"]),
)
def test_any_chunking_gives_the_same_frames(
    chunks: list[int], size: int, hop: int, tail: str
) -> None:
    frames = ramp_frames(chunks, channels=2)
    whole = concat(frames)
    one_shot = collect(
        from_array(whole, 16000, block_size=whole.shape[0]).pipe(reframe(size, hop, tail=tail))
    )
    got: list[AudioFrame] = []
    from_iterable(frames).pipe(reframe(size, hop, tail=tail)).subscribe(got.append)
    assert [f.start for f in got] == [f.start for f in one_shot]
    for a, b in zip(got, one_shot, strict=True):
        assert np.array_equal(a.samples, b.samples)
    # every full frame is exactly the slice of the whole signal at its start
    for f in got:
        if f.n == size and f.start + size <= whole.shape[0]:
            assert np.array_equal(f.samples, whole[f.start : f.start + size])
