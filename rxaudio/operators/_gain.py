"""gain: scale audio by decibels."""

from __future__ import annotations

import numpy as np

from ..core.caps import Caps
from ..core.check import audio, finite
from ..core.element import Operator, map_operator
from ..core.props import element
from ..frames import AudioFrame


@element("gain", kind="operator", accepts=Caps(), produces=Caps())
def gain(db: float) -> Operator[AudioFrame, AudioFrame]:
    """Scale every frame by ``db`` decibels (no clipping: float samples may exceed 1).

    .. marble::
        -a--b--c--|
        [ gain(6) ]
        -A--B--C--|

    Raises
    ------
    ConfigError
        ``db`` not finite or outside [-120, 60].
    """
    db = finite("gain", "db", db, -120.0, 60.0)
    factor = np.float32(10.0 ** (db / 20.0))

    def scale(item: AudioFrame) -> AudioFrame:
        frame = audio("gain", item)
        return AudioFrame(frame.samples * factor, frame.sample_rate, frame.start)

    return map_operator("gain", scale)
