"""The one stage runtime: an executor running a run of adjacent stages in one subscription.

A *stage* is per-subscription state with one protocol (:func:`step_of`: ``push``, ``flush``
or ``close(reason)`` at the end, ``apply`` live settings, a gap timeout, ``dispose``), seen by
the executor as a :class:`Step` of plain calls: ``push`` an item, ``end`` (end of stream),
``abort`` (close with the reason ``"error"`` on an upstream error), ``apply``, the gap timeout
(``gap_seconds``/``on_gap``) and ``dispose``. A :class:`Fusable` describes how to open one
(name, factory, settings Observable, timer scheduler). :class:`Stages` is the Observable of a
source run through a tuple of them; every stage-based element (``stage_operator``,
``map_operator``, ``live_operator``, ``vad``, a :class:`~rxaudio.core.fuse.Fused` one) is
that Observable, and an element applied to the output of another one extends it instead of
stacking a second subscription: adjacent stages in ``pipe(...)`` run as one, by plain calls.

What a subscriber sees is what the stages would give as separate Rx operators:

* errors: a stage's exception becomes ``on_error`` named after *that* element, with the
  sample index of the item it was given; an upstream error reaches every stage in order
  (a live stage emits what it closes, through the stages after it, before the error);
* completion: each stage's flush outputs go through the following stages before their own
  flush;
* live settings: each stage's Observable is subscribed on its own, last stage first, and
  applied as it arrives, between items; a refused one is a
  :class:`~rxaudio.frames.SettingsRejected` item from that stage on;
* gap timers: each live stage keeps its own timer on its own scheduler.

One lock serialises a run that has settings or timers (they may come from other threads);
a run with neither takes none. The executor is an object whose methods call each other, not
closures that refer to each other, and its timers hold it only through a weak reference: a
run that completes, fails or is disposed is freed by reference counting, nothing emptied by
hand.
"""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import CurrentThreadScheduler, ImmediateScheduler, TimeoutScheduler

from ..errors import ConfigError, StreamError
from ..frames import SettingsRejected


def sample_index_of(item: Any) -> int | None:
    """Best-effort sample index of a frame-like item, for error context."""
    start = getattr(item, "start", None)
    return start if isinstance(start, int) else None


def wrap_error(name: str, exc: BaseException, item: Any = None) -> StreamError:
    """Give an exception raised inside an operator its context (operator, sample index)."""
    if isinstance(exc, StreamError):
        return exc
    message = str(exc) or type(exc).__name__
    # Avoid "resample: resample: ..." when the stage already named itself.
    if message.startswith(name + ": "):
        message = message[len(name) + 2 :]
    err = StreamError(name, message, sample_index_of(item))
    err.__cause__ = exc
    return err


@dataclass(frozen=True, slots=True)
class Step:
    """One subscription's stage as plain calls: what the executor runs for an element.

    ``push`` and ``end`` (completion) return the outputs; an exception they raise becomes
    ``on_error`` with the element's name and the item's sample index (:func:`wrap_error`; a
    :class:`~rxaudio.errors.StreamError` passes unchanged, :class:`PartialFailure` emits its
    outputs first). ``abort`` runs on an upstream error and returns what to emit before it
    (its exceptions are ignored: the original error matters more); ``dispose`` frees
    resources. ``gap_seconds``/``on_gap`` and ``apply`` are the live stages' gap timer and
    settings (:func:`~rxaudio.operators._live.live_operator`). ``map``, where given, is the
    one-in-one-out function that ``push`` wraps (``push(x) == (map(x),)``): the executor calls
    it directly where that saves a call (a map element on its own).
    """

    push: Callable[[Any], Iterable[Any]]
    end: Callable[[], Iterable[Any]]
    abort: Callable[[], Iterable[Any]] | None = None
    dispose: Callable[[], None] | None = None
    gap_seconds: Callable[[], float | None] | None = None
    on_gap: Callable[[], Iterable[Any]] | None = None
    apply: Callable[[Mapping[str, Any]], None] | None = None
    map: Callable[[Any], Any] | None = None


