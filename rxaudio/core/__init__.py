"""The bottom layer: caps typed by frame class, the element, the one stage protocol, validators.

Every stage-based element is run by the one stage executor (:mod:`rxaudio.core.runtime`);
adjacent ones in ``pipe(...)`` join one run, and :func:`fuse` makes that grouping explicit.

Imports only :mod:`rxaudio.frames` and :mod:`rxaudio.errors` (an ``import-linter`` contract in
``pyproject.toml`` holds every layer to that order). Sources, operators and sinks sit on it;
:mod:`rxaudio.pipeline` (registry, negotiation, launch strings) above them. The names below are
imported on first use (:mod:`rxaudio._lazy`): :mod:`.props`, which the command line's flags read,
needs neither numpy nor Rx.
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "Caps": ".caps",
    "Element": ".element",
    "Operator": ".element",
    "Stage": ".element",
    "map_operator": ".element",
    "stage_operator": ".element",
    "wrap_error": ".element",
    "Fused": ".fuse",
    "fuse": ".fuse",
}

if TYPE_CHECKING:
    from .caps import Caps
    from .element import Element, Operator, Stage, map_operator, stage_operator, wrap_error
    from .fuse import Fused, fuse

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = [
    "Caps",
    "Element",
    "Fused",
    "Operator",
    "Stage",
    "fuse",
    "map_operator",
    "stage_operator",
    "wrap_error",
]
