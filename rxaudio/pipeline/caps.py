"""Caps and negotiation: re-exports :class:`~rxaudio.core.Caps` and ``conform``, and
:func:`negotiate`, which composes elements inserting the conversions their caps need.

(:class:`Caps` lives in the bottom layer, :mod:`rxaudio.core.caps`; ``conform`` is an operator,
:mod:`rxaudio.operators`; both are named here too for existing imports.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, compose

from ..core.caps import Caps
from ..errors import ConfigError
from ..operators._conform import conform

__all__ = ["Caps", "conform", "negotiate"]


def negotiate(
    *elements: Callable[[Observable[Any]], Observable[Any]],
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Compose elements, inserting :func:`conform` wherever an element's declared input caps
    (its ``accepts`` attribute, see :class:`~rxaudio.operators.Element`) are not guaranteed by
    what the elements before it produce. The source's caps are unknown, so the first element
    that constrains its audio input always gets a conversion (a pass-through when it matches).

    Example: ``negotiate(level())`` needs nothing; ``negotiate(reframe(512), resample(8000))``
    keeps both as written; an element declaring ``Caps(16000, 1, 512)`` gets
    ``conform(Caps(16000, 1, 512))`` in front of it unless its predecessors guarantee that.

    Raises
    ------
    ConfigError
        An element needs audio but the one before it produces another kind of frame.
    """
    steps: list[Callable[[Observable[Any]], Observable[Any]]] = []
    current = Caps()
    for el in elements:
        accepts: Caps = getattr(el, "accepts", Caps())
        produces: Caps = getattr(el, "produces", Caps())
        if not accepts.can_take(current):
            raise ConfigError(
                f"{getattr(el, 'name', el)!s} accepts {accepts.kind} frames but receives "
                f"{current.kind} frames ({current})"
            )
        if accepts.is_audio and not current.implies(accepts):
            steps.append(conform(accepts))
            current = current.then(accepts)
        steps.append(el)
        current = current.then(produces)

    return compose(*steps)
