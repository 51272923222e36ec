"""rxaudio: real-time audio dataflow on RxPY.

The microphone becomes an Observable of :class:`~rxaudio.frames.AudioFrame`; operators in
:mod:`rxaudio.operators` transform it; sinks in :mod:`rxaudio.sinks` write it out.

Heavy dependencies (torch, onnxruntime, librosa) are imported only by the parts that need them.
"""

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

__version__ = "0.1.0"

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
