"""Caps (what a stream carries), conversion to caps, and the launch-string machinery."""

from .caps import Caps, conform, link, negotiate
from .launch import LaunchError, Pipeline, parse_launch

__all__ = ["Caps", "LaunchError", "Pipeline", "conform", "link", "negotiate", "parse_launch"]
