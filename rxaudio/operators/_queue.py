"""queue: a thread boundary, GStreamer's ``queue``: a bounded buffer and a thread of its own.

What comes in is put in a buffer; a thread of the queue's own (or, when one is given, actions
on a scheduler) takes it out and sends it on, so what follows the queue never holds up what
comes before it. When the buffer is full, ``leaky`` chooses as GStreamer does: ``no`` blocks
the upstream until there is room, ``upstream`` drops the item arriving (the newest),
``downstream`` drops the oldest buffered one. Every drop is counted (:class:`QueueStats`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import VirtualTimeScheduler

from ..core.caps import Caps
from ..core.element import Element
from ..core.props import Choices, Range, Unit, element

LEAKY = ("no", "upstream", "downstream")

_JOIN_S = 10.0  # how long a dispose waits for an item being delivered downstream to return


@dataclass
class QueueStats:
    """What a queue has done in its latest subscription (reset when it is subscribed)."""

    passed: int = 0
    """Items sent on downstream."""
    dropped: int = 0
    """Items dropped because the buffer was full (``leaky=upstream|downstream``)."""
    level: int = 0
    """Items in the buffer now."""
    max_level: int = 0
    """The most items the buffer has held at once."""


class Queue(Element[Any, Any]):
    """The ``queue`` element: an :class:`~rxaudio.core.element.Element` with its counters.

    It has no stages, so a run of stages (:mod:`rxaudio.core.runtime`) ends at it: what
    follows runs on the queue's thread. ``passthrough``: what comes out has the caps of what
    goes in (caps negotiation, :func:`~rxaudio.pipeline.caps.link`, reads it).
    """

    __slots__ = ("leaky", "passthrough", "stats")

    def __init__(self, fn: Callable[[Observable[Any]], Observable[Any]], leaky: str) -> None:
        super().__init__("queue", fn, accepts=Caps(frame=object), produces=Caps(frame=object))
        self.passthrough = True
        self.leaky = leaky
        self.stats = QueueStats()


def _nanoseconds(item: Any) -> int:
    d = getattr(item, "duration", None)  # an AudioFrame's (other items count no time)
    return round(d * 1e9) if isinstance(d, float | int) else 0


class _QueueRun:
    """One subscription's buffer and consumer (its own thread, or actions on ``scheduler``)."""

    def __init__(
        self,
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase | None,
        max_buffers: int,
        max_ns: int,
        leaky: str,
        stats: QueueStats,
    ) -> None:
        self.observer, self.scheduler = observer, scheduler
        self.max_buffers, self.max_ns, self.leaky, self.stats = max_buffers, max_ns, leaky, stats
        self.buf: deque[tuple[Any, int]] = deque()
        self.ns = 0  # buffered audio, nanoseconds
        self.end: tuple[str, Any] | None = None  # ("C", None) or ("E", exc), after the items
        self.closed = False  # disposed, or ended downstream
        self.cond = threading.Condition()
        # In virtual time, producer and consumer share one thread: blocking means the consumer
        # runs now, for as long as the buffer is full.
        self.inline = isinstance(scheduler, VirtualTimeScheduler)
        self.pending = SerialDisposable()
        self.scheduled = False
        self.thread: threading.Thread | None = None
        if scheduler is None:
            self.thread = threading.Thread(target=self.loop, name="rxaudio-queue", daemon=True)
            self.thread.start()

    # --- the producer's side ---------------------------------------------------------------

    def full(self) -> bool:
        n = len(self.buf)
        return bool(n) and (
            (self.max_buffers > 0 and n >= self.max_buffers)
            or (self.max_ns > 0 and self.ns >= self.max_ns)
        )

    def on_next(self, item: Any) -> None:
        with self.cond:
            while not self.closed and self.end is None and self.full():
                if self.leaky == "upstream":
                    self.stats.dropped += 1  # the newest: this one
                    return
                if self.leaky == "downstream":
                    _, ns = self.buf.popleft()  # the oldest
                    self.ns -= ns
                    self.stats.dropped += 1
                    continue
                if self.inline:
                    self.cond.release()
                    try:
                        self.drain()
                    finally:
                        self.cond.acquire()
                else:
                    self.cond.wait()  # until the consumer has taken one, or disposal
            if self.closed or self.end is not None:
                return
            ns = _nanoseconds(item)
            self.buf.append((item, ns))
            self.ns += ns
            self.stats.level = len(self.buf)
            self.stats.max_level = max(self.stats.max_level, self.stats.level)
            self.wake()

    def on_error(self, exc: Exception) -> None:
        self.finish(("E", exc))

    def on_completed(self) -> None:
        self.finish(("C", None))

    def finish(self, end: tuple[str, Any]) -> None:
        with self.cond:
            if self.closed or self.end is not None:
                return
            self.end = end  # never dropped: it follows the items buffered before it
            self.wake()

    def wake(self) -> None:  # with the lock held
        if self.thread is not None:
            self.cond.notify_all()
        elif not self.scheduled:
            self.scheduled = True
            assert self.scheduler is not None
            self.pending.disposable = self.scheduler.schedule(self.scheduled_drain)

    # --- the consumer's side ---------------------------------------------------------------

    def take(self) -> tuple[bool, Any, tuple[str, Any] | None]:
        """The next thing to deliver, with the lock held: (True, item, None) or (False, None,
        end), or (False, None, None) when there is nothing (yet)."""
        if self.closed:
            return False, None, None
        if self.buf:
            item, ns = self.buf.popleft()
            self.ns -= ns
            self.stats.level = len(self.buf)
            self.cond.notify_all()  # a blocked producer has room
            return True, item, None
        end = self.end
        if end is not None:
            self.closed = True
        return False, None, end

    def deliver(self, got: bool, item: Any, end: tuple[str, Any] | None) -> bool:
        """Send one thing downstream; False once the stream has ended."""
        obs = self.observer
        try:
            if got:
                self.stats.passed += 1
                obs.on_next(item)
                return True
            if end is None:
                return False
            if end[0] == "E":
                obs.on_error(end[1])
            else:
                obs.on_completed()
        except Exception as exc:  # raised downstream, on this thread: end the stream with it
            with self.cond:
                self.closed = True
                self.buf.clear()
                self.cond.notify_all()
            if end is None or end[0] != "E":  # (an observer failing in on_error: not again)
                try:
                    obs.on_error(exc)
                except Exception:  # nobody below can take it: the stream has ended anyway
                    pass
        return False

    def loop(self) -> None:  # the queue's own thread
        while True:
            with self.cond:
                while not self.buf and self.end is None and not self.closed:
                    self.cond.wait()
                got, item, end = self.take()
            if not self.deliver(got, item, end):
                return

    def drain(self) -> None:
        """Deliver everything buffered now (and the end, when it is reached)."""
        while True:
            with self.cond:
                got, item, end = self.take()
            if not got:
                if end is not None:
                    self.deliver(got, item, end)
                return
            if not self.deliver(got, item, end):
                return

    def scheduled_drain(self, _s: abc.SchedulerBase, _state: Any = None) -> None:
        with self.cond:
            self.scheduled = False
        self.drain()

    # --- disposal --------------------------------------------------------------------------

    def dispose(self) -> None:
        with self.cond:
            self.closed = True
            self.buf.clear()
            self.ns = 0
            self.stats.level = 0
            self.cond.notify_all()  # the thread ends; a blocked producer returns
        self.pending.dispose()
        t = self.thread
        if t is not None and t is not threading.current_thread():
            t.join(_JOIN_S)  # an item being delivered finishes first


