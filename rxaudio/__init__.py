"""rxaudio: real-time audio dataflow on RxPY.

The microphone becomes an Observable of :class:`~rxaudio.frames.AudioFrame`; operators in
:mod:`rxaudio.operators` transform it; sinks in :mod:`rxaudio.sinks` write it out.

Submodules and the names below are imported on first use, so ``import rxaudio`` (and the
``rxaudio`` command's start-up) stays cheap; heavy dependencies (torch, onnxruntime, librosa)
are imported only by the parts that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_NAMES = {
    "AudioFrame": "frames",
    "FileReceipt": "frames",
    "LevelFrame": "frames",
    "ConfigError": "errors",
    "DeviceError": "errors",
    "FormatError": "errors",
    "RxAudioError": "errors",
    "SinkError": "errors",
    "SourceError": "errors",
    "StreamError": "errors",
}
_SUBMODULES = ("operators", "sinks", "sources", "pipeline", "testing", "data", "frames", "errors")

__all__ = [
    "AudioFrame",
    "ConfigError",
    "DeviceError",
    "FileReceipt",
    "FormatError",
    "LevelFrame",
    "RxAudioError",
    "SinkError",
    "SourceError",
    "StreamError",
    "__version__",
    "operators",
    "sinks",
    "sources",
]

if TYPE_CHECKING:
    from . import operators, sinks, sources
    from .errors import (
        ConfigError,
        DeviceError,
        FormatError,
        RxAudioError,
        SinkError,
        SourceError,
        StreamError,
    )
    from .frames import AudioFrame, FileReceipt, LevelFrame


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'rxaudio' has no attribute {name!r}")
    globals()[name] = value
    return value
