"""The adapter for operators whose work is slow: a bounded queue to a thread of their own.

:func:`offload_operator` is to slow per-item work (speech recognition) what
:func:`~rxaudio.core.element.stage_operator` is to stateful per-item work. The thread that
delivers items only checks and enqueues them; a per-subscription *job* (a plain object, no Rx)
processes them on a worker scheduler (a new thread per subscription unless given), in order.
At most ``queue`` items wait or run: with ``overflow="skip"`` another one is not processed but
replaced, in its place in the output, by the job's stand-in for it (``skipped``), and counted;
with ``overflow="wait"`` the delivering thread blocks until there is room. Observer calls are
serialised (passed-through items from the delivering thread, results from the worker);
completion and upstream errors come after the pending results; the job is closed at the end,
on error and on dispose (without waiting for an item in progress).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import EventLoopScheduler

from .caps import Caps
from .element import Element, wrap_error

A_contra = TypeVar("A_contra", contravariant=True)
B_co = TypeVar("B_co", covariant=True)

OVERFLOW = ("skip", "wait")


class Job(Protocol[A_contra, B_co]):
    """Per-subscription work, run on the worker: no Rx, testable with plain calls."""

    def check(self, item: A_contra) -> None:
        """On the delivering thread, before the item is queued: raise to refuse it (the error
        reaches the stream after the results before it)."""
        ...

    def process(self, item: A_contra) -> B_co:
        """On the worker: the result for one item."""
        ...

    def skipped(self, item: A_contra, count: int) -> B_co:
        """The stand-in for an item not processed (``count``: skipped so far, this one
        included); called on the delivering thread, so it must be cheap."""
        ...

    def close(self) -> None:
        """Release what the job holds (called once, from any thread)."""
        ...


def offload_operator(
    name: str,
    make_job: Callable[[], Job[Any, Any]],
    *,
    takes: Callable[[Any], bool],
    queue: int,
    overflow: str = "skip",
    passthrough: bool = False,
    scheduler: abc.SchedulerBase | None = None,
    accepts: Caps | None = None,
    produces: Caps | None = None,
) -> Element[Any, Any]:
    """An operator that processes the items ``takes`` accepts with a job on a worker thread;
    other items are dropped, or with ``passthrough`` passed on (as are the processed ones)."""
    if overflow not in OVERFLOW:
        raise ValueError(f"{name}: overflow must be one of {OVERFLOW}, got {overflow!r}")

    def _operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], sched: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            worker = scheduler or EventLoopScheduler()
            job = make_job()
            emit_lock, count_lock = threading.Lock(), threading.Lock()
            room = threading.Semaphore(queue)
            state = {"pending": 0, "skipped": 0}
            stopped = threading.Event()
            closed = threading.Event()

            def emit(fn: Callable[[], None]) -> None:
                with emit_lock:
                    if not stopped.is_set():
                        fn()

            def release() -> None:
                if not closed.is_set():
                    closed.set()
                    job.close()

            def stop(exc: Exception) -> None:
                emit(lambda: observer.on_error(exc))
                stopped.set()
                release()

            def complete() -> None:
                release()
                emit(observer.on_completed)

            def later(fn: Callable[[], None]) -> None:
                worker.schedule(lambda _s, _st: fn())

            def run(item: Any) -> None:
                try:
                    if stopped.is_set():
                        return
                    try:
                        out = job.process(item)
                    except Exception as exc:
                        stop(wrap_error(name, exc, item))
                        return
                    emit(lambda: observer.on_next(out))
                finally:
                    with count_lock:
                        state["pending"] -= 1
                    if overflow == "wait":
                        room.release()

            def on_next(item: Any) -> None:
                if stopped.is_set():
                    return
                if not takes(item):
                    if passthrough:
                        emit(lambda: observer.on_next(item))
                    return
                try:
                    job.check(item)
                except Exception as exc:
                    err = wrap_error(name, exc, item)  # ``exc`` is unbound after the block
                    later(lambda: stop(err))
                    return
                if passthrough:
                    emit(lambda: observer.on_next(item))
                if overflow == "wait":
                    while not room.acquire(timeout=0.1):  # blocks the source; not when disposed
                        if stopped.is_set():
                            return
                with count_lock:
                    full = overflow == "skip" and state["pending"] >= queue
                    state["skipped" if full else "pending"] += 1
                    count = state["skipped"]
                if full:
                    stand_in = job.skipped(item, count)
                    later(lambda: emit(lambda: observer.on_next(stand_in)))
                    return
                later(lambda: run(item))

            def on_error(exc: Exception) -> None:
                later(lambda: stop(exc))

            def on_completed() -> None:
                later(complete)

            sub = source.subscribe(on_next, on_error, on_completed, scheduler=sched)

            def dispose() -> None:
                stopped.set()
                release()
                if isinstance(worker, EventLoopScheduler) and worker is not scheduler:
                    worker.dispose()

            return CompositeDisposable(sub, Disposable(dispose))

        return Observable(subscribe)

    return Element(name, _operator, accepts=accepts, produces=produces)
