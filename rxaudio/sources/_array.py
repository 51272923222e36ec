"""from_array: stream an in-memory signal in blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import numpy as np
from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.props import Range, Unit, element
from ..errors import ConfigError, FormatError
from ..frames import AudioFrame
from ._emit import emit_blocks


@element("array", kind="source", produces=Caps())
def from_array(
    samples: Any,
    sample_rate: Annotated[int, Range(1), Unit("Hz")],
    *,
    block_size: Annotated[int, Range(1), Unit("samples")] = 1024,
    realtime: bool = False,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[AudioFrame]:
    """Stream an array as frames of ``block_size`` samples (the last may be shorter).

    Parameters
    ----------
    samples
        1-D (mono) or ``(n, channels)`` array; float in [-1, 1] or int16/int32 PCM.
    sample_rate
        The signal's sample rate.
    block_size
        Samples per emitted frame.
    realtime
        Pace the frames at the audio's own rate on the scheduler (default: a new thread).
    scheduler
        Scheduler to emit on (default: current thread, or a new thread when ``realtime``).

    .. marble::
        from_array(x[2500], 16000, block_size=1024)
        (ABC|)      A.start=0, B.start=1024, C.start=2048 (452 samples)

    Raises
    ------
    ConfigError
        Bad ``sample_rate``/``block_size``.
    FormatError
        Empty signal, NaN/inf, unsupported dtype or shape.
    """
    whole = AudioFrame.from_array(samples, sample_rate) if np.size(samples) else None
    if whole is None:
        raise FormatError("from_array: the signal is empty; give at least one sample")
    if whole.samples.ndim != 2:
        raise ConfigError("from_array: samples must be 1-D or (n, channels)")

    def open_blocks() -> tuple[Iterator[AudioFrame], Callable[[], None]]:
        data = whole.samples

        def gen() -> Iterator[AudioFrame]:
            for i in range(0, data.shape[0], block_size):
                yield AudioFrame(data[i : i + block_size], sample_rate, i)

        return gen(), lambda: None

    def subscribe(
        observer: abc.ObserverBase[AudioFrame], sched: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return emit_blocks(observer, scheduler or sched, open_blocks, realtime=realtime)

    return Observable(subscribe)
