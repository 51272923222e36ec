"""Run consecutive stage-based elements as one Rx operator.

A chain such as ``vad ! hysteresis ! buffer_utterance`` is three Rx operators: every item
crosses an observer hop (and each live operator's lock) between them. Elements built from
stages (:func:`~rxaudio.core.element.stage_operator`, ``map_operator``, the live operators,
``vad``) also describe their stage (:class:`~rxaudio.core.element.Fusable`); :func:`fuse`
merges each run of such adjacent elements into one operator that passes an item from stage
to stage by plain calls. It is how a chain is *run*, not what it is: the outputs are those of
the unfused chain, item for item and in order, and so are

* errors: a stage's exception becomes ``on_error`` named after *that* element, with the
  sample index of the item it was given; an upstream error reaches every stage in order
  (a live stage emits what it closes, through the stages after it, before the error);
* completion: each stage's flush outputs go through the following stages before their own
  flush;
* live settings: each stage's Observable is subscribed on its own, last stage first (as the
  unfused chain subscribes them), and applied as it arrives, between items; a refused one is
  a :class:`~rxaudio.frames.SettingsRejected` item from that stage on;
* gap timers: each live stage keeps its own timer on its own scheduler, armed and re-armed
  exactly as :func:`~rxaudio.operators._live.live_operator` does.

One lock serialises the whole fused operator (items, settings, timers) where the unfused chain
took one per live operator; a fused operator with neither settings nor timers takes none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.scheduler import CurrentThreadScheduler, ImmediateScheduler, TimeoutScheduler

from ..errors import ConfigError
from ..frames import SettingsRejected
from .element import (
    Element,
    Fusable,
    Operator,
    PartialFailure,
    Step,
    sample_index_of,
    wrap_error,
)


def _ignore(item: Any) -> None:
    """Where a fused operator's items go once it is disposed: nowhere."""


def _ignore_batch(j: int, batch: list[Any]) -> None:
    """Where a fused operator's items go once it is disposed: nowhere."""


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


