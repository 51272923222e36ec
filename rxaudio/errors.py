"""One exception hierarchy for the whole library.

Every error names the problem and the fix. Errors raised inside a running stream travel
downstream as ``on_error`` wrapped in :class:`StreamError`, which adds the operator and the
sample index where it happened.
"""

from __future__ import annotations


class RxAudioError(Exception):
    """Base class of every error raised by rxaudio."""


class ConfigError(RxAudioError, ValueError):
    """An operator, source or sink was given an invalid option (raised at construction)."""


class FormatError(RxAudioError, ValueError):
    """Audio or data in the wrong shape, dtype, rate or encoding."""


class DeviceError(RxAudioError):
    """An audio device is missing, busy, or does not support the requested settings."""


class SourceError(RxAudioError):
    """A source (file, socket, ...) could not be read."""


class SinkError(RxAudioError):
    """A sink could not write its output."""


class StreamError(RxAudioError):
    """An error that happened inside a running stream, with where it happened.

    Parameters
    ----------
    operator
        Name of the operator or sink that failed.
    message
        What went wrong and how to fix it.
    sample_index
        Sample index (at the stream's rate) of the frame being processed, if known.
    """

    def __init__(self, operator: str, message: str, sample_index: int | None = None) -> None:
        self.operator = operator
        self.message = message
        self.sample_index = sample_index
        where = f" at sample {sample_index}" if sample_index is not None else ""
        super().__init__(f"{operator}{where}: {message}")
