"""Shared emission loop for block sources: immediate (as fast as consumed) or paced in real time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from reactivex import abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import CurrentThreadScheduler, NewThreadScheduler

from ..frames import AudioFrame


def emit_blocks(
    observer: abc.ObserverBase[AudioFrame],
    scheduler: abc.SchedulerBase | None,
    open_blocks: Callable[[], tuple[Iterator[AudioFrame], Callable[[], None]]],
    *,
    realtime: bool,
) -> abc.DisposableBase:
    """Emit the frames of an iterator opened on subscribe; close it on end or dispose.

    Immediate mode loops in one scheduled action (like ``reactivex.from_iterable``). Realtime
    mode schedules frame ``k`` at ``t0 + frame.start / rate`` on absolute time, so pacing does
    not drift, and works in virtual time on a ``TestScheduler``.
    """
    disposed = False
    closer: list[Callable[[], None]] = []
    pending = SerialDisposable()
    # dispose may run on another thread (Ctrl-C on the main thread while a realtime source
    # reads on its scheduler's thread): reading and closing never overlap
    lock = threading.RLock()

    def close() -> None:
        with lock:
            while closer:
                closer.pop()()

    def read(blocks: Iterator[AudioFrame]) -> AudioFrame | None:
        with lock:
            if disposed or not closer:
                return None
            return next(blocks, None)

    def fail(exc: Exception) -> None:
        close()
        observer.on_error(exc)

    def start(sched: abc.SchedulerBase, _: Any = None) -> abc.DisposableBase | None:
        try:
            blocks, close_fn = open_blocks()
        except Exception as exc:
            observer.on_error(exc)
            return None
        closer.append(close_fn)
        if not realtime:
            try:
                while (frame := read(blocks)) is not None:
                    observer.on_next(frame)
            except Exception as exc:
                fail(exc)
                return None
            except BaseException:  # Ctrl-C on this (main) thread: release the file, re-raise
                close()
                raise
            close()
            if not disposed:
                observer.on_completed()
            return None

        t0 = sched.now
        first: list[int] = []

        def step(s: abc.SchedulerBase, __: Any = None) -> abc.DisposableBase | None:
            if disposed:
                return None
            try:
                frame = read(blocks)
            except Exception as exc:
                fail(exc)
                return None
            if frame is None:
                if not disposed:
                    close()
                    observer.on_completed()
                return None
            if not first:
                first.append(frame.start)
            observer.on_next(frame)
            due = t0 + timedelta(seconds=(frame.end - first[0]) / frame.sample_rate)
            pending.disposable = s.schedule_absolute(due, step)
            return None

        return step(sched)

    def dispose() -> None:
        nonlocal disposed
        disposed = True
        close()

    if scheduler is None:
        scheduler = NewThreadScheduler() if realtime else CurrentThreadScheduler.singleton()
    return CompositeDisposable(scheduler.schedule(start), pending, Disposable(dispose))
