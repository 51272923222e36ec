"""testsrc: a generated test signal (GStreamer's ``audiotestsrc``): tones, noise, chirp, speech."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.props import Choices, Range, Unit, element
from ..dsp.testsignal import WAVES, TestSignal
from ..errors import ConfigError
from ..frames import AudioFrame
from ._emit import emit_blocks


class TestSource(Observable[AudioFrame]):
    """An Observable of a :class:`~rxaudio.dsp.testsignal.TestSignal`'s frames; ``caps`` is
    its format (rate, channels, block size). Build it with :func:`testsrc`."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(
        self,
        make: Callable[[], TestSignal],
        caps: Caps,
        total: int | None,
        *,
        realtime: bool,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self.make, self.caps, self.total = make, caps, total
        self.realtime, self._scheduler = realtime, scheduler
        super().__init__(self._subscribe_test)

    def _open(self) -> tuple[Iterator[AudioFrame], Callable[[], None]]:
        signal = self.make()  # fresh noise and speech state for every subscription
        block, rate, total = self.caps.frame_size, self.caps.sample_rate, self.total
        assert block is not None and rate is not None

        def gen() -> Iterator[AudioFrame]:
            pos = 0
            while total is None or pos < total:
                n = block if total is None else min(block, total - pos)
                yield AudioFrame(signal.span(pos, n), rate, pos)
                pos += n

        return gen(), lambda: None

    def _subscribe_test(
        self, observer: abc.ObserverBase[AudioFrame], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return emit_blocks(
            observer, self._scheduler or scheduler, self._open, realtime=self.realtime
        )


@element("testsrc", kind="source", produces=Caps())
def testsrc(
    *,
    wave: Annotated[str, Choices(WAVES)] = "sine",
    freq: Annotated[float, Range(0.0, 384_000.0), Unit("Hz")] = 440.0,
    volume: Annotated[float, Range(0.0, 1.0)] = 0.8,
    rate: Annotated[int, Range(1, 768_000), Unit("Hz")] = 16000,
    channels: Annotated[int, Range(1, 64)] = 1,
    num_buffers: Annotated[int, Range(-1)] = -1,
    samplesperbuffer: Annotated[int, Range(1), Unit("samples")] = 1024,
    seconds: Annotated[float | None, Range(0.0, lo_open=True), Unit("s")] = None,
    is_live: bool = False,
    seed: Annotated[int, Range(0)] = 0,
    scheduler: abc.SchedulerBase | None = None,
) -> TestSource:
    """Generate a test signal: a tone, noise, silence, a chirp or a speech-like burst pattern.

    GStreamer's ``audiotestsrc`` (also accepted by that name in launch strings), with its
    property names (``wave``, ``freq``, ``volume``, ``num-buffers``, ``samplesperbuffer``,
    ``is-live``); the format is set here (``rate``, ``channels``) rather than by a caps filter.
    The same options give the same samples, in any block size: noise is drawn from a generator
    seeded with ``seed``, everything else is a function of the sample index. Without
    ``num_buffers`` or ``seconds`` it never ends (stop it with Ctrl-C, or dispose).

    .. marble::
        testsrc(wave="sine", samplesperbuffer=1024, num_buffers=3)
        (ABC|)      A.start=0, B.start=1024, C.start=2048

    Parameters
    ----------
    wave
        ``sine``, ``square``, ``white-noise``, ``pink-noise``, ``silence``, ``chirp`` (a linear
        sweep from ``freq`` to 0.45 times ``rate``, every second) or ``speech`` (bursts of 0.6
        to 2.4 s of voiced syllables at about 90 Hz pitch, 0.6 to 1.2 s of silence between them,
        the first after 0.5 s; Silero, WebRTC and energy VAD call the bursts speech).
    freq
        Frequency of ``sine`` and ``square``; where ``chirp`` starts.
    volume
        Peak amplitude (noise: the largest sample; ``speech``: each burst's peak).
    rate
        Sample rate.
    channels
        Channel count (tones on every channel alike, noise independent per channel).
    num_buffers
        Frames to emit, then end (-1: no limit).
    samplesperbuffer
        Samples per frame.
    seconds
        Audio to emit, then end (the last frame may be shorter; none: no limit).
    is_live
        Pace the frames at the audio's own rate, as a microphone would deliver them.
    seed
        Seed of the noise and of the speech pattern.
    scheduler
        Scheduler to emit on (default: current thread, or a new thread when ``is_live``).
    """
    totals = []
    if num_buffers >= 0:
        totals.append(num_buffers * samplesperbuffer)
    if seconds is not None:
        totals.append(round(seconds * rate))
        if totals[-1] == 0:
            raise ConfigError(f"testsrc: seconds={seconds} is less than one sample at {rate} Hz")
    total = min(totals) if totals else None

    def make() -> TestSignal:
        return TestSignal(wave, rate, channels, freq, volume, seed)

    caps = Caps(rate, channels, samplesperbuffer)
    return TestSource(make, caps, total, realtime=is_live, scheduler=scheduler)


testsrc.__test__ = False  # type: ignore[attr-defined]  # pytest must not collect it as a test
