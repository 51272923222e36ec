"""The bottom layer: caps typed by frame class, the element, the one stage protocol, validators.

Every stage-based element is run by the one stage executor (:mod:`rxaudio.core.runtime`);
adjacent ones in ``pipe(...)`` join one run, and :func:`fuse` makes that grouping explicit.

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
