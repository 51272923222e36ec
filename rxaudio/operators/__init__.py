"""Operators: each a factory that validates its options and returns an Rx operator.

Use them with ``observable.pipe(...)``. Later layers (VAD, features) add theirs here.
"""

from ..core.element import Element, Operator, map_operator, stage_operator
from ._buffer_utterance import buffer_utterance
from ._channels import channels, to_mono
from ._conform import conform
from ._gain import gain
from ._hysteresis import hysteresis
from ._level import level
from ._mfcc import mfcc
from ._reframe import reframe
from ._resample import resample
from ._spectral import spectral
from ._spectrogram import spectrogram
from ._transcribe import transcribe
from ._vad import ScoredVad, ScoredWindow, vad

__all__ = [
    "Element",
    "Operator",
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
    "reframe",
    "resample",
    "spectral",
    "spectrogram",
    "stage_operator",
    "to_mono",
    "transcribe",
    "vad",
]
