"""buffer_utterance: whole utterances with pre-roll, cut from the annotated VAD stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.element import Element
from ..core.props import element
from ..frames import SettingsRejected, SpeechEnd, SpeechStart, Utterance, VadFrame
from ..vad.hysteresis import GapMs
from ..vad.utterance import MaxMs, MinMs, RollMs, UtteranceCutter, UtteranceSettings
from ._live import live_operator, updated


class _UtteranceStage:
    def __init__(self, settings: UtteranceSettings, passthrough: bool) -> None:
        self.cut = UtteranceCutter(settings)
        self.passthrough = passthrough

    def push(self, item: Any) -> list[Any]:
        if isinstance(item, VadFrame):
            out: list[Any] = list(self.cut.frame(item))
        elif isinstance(item, SpeechStart):
            out = list(self.cut.speech_start(item.start, item.sample_rate))
        elif isinstance(item, SpeechEnd):
            out = list(self.cut.speech_end(item.end, item.reason))
        elif isinstance(item, SettingsRejected):
            return [item]
        else:
            raise TypeError(
                f"buffer_utterance: expected VadFrame/SpeechStart/SpeechEnd, got "
                f"{type(item).__name__}; put vad() and hysteresis() before it"
            )
        if self.passthrough:
            out.insert(0, item)
        return out

    def close(self, reason: str) -> list[Any]:
        return list(self.cut.close(reason))

    def apply(self, changes: Mapping[str, Any]) -> None:
        self.cut.settings = UtteranceSettings(
            **updated(self.cut.settings, changes, "buffer_utterance")
        ).checked()

    def gap_seconds(self) -> float | None:
        g = self.cut.settings.max_gap_ms
        return g / 1000.0 if g is not None and self.cut.active else None

    def on_gap(self) -> list[Any]:
        return list(self.cut.close("gap"))


@element(
    "buffer_utterance",
    kind="operator",
    accepts=Caps(frame=(VadFrame, SpeechStart, SpeechEnd, SettingsRejected)),
    produces=Caps(frame=(Utterance, VadFrame, SpeechStart, SpeechEnd, SettingsRejected)),
)
def buffer_utterance(
    pre_roll_ms: RollMs = UtteranceSettings.pre_roll_ms,
    post_roll_ms: RollMs = UtteranceSettings.post_roll_ms,
    min_ms: MinMs = UtteranceSettings.min_ms,
    max_ms: MaxMs = UtteranceSettings.max_ms,
    *,
    max_gap_ms: GapMs = UtteranceSettings.max_gap_ms,
    passthrough: bool = False,
    settings: Observable[Mapping[str, Any]] | None = None,
    scheduler: abc.SchedulerBase | None = None,
) -> Element[Any, Any]:
    """Cut whole :class:`Utterance` objects (source-rate audio) out of a ``hysteresis`` stream.

    An utterance starts ``pre_roll_ms`` before the detected onset (so no first syllable is
    clipped) and its audio runs ``post_roll_ms`` past the detected end; ``start``/``end`` keep
    the detected speech. An utterance whose audio reaches ``max_ms`` is split at the middle of
    the least speech-like window of its last second (``reason="max_length"``) and continues as
    a new one. If no input arrives for ``max_gap_ms`` (timed on the scheduler) an open utterance
    is closed with ``reason="gap"``, so a muted or vanished source never leaves speech open. At
    completion the open utterance ends with ``"end_of_stream"``; on an upstream error it is
    emitted with ``"error"`` before the error. ``audio_start <= start`` always: while a segment
    is pending (``VadFrame.pending``) its audio is kept back to onset - pre-roll, however late
    it is confirmed. Memory is bounded: audio is kept for pre-roll plus a few seconds (at most
    ``max_ms`` while a segment is pending), and an open utterance for at most ``max_ms``.

    .. marble::
        -a-b-S-c-d-E-e-f-g-----|          S = SpeechStart, E = SpeechEnd (hysteresis)
        [ buffer_utterance(pre_roll_ms=300, post_roll_ms=200) ]
        -----------------U-----|          U = Utterance(samples, start, end, audio_start, ...)

    Parameters
    ----------
    pre_roll_ms
        Audio kept before the detected onset, so that no first syllable is clipped.
    post_roll_ms
        Audio kept after the detected end.
    min_ms
        Drop utterances with less detected speech than this.
    max_ms
        Split utterances whose audio reaches this length (above ``pre_roll_ms + 1000``).
    max_gap_ms
        Close an open utterance after this long without input; none disables the timer.
    passthrough
        Also pass every input item through (before the utterances it completes).
    settings
        Observable of dicts with any of the duration names, applied from the next item on; a
        bad one is refused with a :class:`SettingsRejected` item, the old settings stay.
    scheduler
        Scheduler for the gap timer (default: the subscription's, or a timeout scheduler).

    Raises
    ------
    ConfigError
        A duration out of its range (``rxaudio inspect buffer_utterance``), ``max_ms`` too
        short for the pre-roll and the split search, ``min_ms`` not below ``max_ms``.
    """
    s = UtteranceSettings(pre_roll_ms, post_roll_ms, min_ms, max_ms, max_gap_ms).checked()
    return live_operator(
        "buffer_utterance",
        lambda: _UtteranceStage(s, passthrough),
        settings,
        scheduler,
        accepts=Caps(frame=(VadFrame, SpeechStart, SpeechEnd, SettingsRejected)),
        produces=Caps(frame=(Utterance, VadFrame, SpeechStart, SpeechEnd, SettingsRejected))
        if passthrough
        else Caps(frame=Utterance),
    )
