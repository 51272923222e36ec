"""The adapter of stages that take live settings and may need a gap timer.

Like :func:`~rxaudio.core.element.stage_operator`, but the stage can also

* receive settings from an Observable while the stream runs (``apply(settings)``): a bad setting
  is refused with a :class:`~rxaudio.frames.SettingsRejected` item downstream and the previous
  settings stay;
* ask for a timeout (``gap_seconds()`` returning seconds or ``None``): when no item arrived for
  that long on the scheduler, ``on_gap()`` runs and its outputs are emitted;
* close with a reason: ``close("end_of_stream")`` at completion, ``close("error")`` on an
  upstream error, before the error is forwarded.

These are parts of the one stage protocol (:func:`~rxaudio.core.runtime.step_of`): the stage
becomes a :class:`~rxaudio.core.element.Step` run by the one stage executor
(:mod:`rxaudio.core.runtime`), alone or with its neighbours; settings and timers may fire on
other threads, so a run with either serialises them with its items under one lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.element import Element, stage_element
from ..errors import ConfigError


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
    """Build the element (one stage per subscription, run by the stage executor)."""
    return stage_element(
        name, make_stage, accepts=accepts, produces=produces, settings=settings, scheduler=scheduler
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
