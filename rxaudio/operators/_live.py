"""The Rx adapter of stages that take live settings and may need a gap timer.

Like :func:`~rxaudio.core.element.stage_operator`, but the stage can also

* receive settings from an Observable while the stream runs (``apply(settings)``): a bad setting
  is refused with a :class:`~rxaudio.frames.SettingsRejected` item downstream and the previous
  settings stay;
* ask for a timeout (``gap_seconds()`` returning seconds or ``None``): when no item arrived for
  that long on the scheduler, ``on_gap()`` runs and its outputs are emitted;
* close with a reason on upstream error (``close(reason)``), before the error is forwarded.

All observer calls are serialised with one lock (settings and timers may fire on other threads).
The element also carries its stage as a :class:`~rxaudio.core.element.Step` (``fusable``), so
:func:`~rxaudio.core.fuse.fuse` can run it in one operator with its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from ..core.caps import Caps
from ..core.element import Element, Fusable, Step, sample_index_of, wrap_error
from ..core.fuse import timer_scheduler
from ..errors import ConfigError
from ..frames import SettingsRejected


class LiveStage(Protocol):
    """A stage with live settings, a gap timeout and close reasons."""

    def push(self, item: Any) -> Iterable[Any]:
        """Consume an item."""
        ...

    def close(self, reason: str) -> Iterable[Any]:
        """End of input (``end_of_stream``), failure (``error``)."""
        ...

    def apply(self, settings: Mapping[str, Any]) -> None:
        """Validate and adopt new settings (raise ConfigError to refuse them)."""
        ...

    def gap_seconds(self) -> float | None:
        """Seconds without input after which ``on_gap`` should run (None: no timer now)."""
        ...

    def on_gap(self) -> Iterable[Any]:
        """No input arrived for ``gap_seconds``."""
        ...


def live_operator(
    name: str,
    make_stage: Callable[[], LiveStage],
    settings: Observable[Mapping[str, Any]] | None,
    scheduler: abc.SchedulerBase | None = None,
    *,
    accepts: Caps | None = None,
    produces: Caps | None = None,
) -> Element[Any, Any]:
    """Build the Rx operator (one stage per subscription)."""

    def _operator(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            stage = make_stage()
            lock = threading.RLock()
            timer = SerialDisposable()
            sched = timer_scheduler(scheduler, sub_scheduler)
            state: dict[str, Any] = {"done": False, "last": None, "item": None, "armed": False}

            def emit(items: Iterable[Any]) -> None:
                for o in items:
                    observer.on_next(o)

            def finish() -> None:
                # done: no timer, and no cycle (arm -> on_timer -> arm) left to keep the stage
                # and the observer alive until Python's cyclic collector comes round
                state["done"] = True
                timer.dispose()
                timer_action.clear()

            def fail(exc: BaseException, item: Any = None) -> None:
                finish()
                observer.on_error(wrap_error(name, exc, item))

            def arm() -> None:
                # at most one pending timer; it re-arms itself for the rest of the gap
                gap = stage.gap_seconds()
                if gap is None:
                    if state["armed"]:
                        timer.disposable = Disposable()
                        state["armed"] = False
                    return
                if not state["armed"]:
                    state["armed"] = True
                    due = state["last"] + timedelta(seconds=gap)
                    timer.disposable = sched.schedule_absolute(due, timer_action[0])

            def on_timer(_s: abc.SchedulerBase, _st: Any = None) -> None:
                with lock:
                    state["armed"] = False
                    if state["done"]:
                        return
                    if stage.gap_seconds() is None:
                        return
                    if sched.now - state["last"] < timedelta(seconds=stage.gap_seconds() or 0):
                        arm()  # input arrived meanwhile: wait for the rest of the gap
                        return
                    try:
                        emit(stage.on_gap())
                    except Exception as exc:
                        fail(exc)

            timer_action = [on_timer]  # emptied by finish()

            def on_next(item: Any) -> None:
                with lock:
                    if state["done"]:
                        return
                    state["item"] = item
                    try:
                        out = stage.push(item)
                    except Exception as exc:
                        fail(exc, item)
                        return
                    for o in out:
                        observer.on_next(o)
                    if state["armed"] or stage.gap_seconds() is not None:
                        state["last"] = sched.now  # the clock is read only when a timer runs
                        arm()

            def on_error(exc: Exception) -> None:
                with lock:
                    if state["done"]:
                        return
                    finish()
                    try:
                        emit(stage.close("error"))
                    except Exception:  # the original error matters more
                        pass
                    observer.on_error(exc)

            def on_completed() -> None:
                with lock:
                    if state["done"]:
                        return
                    finish()
                    try:
                        out = list(stage.close("end_of_stream"))
                    except Exception as exc:
                        observer.on_error(wrap_error(name, exc))
                        return
                    emit(out)
                    observer.on_completed()

            def on_settings(value: Mapping[str, Any]) -> None:
                with lock:
                    if state["done"]:
                        return
                    try:
                        if not isinstance(value, Mapping):
                            raise ConfigError(
                                f"{name}: settings must be a mapping of option names to values, "
                                f"got {type(value).__name__}"
                            )
                        stage.apply(value)
                    except Exception as exc:
                        msg = str(exc)
                        if not isinstance(exc, ConfigError):
                            msg = f"{name}: {type(exc).__name__}: {msg}"
                        snapshot = dict(value) if isinstance(value, Mapping) else {}
                        at = sample_index_of(state["item"])
                        observer.on_next(SettingsRejected(name, snapshot, msg, at))

            def on_settings_error(exc: Exception) -> None:
                with lock:
                    if not state["done"]:
                        observer.on_next(
                            SettingsRejected(name, {}, f"{name}: settings stream failed: {exc}")
                        )

            subs = CompositeDisposable()
            if settings is not None:
                subs.add(
                    settings.subscribe(on_settings, on_settings_error, scheduler=sub_scheduler)
                )
            subs.add(source.subscribe(on_next, on_error, on_completed, scheduler=sub_scheduler))

            def dispose() -> None:
                with lock:
                    finish()

            subs.add(Disposable(dispose))
            return subs

        return Observable(subscribe)

    def open_step() -> Step:
        stage = make_stage()
        return Step(
            stage.push,
            lambda: stage.close("end_of_stream"),
            abort=lambda: stage.close("error"),
            gap_seconds=stage.gap_seconds,
            on_gap=stage.on_gap,
            apply=stage.apply,
        )

    return Element(
        name,
        _operator,
        accepts=accepts,
        produces=produces,
        fusable=Fusable(name, open_step, settings, scheduler),
    )


def updated(current: Any, changes: Mapping[str, Any], op: str) -> dict[str, Any]:
    """Merge ``changes`` into a settings dataclass's fields, refusing unknown names."""
    from dataclasses import asdict

    base = asdict(current)
    unknown = sorted(set(changes) - set(base))
    if unknown:
        raise ConfigError(
            f"{op}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(base))}"
        )
    base.update(changes)
    return base