class Fused(Element[Any, Any]):
    """An operator running several elements' stages in one subscription (:func:`fuse`)."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Element[Any, Any]]) -> None:
        specs = [p.fusable for p in parts]
        if len(parts) < 2 or any(s is None for s in specs):
            raise ValueError("Fused: needs two or more elements that can be fused")
        super().__init__(
            "+".join(p.name for p in parts),
            stages_operator([s for s in specs if s is not None]),
            accepts=parts[0].accepts,
            produces=parts[-1].produces,
        )
        self.parts = tuple(parts)


def fuse(*operators: Operator[Any, Any]) -> list[Operator[Any, Any]]:
    """The same chain with each run of two or more adjacent fusable elements as one operator.

    Elements that cannot be fused (any other operator) stay as they are, in place; an
    already :class:`Fused` element is opened up and fused with its neighbours.
    ``rx.compose(*fuse(a, b, c))`` gives what ``rx.compose(a, b, c)`` gives, by fewer hops.
    """
    flat: list[Operator[Any, Any]] = []
    for op in operators:
        flat.extend(op.parts if isinstance(op, Fused) else (op,))
    out: list[Operator[Any, Any]] = []
    run: list[Element[Any, Any]] = []

    def close_run() -> None:
        if len(run) > 1:
            out.append(Fused(run))
        else:
            out.extend(run)
        run.clear()

    for op in flat:
        if isinstance(op, Element) and op.fusable is not None:
            run.append(op)
        else:
            close_run()
            out.append(op)
    close_run()
    return out


def stages_operator(specs: Sequence[Fusable]) -> Callable[[Observable[Any]], Observable[Any]]:
    """The Rx operator running ``specs``' stages in order in one subscription."""
    n = len(specs)
    names = [s.name for s in specs]

    def _operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            # fresh stages, opened last first as the unfused chain's subscribes run
            opened = [specs[j].open() for j in reversed(range(n))][::-1]
            steps: list[Step | None] = list(opened)
            lock = threading.RLock()
            done = [False] * n
            disposed = [False]
            items: list[Any] = [None] * n  # each live stage's last input (SettingsRejected.at)
            armed = [False] * n
            last: list[Any] = [None] * n
            timers = [SerialDisposable() if st.gap_seconds is not None else None for st in opened]
            scheds = [
                timer_scheduler(specs[j].scheduler, sub_scheduler)
                if opened[j].gap_seconds is not None
                else None
                for j in range(n)
            ]
            # ``forward[0](j, batch)`` runs ``batch`` through stage j and the stages after it;
            # ``emit[0]`` is the observer's on_next. Both are reached through these lists, which
            # dispose_all empties: ``run_from`` and ``fail`` call each other, and a closure
            # that reaches itself is a reference cycle, kept until the cyclic collector.
            emit: list[Callable[[Any], None]] = [observer.on_next]
            forward: list[Callable[[int, list[Any]], None]] = [_ignore_batch]
            ended = [False]  # the observer has been given on_error or on_completed

            def stop(j: int) -> None:
                done[j] = True
                t = timers[j]
                if t is not None:
                    t.dispose()

            def dispose_all() -> None:
                for j in range(n):
                    stop(j)
                if disposed[0]:
                    return
                disposed[0] = True
                for st in steps:
                    if st is not None and st.dispose is not None:
                        st.dispose()
                # Empty what refers back to the closures, so reference counting frees the
                # stages and their buffers now. Every closure checks ``done`` first.
                steps[:] = [None] * n
                timer_actions.clear()
                timers[:] = [None] * n
                scheds[:] = [None] * n
                emit[0] = _ignore
                forward[0] = _ignore_batch
                items[:] = [None] * n
                last[:] = [None] * n

            def end_with_error(err: Exception) -> None:
                if not ended[0]:
                    ended[0] = True
                    observer.on_error(err)

            def propagate_error(k: int, err: Exception) -> None:
                # stage k's on_error, then k + 1's...: a live stage closes ("error") and emits
                # what it closed through the stages after it
                while k < n:
                    if done[k]:
                        # every stage from k on has ended: the observer has heard of it
                        return
                    stop(k)
                    step = steps[k]
                    abort = step.abort if step is not None else None
                    if abort is not None:
                        try:
                            forward[0](k + 1, list(abort()))
                        except Exception:  # the original error matters more
                            pass
                    k += 1
                end_with_error(err)

            def fail(j: int, exc: Exception, item: Any = None) -> None:
                if isinstance(exc, PartialFailure):
                    forward[0](j + 1, list(exc.outputs))
                    exc = exc.error
                stop(j)
                propagate_error(j + 1, wrap_error(names[j], exc, item))
                dispose_all()

            def complete(k: int) -> None:
                # stage k ends and emits what it held, then k + 1... (a loop)
                while k < n:
                    if done[k]:
                        return
                    stop(k)
                    step = steps[k]
                    assert step is not None
                    try:
                        out = list(step.end())
                    except Exception as exc:
                        if isinstance(exc, PartialFailure):
                            forward[0](k + 1, list(exc.outputs))
                            exc = exc.error
                        propagate_error(k + 1, wrap_error(names[k], exc))
                        dispose_all()
                        return
                    forward[0](k + 1, out)
                    k += 1
                if not ended[0]:
                    ended[0] = True
                    observer.on_completed()

            def arm(j: int) -> None:
                # at most one pending timer per stage; it re-arms itself for the rest of the gap
                step = steps[j]
                assert step is not None and step.gap_seconds is not None
                gap = step.gap_seconds()
                timer = timers[j]
                assert timer is not None
                if gap is None:
                    if armed[j]:
                        timer.disposable = Disposable()
                        armed[j] = False
                    return
                if not armed[j]:
                    armed[j] = True
                    sched = scheds[j]
                    assert sched is not None
                    timer.disposable = sched.schedule_absolute(
                        last[j] + timedelta(seconds=gap), timer_actions[j]
                    )

            def on_timer(j: int) -> None:
                with lock:
                    armed[j] = False
                    if done[j]:
                        return
                    step, sched = steps[j], scheds[j]
                    assert step is not None and sched is not None
                    assert step.gap_seconds is not None and step.on_gap is not None
                    gap = step.gap_seconds()
                    if gap is None:
                        return
                    if sched.now - last[j] < timedelta(seconds=gap or 0):
                        arm(j)  # input arrived meanwhile: wait for the rest of the gap
                        return
                    try:
                        forward[0](j + 1, list(step.on_gap()))
                    except Exception as exc:
                        fail(j, exc)

            def timer_action(j: int) -> abc.ScheduledAction[Any]:
                def action(_s: abc.SchedulerBase, _st: Any = None) -> None:
                    on_timer(j)

                return action

            timer_actions = [timer_action(j) for j in range(n)]

            def run_from(j: int, batch: list[Any]) -> None:
                # Stage j takes every item of ``batch``, then stage j + 1 takes what came out,
                # and so on: a loop over the stages, so a chain of a thousand elements runs in
                # one call frame, not a thousand nested ones. Each stage sees its items in the
                # order the unfused chain gives them, and the observer gets the same items in
                # the same order.
                while j < n:
                    if not batch:
                        return
                    step = steps[j]
                    if done[j] or step is None:
                        return
                    push = step.push
                    live = step.gap_seconds
                    out: list[Any] = []
                    for item in batch:
                        if live is not None:
                            items[j] = item
                        try:
                            out.extend(push(item))
                        except Exception as exc:  # a stage's failure travels downstream
                            forward[0](j + 1, out)  # after what the items before it gave
                            fail(j, exc, item)
                            return
                        if live is not None and not done[j] and (armed[j] or live() is not None):
                            sched = scheds[j]
                            assert sched is not None
                            last[j] = sched.now  # the clock is read only when a timer runs
                            arm(j)
                    batch = out
                    j += 1
                for o in batch:
                    emit[0](o)

            forward[0] = run_from

            def first(item: Any) -> None:
                forward[0](0, [item])

            def locked_next(item: Any) -> None:
                with lock:
                    forward[0](0, [item])

            # settings and timers may come from other threads; without them (as the unfused
            # stage operators) items take no lock
            alone = all(s.settings is None for s in specs) and all(t is None for t in timers)
            on_next: Callable[[Any], None] = first if alone else locked_next

            def on_error(exc: Exception) -> None:
                with lock:
                    propagate_error(0, exc)
                    dispose_all()

            def on_completed() -> None:
                with lock:
                    complete(0)

            def settings_handlers(
                j: int,
            ) -> tuple[Callable[[Mapping[str, Any]], None], Callable[[Exception], None]]:
                name = names[j]
                step = steps[j]
                assert step is not None
                apply = step.apply

                def on_settings(value: Mapping[str, Any]) -> None:
                    with lock:
                        if done[j]:
                            return
                        try:
                            if not isinstance(value, Mapping):
                                raise ConfigError(
                                    f"{name}: settings must be a mapping of option names to "
                                    f"values, got {type(value).__name__}"
                                )
                            if apply is None:
                                raise ConfigError(f"{name}: takes no settings")
                            apply(value)
                        except Exception as exc:
                            msg = str(exc)
                            if not isinstance(exc, ConfigError):
                                msg = f"{name}: {type(exc).__name__}: {msg}"
                            snapshot = dict(value) if isinstance(value, Mapping) else {}
                            at = sample_index_of(items[j])
                            forward[0](j + 1, [SettingsRejected(name, snapshot, msg, at)])

                def on_settings_error(exc: Exception) -> None:
                    with lock:
                        if not done[j]:
                            forward[0](
                                j + 1,
                                [
                                    SettingsRejected(
                                        name, {}, f"{name}: settings stream failed: {exc}"
                                    )
                                ],
                            )

                return on_settings, on_settings_error

            subs = CompositeDisposable()
            for j in reversed(range(n)):  # the unfused chain subscribes the last one's first
                settings = specs[j].settings
                if settings is not None:
                    on_s, on_s_err = settings_handlers(j)
                    subs.add(settings.subscribe(on_s, on_s_err, scheduler=sub_scheduler))
            subs.add(source.subscribe(on_next, on_error, on_completed, scheduler=sub_scheduler))

            def dispose() -> None:
                with lock:
                    dispose_all()

            subs.add(Disposable(dispose))
            return subs

        return Observable(subscribe)

    return _operator
