"""Sinks: pipeable writers that emit a receipt when their output is final.

Each name is imported from its module on first use (:mod:`rxaudio._lazy`): the feature sink's
Parquet writer or the Redis client is imported only by a command that uses it.
"""

from typing import TYPE_CHECKING

from .._lazy import attributes

_NAMES = {
    "to_features": "._features",
    "JsonlLog": "._jsonl",
    "to_json": "._jsonl",
    "to_jsonl": "._jsonl",
    "to_labels": "._labels",
    "to_null": "._null",
    "EntryQueue": "._redis",
    "RedisEntry": "._redis",
    "WriteFailed": "._redis",
    "to_redis": "._redis",
    "to_record": "._serialize",
    "to_subtitles": "._subtitles",
    "UtteranceWriter": "._utterances",
    "to_utterances": "._utterances",
    "to_wav": "._wav",
}

if TYPE_CHECKING:
    from ._features import to_features
    from ._jsonl import JsonlLog, to_json, to_jsonl
    from ._labels import to_labels
    from ._null import to_null
    from ._redis import EntryQueue, RedisEntry, WriteFailed, to_redis
    from ._serialize import to_record
    from ._subtitles import to_subtitles
    from ._utterances import UtteranceWriter, to_utterances
    from ._wav import to_wav

__getattr__, __dir__ = attributes(__name__, _NAMES)

__all__ = [
    "EntryQueue",
    "JsonlLog",
    "RedisEntry",
    "UtteranceWriter",
    "WriteFailed",
    "to_features",
    "to_json",
    "to_jsonl",
    "to_labels",
    "to_null",
    "to_record",
    "to_redis",
    "to_subtitles",
    "to_utterances",
    "to_wav",
]
