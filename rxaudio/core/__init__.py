"""The bottom layer: caps typed by frame class, the element, the one stage protocol, validators.

:func:`fuse` runs adjacent stage-based elements as one operator (same items, fewer hops).

Imports only :mod:`rxaudio.frames` and :mod:`rxaudio.errors` (an ``import-linter`` contract in
``pyproject.toml`` holds every layer to that order). Sources, operators and sinks sit on it;
:mod:`rxaudio.pipeline` (registry, negotiation, launch strings) above them.
"""

from .caps import Caps
from .element import Element, Operator, Stage, map_operator, stage_operator, wrap_error
from .fuse import Fused, fuse

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
