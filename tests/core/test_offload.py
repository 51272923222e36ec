"""offload_operator with a trivial job: order, stand-ins, waiting, passthrough, errors, close."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex import from_iterable
from reactivex.scheduler import ImmediateScheduler
from reactivex.testing import TestScheduler

from rxaudio.core.offload import offload_operator
from rxaudio.errors import StreamError
from rxaudio.testing import collect


class Double:
    closed = 0

    def check(self, item: int) -> None:
        if item < 0:
            raise ValueError(f"{item} is negative")

    def process(self, item: int) -> int:
        return 2 * item

    def skipped(self, item: int, count: int) -> str:
        return f"skipped {item} ({count})"

    def close(self) -> None:
        type(self).closed += 1


def op(**kw: Any) -> Any:
    kw.setdefault("queue", 2)
    return offload_operator("double", Double, takes=lambda x: isinstance(x, int), **kw)


def test_results_in_order_on_a_thread_and_the_job_closed() -> None:
    Double.closed = 0
    assert collect(from_iterable(range(5)).pipe(op(overflow="wait"))) == [0, 2, 4, 6, 8]
    assert Double.closed == 1


def test_a_full_queue_gives_stand_ins_in_place() -> None:
    worker = TestScheduler()  # nothing runs until started: a busy worker
    got: list[Any] = []
    from_iterable(range(4)).pipe(op(scheduler=worker)).subscribe(got.append)
    worker.start()
    assert got == [0, 2, "skipped 2 (1)", "skipped 3 (2)"]


def test_passthrough_and_other_items() -> None:
    inline = ImmediateScheduler()
    assert collect(from_iterable(["a", 1]).pipe(op(scheduler=inline))) == [2]
    out = collect(from_iterable(["a", 1]).pipe(op(scheduler=inline, passthrough=True)))
    assert out == ["a", 1, 2]


def test_a_refused_item_errors_after_the_results_before_it() -> None:
    got: list[Any] = []
    errs: list[Exception] = []
    from_iterable([1, -1, 3]).pipe(op(scheduler=ImmediateScheduler())).subscribe(
        got.append, errs.append
    )
    assert got == [2] and isinstance(errs[0], StreamError) and "-1 is negative" in str(errs[0])


def test_bad_overflow() -> None:
    with pytest.raises(ValueError, match="overflow must be one of"):
        op(overflow="drop")