def step_of(stage: Any) -> Step:
    """The executor's view of a stage object: the one stage protocol, read off its methods.

    ``push(item)`` returns the outputs an item completes. At the end of the stream a stage is
    told why if it can be (``close(reason)``: ``"end_of_stream"`` at completion, ``"error"``
    on an upstream error, its outputs emitted before the error), else flushed (``flush()``).
    ``apply(settings)`` takes live settings (raise :class:`~rxaudio.errors.ConfigError` to
    refuse them); ``gap_seconds()`` asks for a timeout (seconds without input, or ``None``)
    after which ``on_gap()`` runs; ``dispose()`` frees resources when the run ends.
    """
    close = getattr(stage, "close", None)
    gap_seconds = getattr(stage, "gap_seconds", None)
    return Step(
        stage.push,
        stage.flush if close is None else partial(close, "end_of_stream"),
        abort=None if close is None else partial(close, "error"),
        dispose=getattr(stage, "dispose", None),
        gap_seconds=gap_seconds,
        on_gap=stage.on_gap if gap_seconds is not None else None,
        apply=getattr(stage, "apply", None),
    )


@dataclass(frozen=True, slots=True)
class Fusable:
    """How to run an element's stage: its name and a :class:`Step` factory.

    ``open`` is called once per subscription (fresh state for every subscriber, re-subscribe
    and ``retry``); ``settings`` is the live settings Observable, ``scheduler`` the gap
    timer's own.
    """

    name: str
    open: Callable[[], Step]
    settings: Any = None  # Observable[Mapping[str, Any]] | None
    scheduler: abc.SchedulerBase | None = None


class PartialFailure(Exception):
    """Raised by a :class:`Step`: emit ``outputs``, then fail with ``error``."""

    def __init__(self, outputs: list[Any], error: Exception) -> None:
        super().__init__(str(error))
        self.outputs = outputs
        self.error = error


def timer_scheduler(
    explicit: abc.SchedulerBase | None, subscribed: abc.SchedulerBase | None
) -> abc.SchedulerBase:
    """Where a stage's gap timer runs: ``explicit``, else the subscription's scheduler.

    A trampoline (current thread) or immediate scheduler would block the stream while it
    waits, so timers then go to a timeout scheduler; virtual-time schedulers are kept.
    """
    for s in (explicit, subscribed):
        if s is not None and not isinstance(s, CurrentThreadScheduler | ImmediateScheduler):
            return s
    return TimeoutScheduler.singleton()


