"""Cutting whole utterances out of an annotated VAD stream (no Rx).

:class:`UtteranceCutter` receives the windows (:class:`~rxaudio.frames.VadFrame`, carrying their
source audio) and the speech boundaries, keeps a bounded history of recent audio for pre-roll,
and returns :class:`~rxaudio.frames.Utterance` objects at the source rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ..core.props import Range, Unit, props_of
from ..errors import ConfigError
from ..frames import Utterance, VadFrame
from .hysteresis import GapMs
from .spans import SpanBuffer

# Audio kept beyond the pre-roll when no segment is pending. A segment hysteresis has opened
# but not yet confirmed is announced by the ``pending`` onset of its windows, and its audio is
# kept from (onset - pre-roll), however late the confirmation comes (bounded by max_ms).
LOOKBACK_S = 3.0
SPLIT_SEARCH_S = 1.0


# Each option's type, range and unit, stated once: the settings below and the
# ``buffer_utterance`` operator's signature (``GapMs`` is shared with hysteresis).
RollMs = Annotated[float, Range(0.0, 2000.0), Unit("ms")]
MinMs = Annotated[float, Range(0.0, 600_000.0), Unit("ms")]
MaxMs = Annotated[float, Range(0.0, 3_600_000.0), Unit("ms")]


@dataclass
class UtteranceSettings:
    """Durations in ms: the one source of their defaults; :meth:`checked` validates them.

    The ``buffer_utterance`` operator's options default to these fields and carry their ranges.
    """

    pre_roll_ms: RollMs = 300.0
    post_roll_ms: RollMs = 200.0
    min_ms: MinMs = 0.0
    max_ms: MaxMs = 30_000.0
    max_gap_ms: GapMs = 2000.0

    def checked(self) -> UtteranceSettings:
        """Return self after validation (raises :class:`ConfigError`)."""
        for p in _PROPS:
            p.check("buffer_utterance", getattr(self, p.name))
        need = self.pre_roll_ms + 1000.0 * SPLIT_SEARCH_S
        if self.max_ms <= need:
            raise ConfigError(
                f"buffer_utterance: max_ms ({self.max_ms:g}) must exceed pre_roll_ms + "
                f"{1000 * SPLIT_SEARCH_S:g} ms ({need:g}) so a long utterance can be split "
                "inside its last second"
            )
        if self.min_ms >= self.max_ms:
            raise ConfigError(
                f"buffer_utterance: min_ms ({self.min_ms:g}) must be below max_ms ({self.max_ms:g})"
            )
        return self


_PROPS = props_of(UtteranceSettings)


@dataclass
class _Open:
    start: int  # detected onset
    audio_start: int
    end: int | None = None  # set when speech ended (waiting for post-roll)
    reason: str = ""


class UtteranceCutter:
    """Stateful utterance cutter for one stream.

    Memory is bounded: the audio history holds pre-roll plus :data:`LOOKBACK_S` (while a segment
    is pending, from its onset minus the pre-roll but at most ``max_ms``), and an open utterance
    is split at ``max_ms``. Every utterance has ``audio_start <= start``.
    """

    def __init__(self, settings: UtteranceSettings) -> None:
        self.settings = settings.checked()
        self.rate: int | None = None
        self.audio = SpanBuffer()
        self.open: _Open | None = None
        self.closing: _Open | None = None  # speech ended, collecting post-roll
        self.count = 0
        self.pending: int | None = None  # onset of a segment opened but not yet confirmed
        self._last_end = 0  # end of the last window seen (the same moment on every path)
        self._probs: deque[tuple[int, int, float]] = deque()  # recent windows of the open one
        # the settings in samples, as _n gives them, for the settings object they were made
        # from (settings are replaced, never changed, so a new object means new numbers)
        self.sized_for: UtteranceSettings | None = None
        self.history_n = 0  # _history()
        self.max_n = 0  # _n(max_ms)

    def _n(self, ms: float) -> int:
        assert self.rate is not None
        return round(self.rate * ms / 1000.0)

    @property
    def active(self) -> bool:
        """Whether an utterance is open or collecting its post-roll."""
        return self.open is not None or self.closing is not None

    def frame(self, vf: VadFrame) -> list[Utterance]:
        """Consume one window (with its audio); return utterances it completes."""
        if self.rate is None:
            self.rate = vf.sample_rate
        elif vf.sample_rate != self.rate:
            raise ValueError(
                f"sample rate changed mid-stream from {self.rate} to {vf.sample_rate} Hz"
            )
        if vf.audio is not None:
            self.audio.append(vf.audio.start, vf.audio.samples)
        return self.window(vf.start, vf.end, vf.probability, bool(vf.speech), vf.pending)

    def window(
        self, start: int, end: int, probability: float, speech: bool, pending: int | None = None
    ) -> list[Utterance]:
        """Consume one window ``[start, end)`` whose audio is already in :attr:`audio` (what
        :meth:`frame` does after appending the frame's audio; the offline path calls it with
        audio revealed from big blocks). ``pending``: the onset of a segment opened but not yet
        confirmed (its audio is kept). Needs :attr:`rate` set."""
        self.pending = pending
        self._last_end = end
        if self.open is None and self.closing is None and not speech:
            if pending is not None:  # split candidates, should it be confirmed
                self._note(start, end, probability)
            self._trim()  # idle: nothing to cut, only history to keep
            return []
        assert self.rate is not None
        out: list[Utterance] = []
        if self.open is None and self.closing is None:
            # speech already under way (e.g. input resumed after a gap): no onset to go back to
            self.open = _Open(start, start)
        if self.open is not None:
            self._note(start, end, probability)
            if end - self.open.audio_start >= self._n(self.settings.max_ms):
                out.extend(self._split())
        out.extend(self._drain())
        self._trim()
        return out

    def _note(self, start: int, end: int, probability: float) -> None:
        assert self.rate is not None
        self._probs.append((start, end, probability))
        horizon = end - int(SPLIT_SEARCH_S * self.rate) - 1
        while self._probs and self._probs[0][0] < horizon:
            self._probs.popleft()

    def speech_start(self, start: int, sample_rate: int | None = None) -> list[Utterance]:
        """Speech began at ``start``: open an utterance with pre-roll."""
        if self.rate is None:
            self.rate = sample_rate
        if self.rate is None:
            raise ValueError("speech_start before any frame: give its sample_rate")
        out: list[Utterance] = []
        if self.closing is not None:  # the previous one's post-roll ends here
            c = self.closing
            out.extend(self._finish(c, c.end, min(self.audio.end, self._post_end(c))))
            self.closing = None
        if self.open is None:
            # the pre-roll, within the history and within max_ms of now: a segment confirmed
            # later than that (min_speech_ms longer than max_ms) would open already too long
            # to be split within max_ms, so it starts at most max_ms back
            a = max(
                start - self._n(self.settings.pre_roll_ms),
                self.audio.start,
                self._last_end - self._n(self.settings.max_ms),
            )
            # an onset older than that: the utterance starts where its audio does, never before
            start = max(start, a)
            self.open = _Open(start, a)
            while self._probs and self._probs[0][0] < start:  # keep the windows of this one
                self._probs.popleft()
        return out

    def speech_end(self, end: int, reason: str = "silence") -> list[Utterance]:
        """Speech ended at ``end``: close once the post-roll is in (or the stream ended)."""
        u = self.open
        if u is None:
            return []
        self.open = None
        u.end, u.reason = end, reason
        if reason != "silence":
            return self._finish(u, end, self.audio.end)
        self.closing = u
        return self._drain()

    def close(self, reason: str) -> list[Utterance]:
        """The stream ended, failed or paused: emit whatever is open with this reason."""
        out: list[Utterance] = []
        if self.closing is not None:
            c = self.closing
            out.extend(self._finish(c, c.end, min(self.audio.end, self._post_end(c))))
            self.closing = None
        if self.open is not None:
            u = self.open
            self.open = None
            u.reason = reason
            out.extend(self._finish(u, self.audio.end, self.audio.end))
        return out

    def _post_end(self, u: _Open) -> int:
        assert u.end is not None
        return u.end + self._n(self.settings.post_roll_ms)

    def _drain(self) -> list[Utterance]:
        c = self.closing
        if c is None or self.audio.end < self._post_end(c):
            return []
        self.closing = None
        return self._finish(c, c.end, self._post_end(c))

    def _split(self) -> list[Utterance]:
        u = self.open
        assert u is not None and self._probs
        # the least speech-like window of the last second; cut in its middle
        s, e, _ = min(self._probs, key=lambda t: t[2])
        cut = max((s + e) // 2, u.start + 1)
        u.reason = "max_length"
        out = self._finish(u, cut, cut)
        self.open = _Open(cut, cut)
        while self._probs and self._probs[0][1] <= cut:
            self._probs.popleft()
        return out

    def _finish(self, u: _Open, end: int | None, audio_end: int) -> list[Utterance]:
        assert self.rate is not None
        end = u.start if end is None else end
        if end - u.start < self._n(self.settings.min_ms) or audio_end <= u.audio_start:
            return []
        samples = self.audio.take(u.audio_start, audio_end)
        if samples.shape[0] == 0:
            return []
        audio_start = max(u.audio_start, self.audio.start)
        utt = Utterance(
            samples=np.ascontiguousarray(samples),
            sample_rate=self.rate,
            start=u.start,
            end=min(end, audio_start + samples.shape[0]),
            audio_start=audio_start,
            audio_end=audio_start + samples.shape[0],
            reason=u.reason or "silence",
            index=self.count,
        )
        self.count += 1
        return [utt]

    def _history(self) -> int:
        return self._n(self.settings.pre_roll_ms + 1000.0 * LOOKBACK_S)

    def sized(self) -> None:
        """:attr:`history_n` and :attr:`max_n` for the current settings (needs the rate)."""
        s = self.settings
        self.history_n = self._history()
        self.max_n = self._n(s.max_ms)
        self.sized_for = s

    def trim_due(self) -> int | None:
        """The audio end at which the next window trims the history (``None`` before the rate
        is known); an idle window ending before it only adds audio (offline callers reveal such
        runs in bulk)."""
        if self.rate is None:
            return None
        return self.audio.start + self._history() + self.rate

    def _trim(self) -> None:
        rate = self.rate
        if rate is None:
            return
        if self.sized_for is not self.settings:
            self.sized()
        limit = self.history_n
        if self.audio.end - self.audio.start < limit + rate:  # trim once a second
            return
        keep = self.audio.end - limit
        if self.pending is not None:  # a segment that may still be confirmed: keep its pre-roll
            hold = self.pending - self._n(self.settings.pre_roll_ms)
            keep = min(keep, max(hold, self.audio.end - self._n(self.settings.max_ms)))
        for u in (self.open, self.closing):
            if u is not None:
                keep = min(keep, u.audio_start)
        if keep > self.audio.start:
            self.audio.trim(keep)
