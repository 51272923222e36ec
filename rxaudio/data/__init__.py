"""Bundled data: a short speech sample (CC0, synthesised with espeak-ng; see speech_16k.json)."""

from __future__ import annotations

import json
import os
from typing import Any

_DIR = os.path.dirname(__file__)


def speech_sample() -> str:
    """Path of the bundled 17 s, 16 kHz mono speech sample (three sentences with pauses)."""
    return os.path.join(_DIR, "speech_16k.wav")


def speech_segments() -> list[dict[str, Any]]:
    """The sample's true speech segments: ``start``/``end`` in seconds, ``text``, ``voice``."""
    with open(os.path.join(_DIR, "speech_16k.json"), encoding="utf-8") as f:
        segments: list[dict[str, Any]] = json.load(f)["segments"]
    return segments
