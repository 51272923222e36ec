"""VAD windowing, in one place: model-rate audio cut into the scorer's windows, each mapped to
the span of source audio it covers.

Used by the ``vad`` operator (:mod:`rxaudio.operators._vad`) and by the offline fast path
(:class:`~rxaudio.vad.offline.OfflineSegmenter`), so both cut, pad, score and stamp windows the
same way: windows of ``window_size`` samples from the first converted sample on, the last
partial window zero-padded (as Silero's ``get_speech_timestamps`` does), one window scored with
``score`` and several with ``score_many``, and window ``i`` covering the source samples
``[(m_i * rate) // model_rate, (m_{i+1} * rate) // model_rate)`` (the stream's last window ending
at the source's end).
"""

from __future__ import annotations

import numpy as np

from .base import F32, Scorer

_NONE: F32 = np.zeros(0, dtype=np.float32)  # no samples left over (shared, never written)
_NONE.flags.writeable = False


class Windows:
    """Cuts a model-rate mono stream into windows and maps them to source sample spans."""

    def __init__(self) -> None:
        self.size = 0  # samples per window (0 until started)
        self.k = 0  # index of the next window
        self.m0 = 0  # model-rate sample index of window 0
        self.rest = _NONE  # samples not yet in a window

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran."""
        return self.size > 0

    def start(self, size: int, m0: int) -> None:
        """Windows of ``size`` samples, the first at model-rate sample ``m0``."""
        self.size, self.m0 = size, m0

    def cut(self, samples: F32) -> F32:
        """Append 1-D model-rate ``samples``; return the windows now complete, ``(k, size)``."""
        buf = np.concatenate((self.rest, samples)) if self.rest.shape[0] else samples
        w = self.size
        k = buf.shape[0] // w
        # the live case (whole windows in, none left over) copies nothing
        self.rest = _NONE if k * w == buf.shape[0] else buf[k * w :].copy()
        return buf[: k * w].reshape(k, w)

    def last(self) -> F32:
        """The zero-padded last window ``(1, size)``, or ``(0, size)`` when nothing is left."""
        if not self.rest.shape[0]:
            return np.zeros((0, self.size), dtype=np.float32)
        out = np.zeros((1, self.size), dtype=np.float32)
        out[0, : self.rest.shape[0]] = self.rest
        self.rest = self.rest[:0]
        return out

    @staticmethod
    def score(scorer: Scorer, windows: F32) -> F32:
        """Probabilities of ``windows``: one window through ``score``, more through
        ``score_many`` (the batch path of a sequence model)."""
        if windows.shape[0] == 1:
            return np.array([scorer.score(windows[0])], dtype=np.float32)
        return scorer.score_many(windows)

    def spans(
        self, k: int, source_rate: int, model_rate: int, last_end: int | None = None
    ) -> tuple[list[int], list[int]]:
        """Source ``[start, end)`` of the next ``k`` windows (the last one ending at
        ``last_end`` when given); advances the window index by ``k``."""
        w = self.size
        m = self.m0 + self.k * w
        if k == 1:  # the live case: one window
            a, b = (m * source_rate) // model_rate, ((m + w) * source_rate) // model_rate
            starts, ends = [a], [b]
        else:
            bounds = [((m + w * i) * source_rate) // model_rate for i in range(k + 1)]
            starts, ends = bounds[:-1], bounds[1:]
        if last_end is not None and k:
            ends[-1] = last_end
        self.k += k
        return starts, ends
