"""Caps in the GStreamer sense: which frame classes a stream carries, and for audio its format.

``Caps(sample_rate=16000, channels=1, frame_size=512)`` is mono 16 kHz audio in 512-sample
frames; ``Caps(frame=VadFrame)`` a stream of VAD frames; ``Caps(frame=(VadFrame, SpeechStart,
SpeechEnd))`` a stream that mixes them. ``None`` in a format field means "any". Typed by the
frame classes themselves (not by names), so a link is checked with ``issubclass``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..frames import AudioFrame

FORMAT_FIELDS = ("sample_rate", "channels", "frame_size")


def _types(frame: Any) -> tuple[type, ...]:
    if isinstance(frame, type):
        return (frame,)
    if isinstance(frame, tuple) and frame and all(isinstance(t, type) for t in frame):
        return frame
    raise ConfigError(f"Caps: frame must be a frame class or a tuple of them, got {frame!r}")


def type_name(t: type) -> str:
    """A frame class's short name in caps strings (``AudioFrame`` -> ``audio``)."""
    name = t.__name__
    return (name[:-5] if name.endswith("Frame") else name).lower() or name


@dataclass(frozen=True, slots=True)
class Caps:
    """What a stream carries: frame classes and, for audio, rate, channels and frame size.

    Parameters
    ----------
    sample_rate
        Samples per second (audio only).
    channels
        Channel count (audio only).
    frame_size
        Samples per frame (frames of exactly this size, except a possibly shorter last one).
    frame
        The frame class (or a tuple of classes) the stream carries; :class:`AudioFrame` by
        default.
    """

    sample_rate: int | None = None
    channels: int | None = None
    frame_size: int | None = None
    frame: type | tuple[type, ...] = field(default=AudioFrame)

    def __post_init__(self) -> None:
        for name in FORMAT_FIELDS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ConfigError(f"Caps: {name} must be a positive int or None, got {v!r}")
        types = _types(self.frame)
        object.__setattr__(self, "frame", types[0] if len(types) == 1 else types)
        if not self.is_audio and any(getattr(self, n) is not None for n in FORMAT_FIELDS):
            raise ConfigError(f"Caps: only audio caps have a rate, channels or frame size ({self})")

    @property
    def types(self) -> tuple[type, ...]:
        """The frame classes, as a tuple."""
        return _types(self.frame)

    @property
    def is_audio(self) -> bool:
        """Whether the stream carries only :class:`AudioFrame`."""
        return self.types == (AudioFrame,)

    @property
    def kind(self) -> str:
        """Short name(s) of the frame classes (``audio``, ``vad``, ``vad|speechstart``...)."""
        return "|".join(type_name(t) for t in self.types)

    def accepts(self, frame: Any) -> bool:
        """Whether one ``frame`` already satisfies these caps."""
        if not isinstance(frame, self.types):
            return False
        if not isinstance(frame, AudioFrame):
            return True
        return (
            (self.sample_rate is None or frame.sample_rate == self.sample_rate)
            and (self.channels is None or frame.channels == self.channels)
            and (self.frame_size is None or frame.n == self.frame_size)
        )

    def can_take(self, upstream: Caps) -> bool:
        """Whether every frame class of ``upstream`` is one of ours (format aside)."""
        return all(issubclass(t, self.types) for t in upstream.types)

    def intersect(self, other: Caps) -> Caps:
        """Caps satisfying both, or :class:`ConfigError` when they conflict."""
        if self.types != other.types:
            raise ConfigError(f"caps conflict on frame: {self.kind} vs {other.kind}")
        out: dict[str, int | None] = {}
        for name in FORMAT_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if a is not None and b is not None and a != b:
                raise ConfigError(f"caps conflict on {name}: {a} vs {b}")
            out[name] = a if a is not None else b
        return Caps(**out, frame=self.frame)

    def then(self, produced: Caps) -> Caps:
        """Caps of a stream with these caps after an element that produces ``produced``:
        fields the element fixes replace ours; other frame classes start from scratch."""
        if produced.types != self.types:
            return produced
        return Caps(
            produced.sample_rate if produced.sample_rate is not None else self.sample_rate,
            produced.channels if produced.channels is not None else self.channels,
            produced.frame_size if produced.frame_size is not None else self.frame_size,
            frame=self.frame,
        )

    def implies(self, required: Caps) -> bool:
        """Whether every stream with these caps satisfies ``required``."""
        return required.can_take(self) and all(
            getattr(required, n) is None or getattr(required, n) == getattr(self, n)
            for n in FORMAT_FIELDS
        )

    def __str__(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("rate", self.sample_rate),
                ("channels", self.channels),
                ("frame", self.frame_size),
            )
            if v is not None
        ]
        base = "audio/x-raw" if self.is_audio else f"rxaudio/{self.kind}"
        return base + "," + ",".join(parts) if parts else base
