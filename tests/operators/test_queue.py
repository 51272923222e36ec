"""``queue``: marbles in virtual time (leaky choices, order, end and errors, disposal), its
thread (delivery off the producer's thread, none left after disposal, a blocked producer
released), and a slow branch that does not hold up another."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import reactivex as rx
from reactivex import operators as ops
from reactivex.testing import TestScheduler

from rxaudio.errors import ConfigError
from rxaudio.operators import gain, queue
from rxaudio.sources import testsrc
from rxaudio.testing import frame, run_marbles

FRAMES = {k: frame(4 * i, 4, value=0.1 * (i + 1)) for i, k in enumerate("abcdef")}
WAIT = 60  # only bounds a hang


def starts(values: list[Any]) -> list[int]:
    return [f.start for f in values]


def test_leaky_no_delivers_everything_in_order() -> None:
    s = TestScheduler()
    q = queue(max_size_buffers=2, scheduler=s)
    out = run_marbles("-(a,b,c,d)-e-|", FRAMES, q, scheduler=s)
    assert starts(out.values) == [0, 4, 8, 12, 16]
    assert out.marbles() == "-(xxxx)---------x-|"
    assert q.stats.dropped == 0 and q.stats.passed == 5 and q.stats.max_level == 2


@pytest.mark.parametrize(("leaky", "kept"), [("upstream", [0, 4, 16]), ("downstream", [8, 12, 16])])
def test_leaky_drops_the_newest_or_the_oldest_and_counts(leaky: str, kept: list[int]) -> None:
    s = TestScheduler()
    q = queue(max_size_buffers=2, leaky=leaky, scheduler=s)
    out = run_marbles("-(a,b,c,d)-e-|", FRAMES, q, scheduler=s)
    assert starts(out.values) == kept
    assert out.completed
    assert q.stats.dropped == 2 and q.stats.passed == 3


def test_max_size_time_counts_audio_in_nanoseconds() -> None:
    # each frame is 4 samples at 16 kHz = 250 us; 500 us holds two
    s = TestScheduler()
    q = queue(max_size_buffers=0, max_size_time=500_000, leaky="downstream", scheduler=s)
    out = run_marbles("-(a,b,c,d,e)-|", FRAMES, q, scheduler=s)
    assert starts(out.values) == [12, 16]
    assert q.stats.dropped == 3


def test_no_limits_buffers_everything() -> None:
    s = TestScheduler()
    q = queue(max_size_buffers=0, max_size_time=0, leaky="upstream", scheduler=s)
    out = run_marbles("-(a,b,c,d,e,f)-|", FRAMES, q, scheduler=s)
    assert len(out.values) == 6 and q.stats.dropped == 0 and q.stats.max_level == 6


def test_error_and_completion_follow_the_buffered_items() -> None:
    s = TestScheduler()
    boom = RuntimeError("boom")
    out = run_marbles("-(a,b,#)", FRAMES, queue(scheduler=s), error=boom, scheduler=s)
    assert starts(out.values) == [0, 4]
    assert out.error is boom
    assert [e.kind for e in out.events] == ["N", "N", "E"]
    s = TestScheduler()
    out = run_marbles("-(a,b,|)", FRAMES, queue(leaky="downstream", scheduler=s), scheduler=s)
    assert [e.kind for e in out.events] == ["N", "N", "C"]


def test_dispose_mid_stream_and_resubscribe() -> None:
    s = TestScheduler()
    q = queue(scheduler=s)
    out = run_marbles("-a-b-c-d-|", FRAMES, q, dispose_at=4, scheduler=s)
    assert starts(out.values) == [0, 4] and not out.completed
    s = TestScheduler()
    q = queue(max_size_buffers=1, leaky="upstream", scheduler=s)
    first = run_marbles("-(a,b)-|", FRAMES, q, scheduler=s)
    assert q.stats.dropped == 1
    s2 = TestScheduler()
    q2 = queue(max_size_buffers=1, leaky="upstream", scheduler=s2)
    again = run_marbles("-a-|", FRAMES, q2, scheduler=s2)
    assert len(first.values) == 1 and len(again.values) == 1 and q2.stats.dropped == 0


def test_it_passes_any_item_and_joins_no_run_of_stages() -> None:
    s = TestScheduler()
    out = run_marbles("-a-b-|", {"a": "text", "b": 3}, queue(scheduler=s), scheduler=s)
    assert out.values == ["text", 3]
    q = queue()
    assert q.stages == ()  # a run of stages ends at it
    assert gain(0.0)(rx.empty()).__class__ is not q(rx.empty()).__class__


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"leaky": "yes"}, "leaky"),
        ({"max_size_buffers": -1}, "max_size_buffers"),
        ({"max_size_time": 1.5}, "max_size_time"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        queue(**kwargs)


# --- its thread ----------------------------------------------------------------------------


def queue_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rxaudio-queue"]


def test_items_arrive_on_the_queue_thread_in_order_and_the_thread_ends() -> None:
    before = len(queue_threads())
    got: list[int] = []
    where: set[str] = set()
    done = threading.Event()
    q = queue(max_size_buffers=3)

    def on_next(x: int) -> None:
        got.append(x)
        where.add(threading.current_thread().name)

    rx.from_iterable(range(2000)).pipe(q).subscribe(on_next, on_completed=done.set)
    assert done.wait(WAIT)
    assert got == list(range(2000)) and where == {"rxaudio-queue"}
    assert q.stats.dropped == 0
    for t in queue_threads()[before:]:
        t.join(WAIT)
    assert len(queue_threads()) == before


def test_dispose_releases_a_blocked_producer_and_stops_the_thread() -> None:
    before = len(queue_threads())
    release = threading.Event()
    entered = threading.Event()
    produced: list[int] = []
    subject: rx.subject.Subject[int] = rx.subject.Subject()

    def slow(_x: int) -> None:
        entered.set()
        release.wait(WAIT)

    sub = subject.pipe(queue(max_size_buffers=1)).subscribe(slow)
    assert len(queue_threads()) == before + 1

    def produce() -> None:
        for i in range(5):  # the first is taken, the second fills the buffer, the third blocks
            subject.on_next(i)
            produced.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    assert entered.wait(WAIT)
    disposer = threading.Thread(target=sub.dispose)
    disposer.start()
    release.set()  # the item being delivered returns; the thread then ends
    disposer.join(WAIT)
    producer.join(WAIT)
    assert not producer.is_alive() and produced == [0, 1, 2, 3, 4]
    assert len(queue_threads()) == before


def test_an_exception_downstream_ends_the_stream_with_it() -> None:
    errors: list[Exception] = []
    done = threading.Event()

    def bad(_x: int) -> None:
        raise ValueError("sink broke")

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        done.set()

    rx.from_iterable(range(5)).pipe(queue()).subscribe(bad, on_error)
    assert done.wait(WAIT)
    assert str(errors[0]) == "sink broke"


def test_a_slow_branch_after_a_queue_does_not_hold_up_the_other() -> None:
    # one source, two branches (publish, as a tee does); the slow one waits until the fast one
    # has completed, which it can only do if the slow one's queue took its items meanwhile
    source = testsrc(wave="sine", num_buffers=300, samplesperbuffer=160).pipe(ops.publish())
    fast_done, slow_done = threading.Event(), threading.Event()
    fast: list[int] = []
    slow: list[int] = []
    waited: list[bool] = []
    slow_at_fast_end: list[int] = []

    def slow_sink(f: Any) -> None:
        if not slow:  # its first item waits until the other branch has completed
            waited.append(fast_done.wait(WAIT))
        slow.append(f.start)

    def fast_end() -> None:
        slow_at_fast_end.append(len(slow))
        fast_done.set()

    source.pipe(queue(max_size_buffers=0, max_size_time=0)).subscribe(
        slow_sink, on_completed=slow_done.set
    )
    source.subscribe(lambda f: fast.append(f.start), on_completed=fast_end)
    source.connect()
    assert slow_done.wait(WAIT)
    assert waited == [True], "the fast branch was held up by the slow one"
    assert slow_at_fast_end == [0]  # complete while the slow branch had delivered nothing
    assert fast == slow == [160 * i for i in range(300)]


def test_without_a_queue_the_slow_branch_holds_up_the_other() -> None:
    # the control: the same graph without the queue; the slow sink's wait times out
    source = testsrc(wave="sine", num_buffers=20, samplesperbuffer=160).pipe(ops.publish())
    fast_done = threading.Event()
    waited: list[bool] = []

    def slow_sink(_f: Any) -> None:
        if not waited:
            waited.append(fast_done.wait(0.5))

    source.subscribe(slow_sink)
    source.subscribe(on_completed=fast_done.set)
    source.connect()
    assert waited == [False]


def test_speech_through_a_queue_is_unchanged() -> None:
    got: list[Any] = []
    done = threading.Event()
    src = testsrc(wave="speech", seconds=2.0, samplesperbuffer=333)
    src.pipe(queue(max_size_buffers=2)).subscribe(got.append, on_completed=done.set)
    assert done.wait(WAIT)
    direct: list[Any] = []
    src.subscribe(direct.append)
    assert np.array_equal(
        np.concatenate([f.samples for f in got]), np.concatenate([f.samples for f in direct])
    )
