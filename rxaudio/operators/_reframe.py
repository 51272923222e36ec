"""reframe: fixed-size frames with hop, remainder carried between chunks."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..core.caps import Caps
from ..core.check import FormatTracker, audio, gap_samples
from ..core.element import Operator, stage_operator
from ..core.props import Choices, Range, Unit, element
from ..dsp.framing import Reframer
from ..frames import AudioFrame

TAILS = ("flush", "pad", "drop")


class _ReframeStage:
    def __init__(self, size: int, hop: int, tail: str) -> None:
        self.size, self.hop, self.tail = size, hop, tail
        self.fmt = FormatTracker("reframe")
        self.r: Reframer | None = None

    def _frames(self, pairs: list[tuple[int, np.ndarray]]) -> list[AudioFrame]:
        rate = self.fmt.sample_rate
        assert rate is not None
        # cut from checked frames: float32, (n, channels), n >= 1
        return [AudioFrame.trusted(s, rate, start) for start, s in pairs]

    def push(self, item: AudioFrame) -> list[AudioFrame]:
        frame = audio("reframe", item)
        if self.fmt.check(frame):
            self.r = Reframer(self.size, self.hop, frame.channels, frame.start)
        r = self.r
        assert r is not None
        # A gap (e.g. blocks dropped at capture) is filled with silence so every later sample
        # keeps its index. Overlaps cannot be repaired and are refused.
        if frame.start == r.end:  # the common case: the frame follows on
            pairs = r.push(frame.samples)
        else:
            gap = gap_samples("reframe", r.end, frame)
            pairs = r.push(np.zeros((gap, frame.channels), dtype=np.float32))
            pairs.extend(r.push(frame.samples))
        return self._frames(pairs) if pairs else []

    def flush(self) -> list[AudioFrame]:
        if self.r is None:
            return []
        return self._frames(self.r.flush(self.tail))


@element("reframe", kind="operator", accepts=Caps(), produces=Caps())
def reframe(
    size: Annotated[int, Range(1), Unit("samples")],
    hop: Annotated[int | None, Range(1), Unit("samples")] = None,
    *,
    tail: Annotated[str, Choices(TAILS)] = "flush",
) -> Operator[AudioFrame, AudioFrame]:
    """Cut audio into frames of exactly ``size`` samples, one every ``hop`` samples.

    Chunks of any size go in; frames of ``size`` samples come out, each stamped with the sample
    index of its first sample. The remainder is carried to the next chunk, so any chunking of the
    same signal gives the same frames. ``hop < size`` makes overlapping frames (analysis
    windows), ``hop > size`` skips samples. A gap in the input (blocks dropped at capture) is
    filled with silence so later samples keep their index.

    .. marble::
        -a(300)----b(300)----c(300)--|
        [        reframe(256)        ]
        -A(0)------B(256)----C(512)--(D(768)|)

    Parameters
    ----------
    size
        Frame length in samples.
    hop
        Samples between frame starts (default ``size``).
    tail
        At completion: ``"flush"`` emits the uncovered remainder as a shorter frame, ``"pad"``
        zero-pads it to ``size``, ``"drop"`` discards it.

    Raises
    ------
    ConfigError
        ``size`` or ``hop`` not a positive int, unknown ``tail``.
    """
    hop = size if hop is None else hop
    return stage_operator(
        "reframe", lambda: _ReframeStage(size, hop, tail), produces=Caps(frame_size=size)
    )
