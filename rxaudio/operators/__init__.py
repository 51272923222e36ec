"""Operators: each a factory that validates its options and returns an Rx operator.

Use them with ``observable.pipe(...)``. Later layers (VAD, features) add theirs here. Each name
is imported from its module on first use (:mod:`rxaudio._lazy`), so a command that needs one
operator's options does not import every operator's dependencies.
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "Element": "..core.element",
    "Operator": "..core.element",
    "map_operator": "..core.element",
    "stage_operator": "..core.element",
    "buffer_utterance": "._buffer_utterance",
    "channels": "._channels",
    "to_mono": "._channels",
    "conform": "._conform",
    "gain": "._gain",
    "hysteresis": "._hysteresis",
    "level": "._level",
    "mfcc": "._mfcc",
    "Queue": "._queue",
    "QueueStats": "._queue",
    "queue": "._queue",
    "reframe": "._reframe",
    "resample": "._resample",
    "spectral": "._spectral",
    "spectrogram": "._spectrogram",
    "transcribe": "._transcribe",
    "vad": "._vad",
    "ScoredVad": "._vad",
    "ScoredWindow": "._vad",
}

if TYPE_CHECKING:
    from ..core.element import Element, Operator, map_operator, stage_operator
    from ._buffer_utterance import buffer_utterance
    from ._channels import channels, to_mono
    from ._conform import conform
    from ._gain import gain
    from ._hysteresis import hysteresis
    from ._level import level
    from ._mfcc import mfcc
    from ._queue import Queue, QueueStats, queue
    from ._reframe import reframe
    from ._resample import resample
    from ._spectral import spectral
    from ._spectrogram import spectrogram
    from ._transcribe import transcribe
    from ._vad import ScoredVad, ScoredWindow, vad

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = [
    "Element",
    "Operator",
    "Queue",
    "QueueStats",
    "ScoredVad",
    "ScoredWindow",
    "buffer_utterance",
    "channels",
    "conform",
    "gain",
    "hysteresis",
    "level",
    "map_operator",
    "mfcc",
    "queue",
    "reframe",
    "resample",
    "spectral",
    "spectrogram",
    "stage_operator",
    "to_mono",
    "transcribe",
    "vad",
]
