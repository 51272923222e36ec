"""level: RMS and peak in dBFS per frame."""

from __future__ import annotations

from ..core.caps import Caps
from ..core.check import audio
from ..core.element import Operator, map_operator
from ..core.props import element
from ..dsp.level import rms_peak_db
from ..frames import AudioFrame, LevelFrame


def _level(item: AudioFrame) -> LevelFrame:
    frame = audio("level", item)
    rms, peak, ch_rms, ch_pk = rms_peak_db(frame.samples)
    return LevelFrame(
        start=frame.start,
        end=frame.end,
        sample_rate=frame.sample_rate,
        rms_db=rms,
        peak_db=peak,
        channel_rms_db=tuple(ch_rms.tolist()),
        channel_peak_db=tuple(ch_pk.tolist()),
    )


@element("level", kind="operator", accepts=Caps(), produces=Caps(frame=LevelFrame))
def level() -> Operator[AudioFrame, LevelFrame]:
    """Measure each frame: RMS and peak in dBFS, overall and per channel.

    Silence reads -120 dBFS (never -inf). A full-scale sine is -3.01 dBFS RMS and 0 dBFS peak.
    Use ``reframe`` first for a fixed measurement window, and ``share()`` to keep the audio.

    .. marble::
        -a-----b-----|
        [   level()  ]
        -A-----B-----|      A = LevelFrame(rms_db, peak_db, start, end)
    """
    return map_operator("level", _level, produces=Caps(frame=LevelFrame))