class Stages(Observable[Any]):
    """``source`` run through ``specs``' stages in one subscription (one executor per subscriber).

    :func:`run_stages` builds it; applied to a :class:`Stages`, it extends that one's run.
    """

    def __init__(self, source: Observable[Any], specs: tuple[Fusable, ...]) -> None:
        super().__init__()
        self.source = source
        self.specs = specs

    def _subscribe_core(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        run = _Run(self.specs, observer, scheduler)
        subs = CompositeDisposable()
        subscribe_settings(run, self.specs, scheduler, subs)
        on_next = _entry(run)
        subs.add(
            self.source.subscribe(on_next, run.on_error, run.on_completed, scheduler=scheduler)
        )
        subs.add(Disposable(run.dispose))
        return subs


def subscribe_settings(
    run: _Run,
    specs: Sequence[Fusable],
    scheduler: abc.SchedulerBase | None,
    subs: CompositeDisposable,
) -> None:
    """Subscribe the settings Observables of ``specs`` (``run``'s stages) into ``subs``, the
    last stage first, as separate operators would subscribe them."""
    for j in reversed(range(len(specs))):
        settings = specs[j].settings
        if settings is not None:
            inlet = _SettingsInlet(run, j)
            subs.add(settings.subscribe(inlet.on_next, inlet.on_error, scheduler=scheduler))


def run_stages(source: Observable[Any], specs: Sequence[Fusable]) -> Observable[Any]:
    """``source`` through ``specs``' stages; a :class:`Stages` source gets them appended."""
    if type(source) is Stages:
        return Stages(source.source, source.specs + tuple(specs))
    return Stages(source, tuple(specs))


def stages_operator(specs: Sequence[Fusable]) -> Callable[[Observable[Any]], Observable[Any]]:
    """The Rx operator running ``specs``' stages in order in one subscription."""
    frozen = tuple(specs)

    def _operator(source: Observable[Any]) -> Observable[Any]:
        return run_stages(source, frozen)

    return _operator


def _detach_frames(exc: BaseException) -> None:
    """Keep ``exc``'s traceback as text (a note), not as frames.

    A subscriber may keep the error it was given; the frames of its traceback (and the callers
    each frame refers to) would keep the executor, so every stage and its buffers, alive
    with it. The note shows the same lines where the error is printed.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:  # the error, its cause, its context...
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the executor's own frames say nothing about the stage
        if tb is not None:
            e.add_note("Raised in the stage at:\n" + "".join(traceback.format_tb(tb)).rstrip())
        e.__traceback__ = None
        todo += (e.__cause__, e.__context__)


def _entry(run: _Run) -> Callable[[Any], None]:
    """The run's ``on_next``: the lock only where it is needed, one stage on its own inline.

    A closure over the run's fields, made once per subscription: per item it is the cheapest
    call there is (a method reads each field through ``self``). The run does not refer to it,
    so it makes no cycle.
    """
    first, fail, carry, emit, done = run.steps[0], run.fail, run.carry, run.emit, run.done
    push, fn = first.push, first.map
    if run.locked:
        lock = run.lock

        def on_next_locked(item: Any) -> None:
            with lock:
                if not done[0]:  # else disposed from another thread while this item waited
                    carry(0, item)

        return on_next_locked
    if run.n > 1:
        return partial(carry, 0)
    if fn is not None:

        def on_next_map(item: Any) -> None:  # an element such as level or gain on its own
            try:
                out = fn(item)
            except Exception as exc:  # a stage's failure travels downstream
                fail(0, exc, item)
                return
            emit(out)

        return on_next_map

    def on_next_one(item: Any) -> None:  # one stage on its own
        try:
            out = push(item)
        except Exception as exc:
            fail(0, exc, item)
            return
        for o in out:
            emit(o)

    return on_next_one


def _on_timer(_scheduler: abc.SchedulerBase, state: tuple[weakref.ref[_Run], int] | None) -> None:
    # A pending timer holds its run only weakly: it never keeps a chain alive, and no cycle
    # runs through the scheduler's queue.
    assert state is not None
    run = state[0]()
    if run is not None:
        run.on_timer(state[1])


class _SettingsInlet:
    """Stage ``j``'s settings subscription, feeding its run."""

    __slots__ = ("j", "run")

    def __init__(self, run: _Run, j: int) -> None:
        self.run, self.j = run, j

    def on_next(self, value: Mapping[str, Any]) -> None:
        self.run.on_settings(self.j, value)

    def on_error(self, exc: Exception) -> None:
        self.run.on_settings_error(self.j, exc)


class _Run:
    """One subscription's stages, in order, and what their timers and settings need."""

    __slots__ = (
        "__weakref__",
        "armed",
        "done",
        "emit",
        "ended",
        "gaps",
        "items",
        "last",
        "lock",
        "locked",
        "maps",
        "n",
        "names",
        "observer",
        "opened",
        "pushes",
        "scheds",
        "steps",
        "timer_states",
        "timers",
    )

    def __init__(
        self,
        specs: tuple[Fusable, ...],
        observer: abc.ObserverBase[Any],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        n = self.n = len(specs)
        # fresh stages, opened last first as separate operators' subscribes run
        steps = self.steps = [specs[j].open() for j in reversed(range(n))][::-1]
        self.names = [s.name for s in specs]
        self.pushes = [st.push for st in steps]
        self.gaps = [st.gap_seconds for st in steps]
        self.maps = [st.map for st in steps]
        self.observer = observer
        self.emit = observer.on_next
        self.done = [False] * n
        self.ended = False  # the observer has been given on_error or on_completed
        self.opened = True  # the stages' resources are not yet disposed
        self.lock = threading.RLock()
        self.items: list[Any] = [None] * n  # each live stage's last input (SettingsRejected.at)
        self.armed = [False] * n
        self.last: list[datetime | None] = [None] * n
        self.timers = [SerialDisposable() if g is not None else None for g in self.gaps]
        self.scheds = [
            timer_scheduler(specs[j].scheduler, scheduler) if self.gaps[j] is not None else None
            for j in range(n)
        ]
        ref = weakref.ref(self)
        self.timer_states = [(ref, j) for j in range(n)]
        # settings and timers may come from other threads; without them items take no lock
        self.locked = any(s.settings is not None for s in specs) or any(
            g is not None for g in self.gaps
        )

    # --- from upstream ---------------------------------------------------------------------

    def on_error(self, exc: Exception) -> None:
        with self.lock:
            self.propagate_error(0, exc)
            self.dispose_stages()

    def on_completed(self) -> None:
        with self.lock:
            self.complete(0)

    def dispose(self) -> None:
        with self.lock:
            self.dispose_stages()

    # --- the stages ------------------------------------------------------------------------

    def carry(self, j: int, item: Any) -> None:
        """One item into stage ``j``, and what comes out on through the stages after it.

        A loop over the stages, so a chain of a thousand elements runs in one call frame. While
        one item goes in and one comes out (a map element, a stage that emits what it takes)
        nothing is allocated here; several outputs go on through :meth:`run`.
        """
        n, done, maps = self.n, self.done, self.maps
        while not done[j]:
            fn = maps[j]
            if fn is not None:
                try:
                    item = fn(item)
                except Exception as exc:  # a stage's failure travels downstream
                    self.fail(j, exc, item)
                    return
            else:
                gap = self.gaps[j]
                if gap is not None:
                    self.items[j] = item
                try:
                    outputs = self.pushes[j](item)
                except Exception as exc:
                    self.fail(j, exc, item)
                    return
                if gap is not None and not done[j] and (self.armed[j] or gap() is not None):
                    self.touch(j)
                if type(outputs) is not list and type(outputs) is not tuple:
                    outputs = list(outputs)  # a stage may return any iterable
                if len(outputs) != 1:
                    if outputs:
                        self.run(j + 1, outputs)
                    return
                item = outputs[0]
            j += 1
            if j == n:
                self.emit(item)
                return

    def run(self, j: int, outputs: Iterable[Any]) -> None:
        """Stage ``j`` takes every item of ``outputs``, stage ``j + 1`` what came out, and so on.

        Each stage sees its items in the order separate operators give them, and so does the
        observer.
        """
        n, done = self.n, self.done
        while j < n:
            batch = outputs if type(outputs) is list or type(outputs) is tuple else list(outputs)
            if not batch or done[j]:
                return
            if len(batch) == 1:
                self.carry(j, batch[0])
                return
            push, gap = self.pushes[j], self.gaps[j]
            acc: list[Any] = []
            for item in batch:
                if gap is not None:
                    self.items[j] = item
                try:
                    acc.extend(push(item))
                except Exception as exc:
                    self.run(j + 1, acc)  # after what the items before it gave
                    self.fail(j, exc, item)
                    return
                if gap is not None and not done[j] and (self.armed[j] or gap() is not None):
                    self.touch(j)
            outputs = acc
            j += 1
        emit = self.emit
        for o in outputs:
            emit(o)

    def stop(self, j: int) -> None:
        self.done[j] = True
        timer = self.timers[j]
        if timer is not None:
            timer.dispose()

    def dispose_stages(self) -> None:
        for j in range(self.n):
            self.stop(j)
        if self.opened:
            self.opened = False
            for st in self.steps:
                if st.dispose is not None:
                    st.dispose()

    def end_with_error(self, err: Exception) -> None:
        if not self.ended:
            self.ended = True
            self.observer.on_error(err)

    def propagate_error(self, k: int, err: Exception) -> None:
        # stage k's on_error, then k + 1's...: a live stage closes ("error") and emits what it
        # closed through the stages after it
        while k < self.n:
            if self.done[k]:
                return  # every stage from k on has ended: the observer has heard of it
            self.stop(k)
            abort = self.steps[k].abort
            if abort is not None:
                try:
                    self.run(k + 1, list(abort()))
                except Exception:  # the original error matters more
                    pass
            k += 1
        self.end_with_error(err)

    def fail(self, j: int, exc: Exception, item: Any = None) -> None:
        _detach_frames(exc)
        if isinstance(exc, PartialFailure):
            self.run(j + 1, list(exc.outputs))
            exc = exc.error
            _detach_frames(exc)
        self.stop(j)
        self.propagate_error(j + 1, wrap_error(self.names[j], exc, item))
        self.dispose_stages()

    def complete(self, k: int) -> None:
        # stage k ends and emits what it held, then k + 1... (a loop)
        while k < self.n:
            if self.done[k]:
                return
            self.stop(k)
            try:
                out = list(self.steps[k].end())
            except Exception as exc:
                self.fail(k, exc)
                return
            self.run(k + 1, out)
            k += 1
        if not self.ended:
            self.ended = True
            self.observer.on_completed()

    # --- gap timers ------------------------------------------------------------------------

    def touch(self, j: int) -> None:
        sched = self.scheds[j]
        assert sched is not None
        self.last[j] = sched.now  # the clock is read only when a timer runs
        self.arm(j)

    def arm(self, j: int) -> None:
        # at most one pending timer per stage; it re-arms itself for the rest of the gap
        gap_seconds, timer, sched = self.gaps[j], self.timers[j], self.scheds[j]
        assert gap_seconds is not None and timer is not None and sched is not None
        gap = gap_seconds()
        if gap is None:
            if self.armed[j]:
                timer.disposable = Disposable()
                self.armed[j] = False
            return
        if not self.armed[j]:
            self.armed[j] = True
            last = self.last[j]
            assert last is not None
            timer.disposable = sched.schedule_absolute(
                last + timedelta(seconds=gap), _on_timer, self.timer_states[j]
            )

    def on_timer(self, j: int) -> None:
        with self.lock:
            self.armed[j] = False
            if self.done[j]:
                return
            step, sched, last = self.steps[j], self.scheds[j], self.last[j]
            assert step.gap_seconds is not None and step.on_gap is not None
            assert sched is not None and last is not None
            gap = step.gap_seconds()
            if gap is None:
                return
            if sched.now - last < timedelta(seconds=gap or 0):
                self.arm(j)  # input arrived meanwhile: wait for the rest of the gap
                return
            try:
                out = list(step.on_gap())
            except Exception as exc:
                self.fail(j, exc)
                return
            self.run(j + 1, out)

    # --- live settings ---------------------------------------------------------------------

    def on_settings(self, j: int, value: Mapping[str, Any]) -> None:
        with self.lock:
            if self.done[j]:
                return
            name, apply = self.names[j], self.steps[j].apply
            try:
                if not isinstance(value, Mapping):
                    raise ConfigError(
                        f"{name}: settings must be a mapping of option names to values, "
                        f"got {type(value).__name__}"
                    )
                if apply is None:
                    raise ConfigError(f"{name}: takes no settings")
                apply(value)
            except Exception as exc:
                msg = str(exc)
                if not isinstance(exc, ConfigError):
                    msg = f"{name}: {type(exc).__name__}: {msg}"
                snapshot = dict(value) if isinstance(value, Mapping) else {}
                at = sample_index_of(self.items[j])
                self.run(j + 1, [SettingsRejected(name, snapshot, msg, at)])

    def on_settings_error(self, j: int, exc: Exception) -> None:
        with self.lock:
            if not self.done[j]:
                name = self.names[j]
                self.run(
                    j + 1, [SettingsRejected(name, {}, f"{name}: settings stream failed: {exc}")]
                )
