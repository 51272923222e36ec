"""Run consecutive stage-based elements as one: :func:`fuse` and :class:`Fused`.

Every element built from stages (:func:`~rxaudio.core.element.stage_operator`,
``map_operator``, the live operators, ``vad``) is run by the one executor of
:mod:`rxaudio.core.runtime`, and an element applied to another's output joins its run, so
``source.pipe(vad, hysteresis, buffer_utterance)`` already runs one executor over three stages.
:func:`fuse` makes the grouping explicit, for code that wants to see or count it (launch
strings' depth, the apps' chains): each run of adjacent stage-based elements becomes one
:class:`Fused` element. The outputs are those of the separate elements, item for item and in
order, and so are errors, completions, settings and gap timers (see the runtime's docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .element import Element, Operator
from .runtime import stages_operator, timer_scheduler

__all__ = ["Fused", "fuse", "stages_operator", "timer_scheduler"]


class Fused(Element[Any, Any]):
    """An element running several elements' stages in one subscription (:func:`fuse`)."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Element[Any, Any]]) -> None:
        if len(parts) < 2 or any(not p.stages for p in parts):
            raise ValueError("Fused: needs two or more elements that can be fused")
        specs = tuple(s for p in parts for s in p.stages)
        super().__init__(
            "+".join(p.name for p in parts),
            stages_operator(specs),
            accepts=parts[0].accepts,
            produces=parts[-1].produces,
        )
        self.stages = specs
        self.parts = tuple(parts)


def fuse(*operators: Operator[Any, Any]) -> list[Operator[Any, Any]]:
    """The same chain with each run of two or more adjacent fusable elements as one element.

    Elements that cannot be fused (any other operator) stay as they are, in place; an
    already :class:`Fused` element is opened up and fused with its neighbours.
    ``rx.compose(*fuse(a, b, c))`` gives what ``rx.compose(a, b, c)`` gives.
    """
    flat: list[Operator[Any, Any]] = []
    for op in operators:
        flat.extend(op.parts if isinstance(op, Fused) else (op,))
    out: list[Operator[Any, Any]] = []
    run: list[Element[Any, Any]] = []
    for op in flat:
        if isinstance(op, Element) and op.stages:
            run.append(op)
            continue
        out.extend([Fused(run)] if len(run) > 1 else run)
        out.append(op)
        run = []
    out.extend([Fused(run)] if len(run) > 1 else run)
    return out
