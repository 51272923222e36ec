"""Sinks: pipeable writers that emit a receipt when their output is final."""

from ._features import to_features
from ._jsonl import JsonlLog, to_json, to_jsonl
from ._labels import to_labels
from ._redis import RedisEntry, RedisWriter, to_redis
from ._serialize import to_record
from ._subtitles import to_subtitles
from ._utterances import UtteranceWriter, to_utterances
from ._wav import to_wav

__all__ = [
    "JsonlLog",
    "RedisEntry",
    "RedisWriter",
    "UtteranceWriter",
    "to_features",
    "to_json",
    "to_jsonl",
    "to_labels",
    "to_record",
    "to_redis",
    "to_subtitles",
    "to_utterances",
    "to_wav",
]
