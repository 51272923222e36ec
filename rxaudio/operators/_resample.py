"""resample: streaming sample-rate conversion with soxr."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..core.caps import Caps
from ..core.check import FormatTracker, audio
from ..core.element import Operator, stage_operator
from ..core.props import Choices, Range, Unit, element
from ..dsp.resample import QUALITIES, StreamingResampler
from ..frames import AudioFrame


class _ResampleStage:
    def __init__(self, rate: int, quality: str) -> None:
        self.rate, self.quality = rate, quality
        self.fmt = FormatTracker("resample")
        self.rs: StreamingResampler | None = None
        self.out_pos = 0
        self.passthrough = False

    def push(self, item: AudioFrame) -> list[AudioFrame]:
        frame = audio("resample", item)
        if self.fmt.check(frame):
            self.passthrough = frame.sample_rate == self.rate
            if not self.passthrough:
                self.rs = StreamingResampler(
                    frame.sample_rate, self.rate, frame.channels, self.quality
                )
                self.out_pos = (frame.start * self.rate) // frame.sample_rate
        if self.passthrough:
            return [frame]
        assert self.rs is not None
        return self._emit(self.rs.push(frame.samples))

    def _emit(self, arr: np.ndarray) -> list[AudioFrame]:
        if arr.shape[0] == 0:
            return []
        f = AudioFrame(arr, self.rate, self.out_pos)
        self.out_pos += arr.shape[0]
        return [f]

    def flush(self) -> list[AudioFrame]:
        if self.rs is None:
            return []
        return self._emit(self.rs.flush())


@element("resample", kind="operator", accepts=Caps(), produces=Caps())
def resample(
    rate: Annotated[int, Range(1, 768_000), Unit("Hz")],
    *,
    quality: Annotated[str, Choices(QUALITIES)] = "HQ",
) -> Operator[AudioFrame, AudioFrame]:
    """Convert audio to ``rate`` Hz with soxr, streaming.

    The input rate is read from the first frame. soxr's filter state is carried between chunks,
    so the concatenated output equals one-shot ``soxr.resample`` of the whole signal (within
    1e-5) for any chunking. Output frames are stamped with sample indices at the new rate; the
    filter's delay means the first output frame may be short, and the last samples arrive on
    completion. Frames already at ``rate`` pass through untouched.

    .. marble::
        -a(48k:480)--b(48k:480)--|
        [     resample(16000)     ]
        -A(16k:~160)-B(16k:160)--(C|)

    Parameters
    ----------
    rate
        Output sample rate in Hz.
    quality
        soxr quality: ``QQ``, ``LQ``, ``MQ``, ``HQ`` (default) or ``VHQ``.

    Raises
    ------
    ConfigError
        ``rate`` not a positive int (at most 768 kHz) or unknown ``quality``.
    """
    return stage_operator(
        "resample", lambda: _ResampleStage(rate, quality), produces=Caps(sample_rate=rate)
    )
