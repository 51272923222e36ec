"""Caps (what a stream carries), conversion to caps, and the launch-string machinery."""

from .caps import Caps, conform, negotiate

__all__ = ["Caps", "conform", "negotiate"]
