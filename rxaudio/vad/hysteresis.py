"""Speech start/end decisions from per-window probabilities (no Rx).

The state machine is Silero's ``get_speech_timestamps_from_probs`` (without its max-length
cutting, which :mod:`rxaudio.vad.utterance` does), made streaming: a segment is announced as soon
as it is certain to outlast ``min_speech_ms``, with its true onset, so the announced segments are
exactly the ones the offline function returns (before padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..core.props import Range, Unit, props_of
from ..errors import ConfigError

# Each option's type, range and unit, stated once: the settings below, the ``hysteresis``
# operator's signature (and from it ``inspect``, the apps' flags and the server's tunables).
Threshold = Annotated[float, Range(0.0, 1.0, lo_open=True)]
NegThreshold = Annotated[float | None, Range(0.0, 1.0)]
SegmentMs = Annotated[float, Range(0.0, 60_000.0), Unit("ms")]
GapMs = Annotated[float | None, Range(0.0, 600_000.0, lo_open=True), Unit("ms")]
# ``neg_threshold`` none: ``max(threshold - NEG_OFFSET, NEG_FLOOR)``, as Silero
NEG_OFFSET = 0.15
NEG_FLOOR = 0.01


@dataclass
class HysteresisSettings:
    """Thresholds and durations: the one source of their defaults; :meth:`checked` validates.

    The ``hysteresis`` operator's options default to these fields and carry their ranges.
    """

    threshold: Threshold = 0.5
    neg_threshold: NegThreshold = None
    min_speech_ms: SegmentMs = 250.0
    min_silence_ms: SegmentMs = 100.0
    max_gap_ms: GapMs = 2000.0

    @property
    def neg(self) -> float:
        """Exit threshold (default ``max(threshold - 0.15, 0.01)``, as Silero)."""
        if self.neg_threshold is None:
            return max(self.threshold - NEG_OFFSET, NEG_FLOOR)
        return self.neg_threshold

    def checked(self) -> HysteresisSettings:
        """Return self after validating every field (raises :class:`ConfigError`)."""
        for p in _PROPS:
            p.check("hysteresis", getattr(self, p.name))
        n, t = self.neg_threshold, self.threshold
        if n is not None and n > t:
            raise ConfigError(
                f"hysteresis: neg_threshold ({n}) must not be above threshold ({t}); "
                "speech would end before it starts"
            )
        return self


_PROPS = props_of(HysteresisSettings)


@dataclass(frozen=True, slots=True)
class Decision:
    """A speech boundary: ``kind`` is ``"start"`` or ``"end"``; times are sample indices."""

    kind: str
    start: int
    end: int | None = None
    reason: str = ""


class Hysteresis:
    """Streaming speech/non-speech decisions over consecutive windows of one stream.

    Parameters
    ----------
    settings
        Thresholds and durations (validated).
    sample_rate
        Rate of the sample indices the windows are stamped with.
    """

    def __init__(self, settings: HysteresisSettings, sample_rate: int) -> None:
        self.settings = settings.checked()
        self.sample_rate = sample_rate
        self.triggered = False
        self.confirmed = False
        self.start = 0
        self.temp_end: int | None = None
        self.last_end = 0

    @property
    def speech(self) -> bool:
        """Whether a confirmed speech segment is open."""
        return self.triggered and self.confirmed

    @property
    def pending(self) -> int | None:
        """Onset of a segment opened but not yet confirmed (``None`` otherwise): its
        ``SpeechStart`` may still come, however late, so its audio must be kept."""
        return self.start if self.triggered and not self.confirmed else None

    def _samples(self, ms: float) -> float:
        return self.sample_rate * ms / 1000.0

    def push(self, start: int, end: int, prob: float) -> list[Decision]:
        """Consume one window ``[start, end)`` with its probability; return decisions."""
        s = self.settings
        out: list[Decision] = []
        self.last_end = end
        just_started = False
        if prob >= s.threshold:
            self.temp_end = None
            if not self.triggered:
                self.triggered, self.confirmed, self.start = True, False, start
                just_started = True
        if self.triggered and not just_started and prob < s.neg:
            if self.temp_end is None:
                self.temp_end = start
            if start - self.temp_end >= self._samples(s.min_silence_ms):
                out.extend(self._close(self.temp_end, "silence"))
                return out
        if self.triggered and not self.confirmed:
            bound = self.temp_end if self.temp_end is not None else end
            if bound - self.start > self._samples(s.min_speech_ms):
                self.confirmed = True
                out.append(Decision("start", self.start))
        return out

    def quiet(self, end: int) -> None:
        """Windows below ``threshold`` while no segment is open, up to sample ``end``: all that
        :meth:`push` would do for them is move the stream end (lets offline callers skip
        silence in bulk)."""
        if self.triggered:
            raise ValueError("Hysteresis.quiet: a segment is open; push its windows one by one")
        self.last_end = end

    def _close(self, end: int, reason: str) -> list[Decision]:
        out: list[Decision] = []
        if end - self.start > self._samples(self.settings.min_speech_ms):
            if not self.confirmed:
                out.append(Decision("start", self.start))
            out.append(Decision("end", self.start, end, reason))
        self.triggered = self.confirmed = False
        self.temp_end = None
        return out

    def finish(
        self, stream_end: int | None = None, reason: str = "end_of_stream"
    ) -> list[Decision]:
        """The stream ended (or failed): close an open segment at ``stream_end``."""
        if not self.triggered:
            return []
        return self._close(self.last_end if stream_end is None else stream_end, reason)
