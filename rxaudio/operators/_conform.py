"""conform: convert an audio stream to given caps (channels, then rate, then frame size)."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, compose

from ..core.caps import Caps
from ..frames import AudioFrame


def conform(caps: Caps) -> Callable[[Observable[AudioFrame]], Observable[AudioFrame]]:
    """Convert an audio stream to ``caps``: channels first (cheaper), then resample, then reframe.

    Each step passes frames through untouched when they already match, so conforming a stream
    that already has the caps costs one function call per frame and step.

    .. marble::
        -a(48k,2ch,480)--b(48k,2ch,480)--|
        [ conform(Caps(16000, 1, 512))   ]
        ---------------A(16k,1ch,512)----(B|)
    """
    from ._channels import channels
    from ._reframe import reframe
    from ._resample import resample

    steps: list[Callable[[Observable[AudioFrame]], Observable[AudioFrame]]] = []
    if caps.channels is not None:
        steps.append(channels(caps.channels))
    if caps.sample_rate is not None:
        steps.append(resample(caps.sample_rate))
    if caps.frame_size is not None:
        steps.append(reframe(caps.frame_size))

    return compose(*steps)
