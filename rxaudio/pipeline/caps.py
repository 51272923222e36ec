"""Caps in the GStreamer sense: what kind of frames a stream carries and in what format.

An operator declares the caps it accepts (e.g. Silero: mono, 16 kHz, 512-sample frames) and
:func:`conform` converts any audio stream to them (channels, resample, reframe), so no operator
hand-rolls conversion. ``None`` in a field means "any".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, compose

from ..errors import ConfigError
from ..frames import AudioFrame


@dataclass(frozen=True, slots=True)
class Caps:
    """Format of an audio stream; ``None`` fields accept anything.

    Parameters
    ----------
    sample_rate
        Samples per second.
    channels
        Channel count.
    frame_size
        Samples per frame (frames of exactly this size, except a possibly shorter last one).
    """

    sample_rate: int | None = None
    channels: int | None = None
    frame_size: int | None = None
    kind: str = "audio"
    """Frame type: ``"audio"`` for :class:`AudioFrame`, otherwise the frame class's name in
    lower case (``"level"``, ``"vad"``, ``"feature"``, ...)."""

    def __post_init__(self) -> None:
        for name in ("sample_rate", "channels", "frame_size"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ConfigError(f"Caps: {name} must be a positive int or None, got {v!r}")

    def accepts(self, frame: AudioFrame) -> bool:
        """Whether ``frame`` already satisfies these caps."""
        return (
            self.kind == "audio"
            and (self.sample_rate is None or frame.sample_rate == self.sample_rate)
            and (self.channels is None or frame.channels == self.channels)
            and (self.frame_size is None or frame.n == self.frame_size)
        )

    def intersect(self, other: Caps) -> Caps:
        """Caps satisfying both, or :class:`ConfigError` when they conflict."""
        if self.kind != other.kind:
            raise ConfigError(f"caps conflict on kind: {self.kind} vs {other.kind}")
        out: dict[str, int | None] = {}
        for name in ("sample_rate", "channels", "frame_size"):
            a, b = getattr(self, name), getattr(other, name)
            if a is not None and b is not None and a != b:
                raise ConfigError(f"caps conflict on {name}: {a} vs {b}")
            out[name] = a if a is not None else b
        return Caps(**out, kind=self.kind)

    def then(self, produced: Caps) -> Caps:
        """Caps of a stream with these caps after an element that produces ``produced``:
        fields the element fixes replace ours; a new kind starts from scratch."""
        if produced.kind != self.kind:
            return produced
        return Caps(
            produced.sample_rate if produced.sample_rate is not None else self.sample_rate,
            produced.channels if produced.channels is not None else self.channels,
            produced.frame_size if produced.frame_size is not None else self.frame_size,
            kind=self.kind,
        )

    def implies(self, required: Caps) -> bool:
        """Whether every stream with these caps satisfies ``required``."""
        return self.kind == required.kind and all(
            getattr(required, n) is None or getattr(required, n) == getattr(self, n)
            for n in ("sample_rate", "channels", "frame_size")
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
        base = "audio/x-raw" if self.kind == "audio" else f"rxaudio/{self.kind}"
        return base + "," + ",".join(parts) if parts else base


def conform(caps: Caps) -> Callable[[Observable[AudioFrame]], Observable[AudioFrame]]:
    """Convert an audio stream to ``caps``: channels first (cheaper), then resample, then reframe.

    Each step passes frames through untouched when they already match, so conforming a stream
    that already has the caps costs one function call per frame and step.

    .. marble::
        -a(48k,2ch,480)--b(48k,2ch,480)--|
        [ conform(Caps(16000, 1, 512))   ]
        ---------------A(16k,1ch,512)----(B|)
    """
    from ..operators._channels import channels
    from ..operators._reframe import reframe
    from ..operators._resample import resample

    steps: list[Callable[[Observable[AudioFrame]], Observable[AudioFrame]]] = []
    if caps.channels is not None:
        steps.append(channels(caps.channels))
    if caps.sample_rate is not None:
        steps.append(resample(caps.sample_rate))
    if caps.frame_size is not None:
        steps.append(reframe(caps.frame_size))

    return compose(*steps)


def negotiate(
    *elements: Callable[[Observable[Any]], Observable[Any]],
) -> Callable[[Observable[Any]], Observable[Any]]:
    """Compose elements, inserting :func:`conform` wherever an element's declared input caps
    (its ``accepts`` attribute, see :class:`~rxaudio.operators.Element`) are not guaranteed by
    what the elements before it produce. The source's caps are unknown, so the first element
    that constrains its audio input always gets a conversion (a pass-through when it matches).

    Example: ``negotiate(level())`` needs nothing; ``negotiate(reframe(512), resample(8000))``
    keeps both as written; an element declaring ``Caps(16000, 1, 512)`` gets
    ``conform(Caps(16000, 1, 512))`` in front of it unless its predecessors guarantee that.

    Raises
    ------
    ConfigError
        An element needs audio but the one before it produces another kind of frame.
    """
    steps: list[Callable[[Observable[Any]], Observable[Any]]] = []
    current = Caps()
    for el in elements:
        accepts: Caps = getattr(el, "accepts", Caps())
        produces: Caps = getattr(el, "produces", Caps())
        if accepts.kind != current.kind:
            raise ConfigError(
                f"{getattr(el, 'name', el)!s} accepts {accepts.kind} frames but receives "
                f"{current.kind} frames ({current})"
            )
        if accepts.kind == "audio" and not current.implies(accepts):
            steps.append(conform(accepts))
            current = current.then(accepts)
        steps.append(el)
        current = current.then(produces)

    return compose(*steps)
