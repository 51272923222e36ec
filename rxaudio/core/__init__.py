"""The bottom layer: caps typed by frame class, the element, the one stage protocol, validators.

Imports only :mod:`rxaudio.frames` and :mod:`rxaudio.errors` (an ``import-linter`` contract in
``pyproject.toml`` holds every layer to that order). Sources, operators and sinks sit on it;
:mod:`rxaudio.pipeline` (registry, negotiation, launch strings) above them.
"""

from .caps import Caps
from .element import Element, Operator, Stage, map_operator, stage_operator, wrap_error

__all__ = ["Caps", "Element", "Operator", "Stage", "map_operator", "stage_operator", "wrap_error"]
