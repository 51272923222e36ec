"""The one adapter every stateful operator uses: a per-subscription *stage*.

A stage is a plain object with ``push(item) -> list`` and ``flush() -> list``; it holds the
operator's state and no Rx. :func:`stage_operator` turns a stage factory into an Rx operator:
the factory is called inside ``subscribe`` (fresh state for every subscriber, re-subscribe and
``retry``), exceptions raised by the stage become ``on_error`` with the operator's name and the
sample index of the item being processed, and ``flush`` runs once on completion.

Elements built from stages also carry their stages' description (:class:`Fusable`), so that
:func:`~rxaudio.core.fuse.fuse` can run several consecutive ones as a single Rx operator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from reactivex import Observable, abc

from ..errors import StreamError
from .caps import Caps

A = TypeVar("A")
B = TypeVar("B")
A_contra = TypeVar("A_contra", contravariant=True)
B_co = TypeVar("B_co", covariant=True)

Operator = Callable[[Observable[A]], Observable[B]]


class Stage(Protocol[A_contra, B_co]):
    """Per-subscription state of an operator: no Rx, testable with plain calls."""

    def push(self, item: A_contra) -> Iterable[B_co]:
        """Consume one input item, return the outputs it completes (possibly none)."""
        ...

    def flush(self) -> Iterable[B_co]:
        """The input completed: return whatever is still pending."""
        ...


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
    """One subscription's stage as plain calls: what a fused operator runs for an element.

    ``push`` and ``end`` (completion) return the outputs; an exception they raise becomes
    ``on_error`` with the element's name and the item's sample index (:func:`wrap_error`; a
    :class:`~rxaudio.errors.StreamError` passes unchanged, :class:`PartialFailure` emits its
    outputs first). ``abort`` runs on an upstream error and returns what to emit before it
    (its exceptions are ignored: the original error matters more); ``dispose`` frees
    resources. ``gap_seconds``/``on_gap`` and ``apply`` are the live stages' gap timer and
    settings (:func:`~rxaudio.operators._live.live_operator`).
    """

    push: Callable[[Any], Iterable[Any]]
    end: Callable[[], Iterable[Any]]
    abort: Callable[[], Iterable[Any]] | None = None
    dispose: Callable[[], None] | None = None
    gap_seconds: Callable[[], float | None] | None = None
    on_gap: Callable[[], Iterable[Any]] | None = None
    apply: Callable[[Mapping[str, Any]], None] | None = None


@dataclass(frozen=True, slots=True)
class Fusable:
    """How to run an element inside a fused operator: its name and a :class:`Step` factory.

    ``open`` is called once per subscription (fresh state, as the element's own subscribe
    does); ``settings`` is the live settings Observable, ``scheduler`` the gap timers' own.
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


class Element(Generic[A, B]):
    """An operator that knows its name and the caps it accepts and produces.

    Calling it on an Observable applies the operator, so an Element is used exactly like any
    RxPY operator (``source.pipe(element)``). ``accepts``/``produces`` are
    :class:`~rxaudio.pipeline.Caps`; :func:`~rxaudio.pipeline.negotiate` reads them to insert
    the conversions a chain needs.
    """

    __slots__ = ("_fn", "accepts", "fusable", "name", "produces")

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
        self.fusable = fusable  # set when the element can run inside a fused operator

    def __call__(self, source: Observable[A]) -> Observable[B]:
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

    def _operator(source: Observable[A]) -> Observable[B]:
        def subscribe(
            observer: abc.ObserverBase[B], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            stage = make_stage()

            def on_next(item: A) -> None:
                try:
                    out = stage.push(item)
                except Exception as exc:  # an operator's failure travels downstream
                    observer.on_error(wrap_error(name, exc, item))
                    return
                for o in out:
                    observer.on_next(o)

            def on_completed() -> None:
                try:
                    out = stage.flush()
                except Exception as exc:
                    observer.on_error(wrap_error(name, exc))
                    return
                for o in out:
                    observer.on_next(o)
                observer.on_completed()

            return source.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    def open_step() -> Step:
        stage = make_stage()
        return Step(stage.push, stage.flush)

    return Element(
        name, _operator, accepts=accepts, produces=produces, fusable=Fusable(name, open_step)
    )


def map_operator(
    name: str,
    fn: Callable[[A], B],
    *,
    accepts: Caps | None = None,
    produces: Caps | None = None,
) -> Element[A, B]:
    """A stateless one-in-one-out operator; exceptions become ``on_error`` with context."""

    def _operator(source: Observable[A]) -> Observable[B]:
        def subscribe(
            observer: abc.ObserverBase[B], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(item: A) -> None:
                try:
                    out = fn(item)
                except Exception as exc:
                    observer.on_error(wrap_error(name, exc, item))
                    return
                observer.on_next(out)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    def open_step() -> Step:
        return Step(lambda item: (fn(item),), tuple)

    return Element(
        name, _operator, accepts=accepts, produces=produces, fusable=Fusable(name, open_step)
    )
