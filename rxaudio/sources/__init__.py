"""Sources: Observables of :class:`~rxaudio.frames.AudioFrame`.

Every source opens its resource on subscribe and releases it on dispose or completion. Each
name is imported from its module on first use (:mod:`rxaudio._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "from_array": "._array",
    "FileSource": "._file",
    "from_file": "._file",
    "CaptureStats": "._microphone",
    "MicrophoneSource": "._microphone",
    "from_microphone": "._microphone",
    "list_input_devices": "._microphone",
    "RedisSource": "._redis",
    "StreamEntry": "._redis",
    "StreamReader": "._redis",
    "from_redis": "._redis",
    "TestSource": "._testsrc",
    "testsrc": "._testsrc",
}

if TYPE_CHECKING:
    from ._array import from_array
    from ._file import FileSource, from_file
    from ._microphone import CaptureStats, MicrophoneSource, from_microphone, list_input_devices
    from ._redis import RedisSource, StreamEntry, StreamReader, from_redis
    from ._testsrc import TestSource, testsrc

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = [
    "CaptureStats",
    "FileSource",
    "MicrophoneSource",
    "RedisSource",
    "StreamEntry",
    "StreamReader",
    "TestSource",
    "from_array",
    "from_file",
    "from_microphone",
    "from_redis",
    "list_input_devices",
    "testsrc",
]
