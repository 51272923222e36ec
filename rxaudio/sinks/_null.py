"""null: count and discard (GStreamer's ``fakesink``), with a receipt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.props import element
from ..frames import AudioFrame, CountReceipt


@element("null", kind="sink", accepts=Caps(frame=object), produces=Caps(frame=CountReceipt))
def to_null() -> Callable[[Observable[Any]], Observable[CountReceipt]]:
    """Count and discard every item; emit a :class:`~rxaudio.frames.CountReceipt` at the end.

    GStreamer's ``fakesink`` (also accepted by that name in launch strings): a chain run for
    its counts alone, nothing written. The receipt says how many items came, and for audio how
    many samples and seconds; it is emitted when the input completes, and before its error when
    it fails (reason ``error``). The counts are per subscription.

    .. marble::
        -a--b--c--|
        [ to_null() ]
        ----------(R|)      R = CountReceipt(items=3, samples, sample_rate)
    """

    def _null(source: Observable[Any]) -> Observable[CountReceipt]:
        def subscribe(
            observer: abc.ObserverBase[CountReceipt], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            count = [0, 0, 0]  # items, samples, the last audio frame's rate (0: none yet)

            def on_next(item: Any) -> None:
                count[0] += 1
                if isinstance(item, AudioFrame):
                    count[1] += item.n
                    count[2] = item.sample_rate

            def receipt(reason: str) -> CountReceipt:
                return CountReceipt(count[0], count[1], count[2] or None, reason)

            def on_error(exc: Exception) -> None:
                observer.on_next(receipt("error"))
                observer.on_error(exc)

            def on_completed() -> None:
                observer.on_next(receipt("completed"))
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _null
