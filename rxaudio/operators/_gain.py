"""gain: scale audio by decibels."""

from __future__ import annotations

from typing import Annotated

import numpy as np

from ..core.caps import Caps
from ..core.check import audio
from ..core.element import Operator, map_operator
from ..core.props import Range, Unit, element
from ..frames import AudioFrame


@element("gain", kind="operator", accepts=Caps(), produces=Caps())
def gain(db: Annotated[float, Range(-120.0, 60.0), Unit("dB")]) -> Operator[AudioFrame, AudioFrame]:
    """Scale every frame by ``db`` decibels (no clipping: float samples may exceed 1).

    .. marble::
        -a--b--c--|
        [ gain(6) ]
        -A--B--C--|

    Parameters
    ----------
    db
        Gain in decibels (negative attenuates).

    Raises
    ------
    ConfigError
        ``db`` not a finite number in its range.
    """
    factor = np.float32(10.0 ** (db / 20.0))

    def scale(item: AudioFrame) -> AudioFrame:
        frame = audio("gain", item)
        return AudioFrame(frame.samples * factor, frame.sample_rate, frame.start)

    return map_operator("gain", scale)
