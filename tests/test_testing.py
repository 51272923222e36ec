"""rxaudio.testing: marble results and ``collect``."""

from __future__ import annotations

import pytest

from rxaudio.errors import StreamError
from rxaudio.operators import gain, reframe
from rxaudio.testing import collect, frame, run_marbles


def test_marble_result_rendering_and_error() -> None:
    boom = ValueError("x")
    src = {"a": frame(), "b": frame(4), "c": frame(8)}
    out = run_marbles("-a-(b,c)-#", src, gain(0), error=boom)
    # a group takes the ticks of its characters (RxPY semantics): the error lands at tick 9
    assert out.marbles() == "-x-(xx)-----#"
    assert [f.start for f in out.values] == [0, 4, 8]
    assert out.error is boom and not out.completed
    assert out.ticks == [1.0, 3.0, 3.0]


def test_collect_reraises() -> None:
    with pytest.raises(StreamError, match="frame starts at sample 2"):
        collect(run_marbles_source())


def run_marbles_source():  # type: ignore[no-untyped-def]
    from reactivex import from_iterable

    return from_iterable([frame(0, 4), frame(2, 4)]).pipe(reframe(4))
