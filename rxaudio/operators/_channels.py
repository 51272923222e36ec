"""to_mono / channels: mix down, duplicate or select channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np

from ..core.caps import Caps
from ..core.check import audio
from ..core.element import Operator, map_operator
from ..core.props import Range, element
from ..errors import ConfigError
from ..frames import AudioFrame


@element("to_mono", kind="operator", accepts=Caps(), produces=Caps(channels=1))
def to_mono() -> Operator[AudioFrame, AudioFrame]:
    """Mix all channels to one by averaging them (mono frames pass through).

    .. marble::
        -a(2ch)--b(2ch)--|
        [    to_mono()   ]
        -A(1ch)--B(1ch)--|
    """
    return channels(1)


@element("channels", kind="operator", accepts=Caps(), produces=Caps())
def channels(
    count: Annotated[int | None, Range(1, 64)] = None, *, select: Sequence[int] | None = None
) -> Operator[AudioFrame, AudioFrame]:
    """Change the channel layout.

    ``channels(1)`` averages to mono; ``channels(n)`` from mono duplicates the channel;
    ``select=[i, j, ...]`` picks (and reorders) input channels. Any other mapping is refused
    with an error naming ``select=``.

    .. marble::
        -a(1ch)--b(1ch)--|
        [   channels(2)  ]
        -A(2ch)--B(2ch)--|

    Parameters
    ----------
    count
        Output channels: 1 averages, more duplicates a mono input.
    select
        Input channel indices to keep, in order (set from Python).

    Raises
    ------
    ConfigError
        Neither or both of ``count`` and ``select``, a count out of range, a negative index.
    """
    if (count is None) == (select is None):
        raise ConfigError("channels: give exactly one of count=N or select=[indices]")
    if select is not None:
        idx = list(select)
        if not idx or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in idx):
            raise ConfigError(
                f"channels: select must be non-negative channel indices, got {select!r}"
            )

        def pick(item: AudioFrame) -> AudioFrame:
            frame = audio("channels", item)
            if max(idx) >= frame.channels:
                raise ValueError(
                    f"select={idx} needs {max(idx) + 1} channels, the input has {frame.channels}"
                )
            return AudioFrame(
                np.ascontiguousarray(frame.samples[:, idx]), frame.sample_rate, frame.start
            )

        return map_operator("channels", pick, produces=Caps(channels=len(idx)))

    assert count is not None  # exactly one of count and select was given
    n = count

    def convert(item: AudioFrame) -> AudioFrame:
        frame = audio("channels", item)
        c = frame.channels
        if c == n:
            return frame
        if n == 1:
            mixed = frame.samples.mean(axis=1, dtype=np.float32, keepdims=True)
            return AudioFrame(mixed, frame.sample_rate, frame.start)
        if c == 1:
            return AudioFrame(np.repeat(frame.samples, n, axis=1), frame.sample_rate, frame.start)
        raise ValueError(
            f"cannot map {c} channels to {n}; use channels(select=[...]) to choose them"
        )

    return map_operator("channels", convert, produces=Caps(channels=n))
