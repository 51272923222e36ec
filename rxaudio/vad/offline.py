"""``vad ! hysteresis ! buffer_utterance`` over a whole recording, without Rx (no Rx imported).

:class:`OfflineSegmenter` is the offline fast path of ``rxaudio segment``: it takes the source
audio and the model-rate audio in big blocks, scores all windows of a block in one call (the
Silero sequence model), and walks the windows with the same pure state machines the operators
use (:class:`~rxaudio.vad.hysteresis.Hysteresis`, :class:`~rxaudio.vad.utterance.UtteranceCutter`)
but without a frame object per window: the cutter's buffer holds the source blocks and each
window only reveals its span of them. Windows, their sample indices, the zero-padded last
window and the order of events are those of the operator chain, so the utterances are identical
(sample for sample) to what ``vad() ! hysteresis() ! buffer_utterance()`` emits for the same
blocks; ``tests/vad/test_offline.py`` checks it.
"""

from __future__ import annotations

import numpy as np

from ..frames import Utterance
from .base import F32, Scorer, ScorerFactory
from .hysteresis import Decision, Hysteresis, HysteresisSettings
from .utterance import UtteranceCutter, UtteranceSettings
from .windows import Windows


class OfflineSegmenter:
    """Utterances of one recording, fed block by block.

    Call :meth:`source` with each block of source audio (any rate and channels), then
    :meth:`converted` with the model-rate mono audio made from it so far (the same block when no
    conversion is needed), and :meth:`finish` at the end (or ``finish("error")`` when the input
    failed, as the operators close on an upstream error).

    Parameters
    ----------
    source_rate
        Rate of the source audio (the utterances' samples and sample indices are at this rate).
    factory
        Builds the scorer for the model-rate audio (as for ``vad(backend=...)``).
    hysteresis, utterance
        The settings of ``hysteresis`` and ``buffer_utterance`` (``max_gap_ms`` is not used:
        offline input has no gaps in time).
    """

    def __init__(
        self,
        source_rate: int,
        factory: ScorerFactory,
        hysteresis: HysteresisSettings,
        utterance: UtteranceSettings,
    ) -> None:
        self.factory = factory
        self.hyst_settings = hysteresis.checked()
        self.cutter = UtteranceCutter(utterance)
        self.cutter.rate = self.rate = source_rate
        self.hyst = Hysteresis(self.hyst_settings, source_rate)
        self.scorer: Scorer | None = None
        self.windows = Windows()  # the one windowing, shared with the vad operator
        self._done = False
        self._started = False  # some source audio was revealed

    def source(self, start: int, samples: F32) -> None:
        """A block of source audio ``(n, channels)`` starting at sample ``start``."""
        self.cutter.audio.load(start, samples)

    def converted(self, start: int, samples: F32, sample_rate: int) -> list[Utterance]:
        """Model-rate mono audio (1-D) starting at ``start``; return completed utterances."""
        if self.scorer is None:
            self.scorer = self.factory(sample_rate)
            self.windows.start(self.scorer.window_size, start)
        return self._windows(self.windows.cut(samples), None)

    def finish(self, reason: str = "end_of_stream") -> list[Utterance]:
        """End of input: score the zero-padded last window (at ``end_of_stream`` only, as
        ``vad`` does), close an open segment and utterance with ``reason``."""
        if self._done:
            return []
        self._done = True
        out: list[Utterance] = []
        try:
            if reason == "end_of_stream" and self.scorer is not None:
                out.extend(self._windows(self.windows.last(), self.cutter.audio.loaded_end))
            if self.scorer is not None:  # hysteresis saw a window
                out.extend(self._events(self.hyst.finish(reason=reason)))
            out.extend(self.cutter.close(reason))
        finally:
            closer = getattr(self.scorer, "close", None)
            if callable(closer):
                closer()
        return out

    def _events(self, decisions: list[Decision]) -> list[Utterance]:
        out: list[Utterance] = []
        for d in decisions:
            if d.kind == "start":
                out.extend(self.cutter.speech_start(d.start, self.rate))
            else:
                assert d.end is not None
                out.extend(self.cutter.speech_end(d.end, d.reason))
        return out

    def _windows(self, windows: F32, last_end: int | None) -> list[Utterance]:
        k = windows.shape[0]
        if k == 0:
            return []
        scorer = self.scorer
        assert scorer is not None
        probs = Windows.score(scorer, windows)  # as the vad operator
        audio, cutter, hyst, rate = self.cutter.audio, self.cutter, self.hyst, self.rate
        # the windows' source spans, as the vad operator maps them: [a, b), the last one of the
        # stream ending at the source's end; hi: the end of the source audio a window carries
        starts, ends = self.windows.spans(k, rate, scorer.sample_rate, last_end)
        loaded = audio.loaded_end
        his = np.minimum(ends, loaded)
        p64 = probs.astype(np.float64)  # the Python floats push() compares
        plist = p64.tolist()
        onsets = [*np.flatnonzero(p64 >= hyst.settings.threshold).tolist(), k]
        push, window, events = hyst.push, cutter.window, self._events
        out: list[Utterance] = []
        o = 0  # index into onsets
        i = 0
        while i < k:
            if not hyst.triggered and not cutter.active and self._started:
                # idle and below threshold up to the next onset: windows that only add audio
                # (until the history is due for a trim) are revealed in one step
                while onsets[o] < i:
                    o += 1
                due = cutter.trim_due()
                j = min(onsets[o], int(np.searchsorted(his, due)) if due is not None else k)
                if j > i:
                    hi = int(his[j - 1])
                    if hi > audio.end:
                        audio.reveal(audio.end, hi)
                    b = ends[j - 1]
                    hyst.quiet(b if b > starts[j - 1] else starts[j - 1] + 1)
                    i = j
                    continue
            a, b, p = starts[i], ends[i], plist[i]
            hi = b if b < loaded else loaded
            if hi > a:  # the window's source audio (the vad operator's VadFrame.audio)
                audio.reveal(a, hi)
                self._started = True
            e = b if b > a else a + 1
            ds = push(a, e, p)
            if ds:
                out.extend(events(ds))
            got = window(a, e, p, hyst.speech, hyst.pending)
            if got:
                out.extend(got)
            i += 1
        return out
