"""Elements, and the adapter every stateful operator uses: a per-subscription *stage*.

A stage is a plain object with ``push(item) -> list`` and ``flush() -> list``; it holds the
operator's state and no Rx. :func:`stage_operator` turns a stage factory into an element run by
the one stage executor (:mod:`rxaudio.core.runtime`): the factory is called inside
``subscribe`` (fresh state for every subscriber, re-subscribe and ``retry``), exceptions raised
by the stage become ``on_error`` with the operator's name and the sample index of the item
being processed, and ``flush`` runs once on completion. Live stages (settings, gap timers,
close reasons) are adapted the same way by :func:`~rxaudio.operators._live.live_operator`.

An element built from stages carries their description (:class:`Fusable`); applied to the
output of another such element it joins that one's run, so adjacent stages in ``pipe(...)``
run as one executor, item handed from stage to stage by plain calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from reactivex import Observable, abc

from .caps import Caps
from .runtime import (
    Fusable,
    PartialFailure,
    Step,
    run_stages,
    sample_index_of,
    stages_operator,
    step_of,
    wrap_error,
)

__all__ = [
    "Element",
    "Fusable",
    "Operator",
    "PartialFailure",
    "Stage",
    "Step",
    "map_operator",
    "sample_index_of",
    "stage_element",
    "stage_operator",
    "wrap_error",
]

A = TypeVar("A")
B = TypeVar("B")
A_contra = TypeVar("A_contra", contravariant=True)
B_co = TypeVar("B_co", covariant=True)

Operator = Callable[[Observable[A]], Observable[B]]


class Stage(Protocol[A_contra, B_co]):
    """Per-subscription state of an operator: no Rx, testable with plain calls.

    The smallest form of the one stage protocol (:func:`~rxaudio.core.runtime.step_of`); a
    stage may also be told why it ends (``close(reason)`` instead of ``flush``), take live
    settings and ask for a timeout (:class:`~rxaudio.operators._live.LiveStage`).
    """

    def push(self, item: A_contra) -> Iterable[B_co]:
        """Consume one input item, return the outputs it completes (possibly none)."""
        ...

    def flush(self) -> Iterable[B_co]:
        """The input completed: return whatever is still pending."""
        ...


class Element(Generic[A, B]):
    """An operator that knows its name and the caps it accepts and produces.

    Calling it on an Observable applies the operator, so an Element is used exactly like any
    RxPY operator (``source.pipe(element)``). An element made of stages (``stages``) runs
    them with the one executor; applied to the output of another such element, it extends
    that element's run instead of subscribing to it (the same items, by plain calls).
    ``accepts``/``produces`` are :class:`~rxaudio.pipeline.Caps`;
    :func:`~rxaudio.pipeline.negotiate` reads them to insert the conversions a chain needs.
    """

    __slots__ = ("_fn", "accepts", "fusable", "name", "produces", "stages")

    def __init__(
        self,
        name: str,
        fn: Callable[[Observable[A]], Observable[B]],
        *,
        accepts: Caps | None = None,
        produces: Caps | None = None,
        fusable: Fusable | None = None,
    ) -> None:
        self.name = name
        self._fn = fn
        self.accepts = accepts if accepts is not None else Caps()
        self.produces = produces if produces is not None else Caps()
        self.fusable = fusable  # set when the element is a stage run by the executor
        # the stages it runs: applied to a run of stages, it joins that run
        self.stages: tuple[Fusable, ...] = () if fusable is None else (fusable,)

    def __call__(self, source: Observable[A]) -> Observable[B]:
        if self.stages:
            return run_stages(source, self.stages)
        return self._fn(source)

    def __repr__(self) -> str:
        return f"<{self.name}: {self.accepts} -> {self.produces}>"


def stage_operator(
    name: str,
    make_stage: Callable[[], Stage[A, B]],
    *,
    accepts: Caps | None = None,
    produces: Caps | None = None,
) -> Element[A, B]:
    """Build an Rx operator from a stage factory (called once per subscription)."""
    return stage_element(name, make_stage, accepts=accepts, produces=produces)


def stage_element(
    name: str,
    make_stage: Callable[[], Any],
    *,
    accepts: Caps | None = None,
    produces: Caps | None = None,
    settings: Observable[Mapping[str, Any]] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Element[Any, Any]:
    """An element running a stage of the one protocol (:func:`~rxaudio.core.runtime.step_of`).

    ``make_stage`` is called once per subscription; ``settings`` feeds the stage's ``apply``
    while the stream runs and ``scheduler`` runs its gap timer (default: the subscription's).
    """

    def open_step() -> Step:
        return step_of(make_stage())

    spec = Fusable(name, open_step, settings, scheduler)
    return Element(name, stages_operator((spec,)), accepts=accepts, produces=produces, fusable=spec)


def map_operator(
    name: str,
    fn: Callable[[A], B],
    *,
    accepts: Caps | None = None,
    produces: Caps | None = None,
) -> Element[A, B]:
    """A stateless one-in-one-out operator; exceptions become ``on_error`` with context."""

    def push(item: A) -> tuple[B]:
        return (fn(item),)

    step = Step(push, tuple, map=fn)  # no state: every subscription shares it
    spec = Fusable(name, lambda: step)
    return Element(name, stages_operator((spec,)), accepts=accepts, produces=produces, fusable=spec)
