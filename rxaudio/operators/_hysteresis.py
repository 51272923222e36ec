"""hysteresis: stable speech start/end events from per-window probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.element import Element
from ..core.props import element
from ..frames import SettingsRejected, SpeechEnd, SpeechStart, VadFrame
from ..vad.hysteresis import (
    Decision,
    GapMs,
    Hysteresis,
    HysteresisSettings,
    NegThreshold,
    SegmentMs,
    Threshold,
)
from ._live import live_operator, updated


class _HysteresisStage:
    def __init__(self, settings: HysteresisSettings) -> None:
        self.settings = settings
        self.h: Hysteresis | None = None
        self.rate = 0

    def _events(self, ds: list[Decision]) -> list[SpeechStart | SpeechEnd]:
        out: list[SpeechStart | SpeechEnd] = []
        for d in ds:
            if d.kind == "start":
                out.append(SpeechStart(d.start, self.rate))
            else:
                assert d.end is not None
                out.append(SpeechEnd(d.start, d.end, self.rate, d.reason))
        return out

    def push(self, item: Any) -> list[Any]:
        if not isinstance(item, VadFrame):
            raise TypeError(
                f"hysteresis: expected VadFrame, got {type(item).__name__}; put vad() before it"
            )
        if self.h is None:
            self.rate = item.sample_rate
            self.h = Hysteresis(self.settings, item.sample_rate)
        elif item.sample_rate != self.rate:
            raise ValueError(
                f"sample rate changed mid-stream from {self.rate} to {item.sample_rate}"
            )
        out: list[Any] = self._events(self.h.push(item.start, item.end, item.probability))
        out.append(  # not dataclasses.replace: it costs 3x the constructor per window
            VadFrame.trusted(
                item.start,
                item.end,
                item.sample_rate,
                item.probability,
                item.audio,
                self.h.speech,
                item.index,
                self.h.pending,
            )
        )
        return out

    def close(self, reason: str) -> list[Any]:
        return [] if self.h is None else list(self._events(self.h.finish(reason=reason)))

    def apply(self, changes: Mapping[str, Any]) -> None:
        new = HysteresisSettings(**updated(self.settings, changes, "hysteresis")).checked()
        self.settings = new
        if self.h is not None:
            self.h.settings = new

    def gap_seconds(self) -> float | None:
        g = self.settings.max_gap_ms
        return g / 1000.0 if g is not None and self.h is not None and self.h.triggered else None

    def on_gap(self) -> list[Any]:
        # input stopped with a segment open: end it at the last frame's end
        return [] if self.h is None else list(self._events(self.h.finish(reason="gap")))


@element(
    "hysteresis",
    kind="operator",
    accepts=Caps(frame=VadFrame),
    produces=Caps(frame=(VadFrame, SpeechStart, SpeechEnd, SettingsRejected)),
)
def hysteresis(
    threshold: Threshold = HysteresisSettings.threshold,
    neg_threshold: NegThreshold = HysteresisSettings.neg_threshold,
    min_speech_ms: SegmentMs = HysteresisSettings.min_speech_ms,
    min_silence_ms: SegmentMs = HysteresisSettings.min_silence_ms,
    *,
    max_gap_ms: GapMs = HysteresisSettings.max_gap_ms,
    settings: Observable[Mapping[str, Any]] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Element[VadFrame, Any]:
    """Turn per-window speech probabilities into stable :class:`SpeechStart`/:class:`SpeechEnd`.

    Speech starts when a window's probability reaches ``threshold``, and ends at the first window
    of a run below ``neg_threshold`` that lasts ``min_silence_ms``; segments not longer than
    ``min_speech_ms`` are dropped. A ``SpeechStart`` is emitted as soon as the segment is certain
    to be kept, carrying its true onset: at least ``min_speech_ms`` after the onset, and without
    bound after a dip, while probabilities stay between ``neg_threshold`` and ``threshold``;
    the segments are exactly those of Silero's ``get_speech_timestamps`` before padding. Every
    frame passes through with ``speech`` set to the current state and ``pending`` to the onset
    of a segment opened but not yet confirmed (``buffer_utterance`` keeps the audio back to
    it). At completion an open
    segment ends with ``reason="end_of_stream"``; on an upstream error with ``"error"`` before
    the error is forwarded. If no frame arrives for ``max_gap_ms`` (timed on the scheduler)
    while a segment is open, it ends at the last frame's end with ``reason="gap"`` (a muted
    microphone, a silent client: never a speech state stuck open); like ``buffer_utterance``'s
    own gap timer with the same default, so the two close together.

    .. marble::
        -a(.1)-b(.9)-c(.9)-...-d(.9)-e(.1)-f(.1)-g(.1)-h(.1)-|
        [     hysteresis(0.5, min_speech_ms=250, min_silence_ms=100)  ]
        -A-----B-----C-----...-(SD)--E-----F-----G-----(XH)--|
        S = SpeechStart(start=b.start), X = SpeechEnd(b.start, e.start)

    Parameters
    ----------
    threshold
        Enter speech at or above this probability.
    neg_threshold
        Leave speech below this (none: ``max(threshold - 0.15, 0.01)``); not above ``threshold``.
    min_speech_ms
        Drop segments not longer than this.
    min_silence_ms
        Silence needed to end a segment.
    max_gap_ms
        End an open segment after this long without input; none disables the timer.
    settings
        Observable of dicts with any of the above names, applied from the next frame on. A bad
        one is refused with a :class:`SettingsRejected` item downstream; the old settings stay.
    scheduler
        Scheduler for the gap timer (default: the subscription's, or a timeout scheduler).

    Raises
    ------
    ConfigError
        An option outside its range (``rxaudio inspect hysteresis``), ``neg_threshold``
        above ``threshold``.
    """
    s = HysteresisSettings(
        threshold, neg_threshold, min_speech_ms, min_silence_ms, max_gap_ms
    ).checked()
    return live_operator(
        "hysteresis",
        lambda: _HysteresisStage(s),
        settings,
        scheduler,
        accepts=Caps(frame=VadFrame),
        produces=Caps(frame=(VadFrame, SpeechStart, SpeechEnd, SettingsRejected)),
    )
