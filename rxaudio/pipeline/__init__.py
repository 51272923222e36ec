"""Caps (what a stream carries), conversion to caps, and the launch-string machinery.

The names are imported on first use (:mod:`rxaudio._lazy`), so ``rxaudio.pipeline.registry``
can be imported without the launch parser and every element.
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "Caps": ".caps",
    "conform": ".caps",
    "link": ".caps",
    "negotiate": ".caps",
    "LaunchError": ".launch",
    "Pipeline": ".launch",
    "parse_launch": ".launch",
}

if TYPE_CHECKING:
    from .caps import Caps, conform, link, negotiate
    from .launch import LaunchError, Pipeline, parse_launch

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = ["Caps", "LaunchError", "Pipeline", "conform", "link", "negotiate", "parse_launch"]
