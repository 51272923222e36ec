"""Sources: Observables of :class:`~rxaudio.frames.AudioFrame`.

Every source opens its resource on subscribe and releases it on dispose or completion.
"""

from ._array import from_array
from ._file import FileSource, from_file
from ._microphone import CaptureStats, MicrophoneSource, from_microphone, list_input_devices
from ._redis import RedisSource, StreamEntry, StreamReader, from_redis

__all__ = [
    "CaptureStats",
    "FileSource",
    "MicrophoneSource",
    "RedisSource",
    "StreamEntry",
    "StreamReader",
    "from_array",
    "from_file",
    "from_microphone",
    "from_redis",
    "list_input_devices",
]