@element("queue", kind="operator", accepts=Caps(frame=object), produces=Caps(frame=object))
def queue(
    *,
    max_size_buffers: Annotated[int, Range(0), Unit("items")] = 200,
    max_size_time: Annotated[int, Range(0), Unit("ns")] = 1_000_000_000,
    leaky: Annotated[str, Choices(LEAKY)] = "no",
    scheduler: abc.SchedulerBase | None = None,
) -> Queue:
    """Hand items to a thread of its own through a bounded buffer (GStreamer's ``queue``).

    What follows the queue runs on its thread, so a slow element or sink after it (a disk
    stall, a recogniser, a network write) does not hold up what comes before it, nor the other
    branches of a ``tee``. Order is kept; an error and the end of the stream follow the items
    buffered before them and are never dropped. When the buffer is full, ``leaky`` decides:
    ``no`` blocks the upstream until there is room, ``upstream`` drops the arriving item (the
    newest), ``downstream`` the oldest buffered one; drops are counted in ``stats``
    (:class:`QueueStats`) and reported by ``rxaudio launch``. Disposal empties the buffer and
    ends the thread (after the item being delivered, if any).

    .. marble::
        -(abcd)--e--|
        [ queue(max_size_buffers=2, leaky="downstream") ]   a, b dropped (the oldest)
        -(cd)----e--|

    Parameters
    ----------
    max_size_buffers
        The most items buffered (0: no limit).
    max_size_time
        The most audio buffered, in nanoseconds as in GStreamer (0: no limit); items without a
        duration count none.
    leaky
        When full: ``no`` blocks, ``upstream`` drops the newest, ``downstream`` the oldest.
    scheduler
        Deliver by actions on this scheduler instead of a thread of the queue's own (default:
        the subscription's scheduler when it is a virtual-time one, as in marble tests, else
        a thread). In virtual time ``leaky=no`` delivers at once when the buffer is full.
    """
    holder: list[Queue] = []

    def _queue(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], sched: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            stats = holder[0].stats
            stats.passed = stats.dropped = stats.level = stats.max_level = 0
            # virtual time drives it when it drives the subscription (tests, marbles)
            virtual = sched if isinstance(sched, VirtualTimeScheduler) else None
            run = _QueueRun(
                observer, scheduler or virtual, max_size_buffers, max_size_time, leaky, stats
            )
            try:
                sub = source.subscribe(run.on_next, run.on_error, run.on_completed, scheduler=sched)
            except BaseException:
                run.dispose()
                raise
            # the upstream stops first, then the buffer and the thread
            return CompositeDisposable(sub, Disposable(run.dispose))

        return Observable(subscribe)

    holder.append(Queue(_queue, leaky))
    return holder[0]
