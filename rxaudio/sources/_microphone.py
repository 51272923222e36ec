"""from_microphone: a real PortAudio input stream as an Observable.

Threads: PortAudio's callback thread only copies the block, stamps its sample index and puts
it into a bounded queue (counting overruns and drops). One pump thread per subscription takes
blocks from the queue and emits them: that is the single hop from the audio thread to the
processing side. The device opens on subscribe and closes on dispose (on a helper thread, with
a bounded wait); streams still open at interpreter exit are closed before PortAudio terminates.
"""

from __future__ import annotations

import atexit
import queue
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ..core.caps import Caps
from ..core.props import Range, Unit, element
from ..errors import ConfigError, DeviceError
from ..frames import AudioFrame

COMMON_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000)


@dataclass
class CaptureStats:
    """Counters of a microphone source (all subscriptions together)."""

    opens: int = 0
    closes: int = 0
    blocks: int = 0
    samples: int = 0
    overruns: int = 0  # PortAudio reported input overflow (audio lost inside PortAudio)
    status_flags: int = 0  # any PortAudio status flag
    dropped_blocks: int = 0  # our queue was full: the consumer is too slow
    max_queue_depth: int = 0
    errors: list[str] = field(default_factory=list)


class _OpenStream:
    """A started PortAudio stream, closed at most once, on a helper thread.

    PortAudio's abort can block when a device stalls, so closing runs on its own thread and
    waiters use timeouts. Every open stream is registered until closed: at interpreter exit
    :func:`close_open_streams` closes the rest and waits for closes in flight, because PortAudio
    deadlocks when ``Pa_Terminate`` (sounddevice's exit handler) races a stream's abort. That
    race happens whenever a chain completes on the pump thread (e.g. ``take``), the pump thread
    disposes the stream and the program exits at once.
    """

    def __init__(self, stream: Any, stats: CaptureStats) -> None:
        self.stream = stream
        self.stats = stats
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._closing = False
        _OPEN.add(self)

    def _close(self) -> None:
        try:
            self.stream.abort()
            self.stream.close()
        except Exception as exc:  # pragma: no cover - device vanished
            self.stats.errors.append(str(exc))
        self.stats.closes += 1
        _OPEN.discard(self)
        self.closed.set()

    def close(self, timeout: float) -> bool:
        """Start closing (once) and wait up to ``timeout`` s; True when closed."""
        with self._lock:
            start, self._closing = not self._closing, True
        if start:
            threading.Thread(target=self._close, name="rxaudio-mic-close", daemon=True).start()
        return self.closed.wait(timeout)


_OPEN: set[_OpenStream] = set()
_EXIT_HOOK: list[bool] = []


def close_open_streams() -> None:
    """Close every stream still open or closing (3 s wait each at most).

    Runs at interpreter exit before sounddevice terminates PortAudio; call it yourself before
    re-initialising PortAudio (``sounddevice._terminate()``/``_initialize()``).
    """
    for s in list(_OPEN):
        s.close(timeout=3.0)


def _sd() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise DeviceError(
            f"PortAudio is not available ({exc}); install it (Debian: apt-get install "
            "libportaudio2)"
        ) from exc
    if not _EXIT_HOOK:
        # registered after sounddevice's own exit handler, so it runs first (atexit is LIFO)
        atexit.register(close_open_streams)
        _EXIT_HOOK.append(True)
    return sd


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices: index, name, host API, max input channels, default and supported rates."""
    sd = _sd()
    out = []
    hostapis = sd.query_hostapis()
    for i, d in enumerate(sd.query_devices()):
        if d["max_input_channels"] <= 0:
            continue
        rates = _supported_rates(sd, i, 1)
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": hostapis[d["hostapi"]]["name"],
                "max_input_channels": int(d["max_input_channels"]),
                "default_samplerate": int(d["default_samplerate"]),
                "rates": rates,
            }
        )
    return out


def _supported_rates(sd: Any, device: int | str | None, channels: int) -> list[int]:
    """Which of :data:`COMMON_RATES` the device accepts for ``channels`` float32 channels."""
    rates = []
    for r in COMMON_RATES:
        try:
            sd.check_input_settings(device=device, samplerate=r, channels=channels, dtype="float32")
            rates.append(r)
        except Exception:
            pass
    return rates


def _describe(sd: Any, device: int | str | None) -> str:
    try:
        d = sd.query_devices(device, "input")
        return (
            f"device {d['name']!r} (max {d['max_input_channels']} input channels, "
            f"default {int(d['default_samplerate'])} Hz)"
        )
    except Exception:
        return f"device {device!r}"


def check_device(device: int | str | None, sample_rate: int, channels: int) -> None:
    """Raise :class:`DeviceError` naming the device and what it supports, if unusable."""
    sd = _sd()
    try:
        info = sd.query_devices(device, "input")
    except Exception as exc:
        names = [d["name"] for d in sd.query_devices() if d["max_input_channels"] > 0]
        which = "no default input device" if device is None else f"no input device {device!r}"
        raise DeviceError(
            f"{which} ({exc}); input devices here: {names or 'none'} (see `rxaudio devices`)"
        ) from exc
    most = int(info["max_input_channels"])
    if channels > most:  # say it plainly (PortAudio would print debug noise and a vaguer error)
        raise DeviceError(
            f"{_describe(sd, device)} cannot capture {channels} channels: it has at most "
            f"{most}; ask for {most} or fewer"
        )
    try:
        sd.check_input_settings(
            device=device, samplerate=sample_rate, channels=channels, dtype="float32"
        )
    except Exception as exc:
        rates = _supported_rates(sd, device, channels)
        supports = (
            f"it supports {', '.join(str(r) for r in rates)} Hz with {channels} channel(s)"
            if rates
            else f"it supports none of the common rates with {channels} channel(s)"
        )
        raise DeviceError(
            f"{_describe(sd, device)} cannot capture {channels} channel(s) at {sample_rate} Hz "
            f"({exc}); {supports}: use one of those, or capture at one and resample afterwards"
        ) from exc


class MicrophoneSource(Observable[AudioFrame]):
    """Observable over a PortAudio input stream; ``stats`` counts blocks, overruns and drops.

    Build it with :func:`from_microphone`, which checks the options.
    """

    def __init__(
        self,
        device: int | str | None,
        *,
        sample_rate: int,
        channels: int,
        block_size: int,
        latency: float | str,
        queue_blocks: int,
        check: bool,
    ) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.channels = channels
        self.block_size = block_size
        self.queue_blocks = queue_blocks
        self.latency = latency
        self.stats = CaptureStats()
        if check:
            check_device(device, self.sample_rate, self.channels)
        super().__init__(self._subscribe_mic)

    def _subscribe_mic(
        self, observer: abc.ObserverBase[AudioFrame], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        sd = _sd()
        stats = self.stats
        q: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(self.queue_blocks)
        index = 0
        rate = self.sample_rate

        def callback(indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
            nonlocal index
            if status:
                stats.status_flags += 1
                if status.input_overflow:
                    stats.overruns += 1
            start = index
            index += frames
            try:
                q.put_nowait((start, indata.copy()))
            except queue.Full:
                stats.dropped_blocks += 1

        stream = None
        try:
            stream = sd.InputStream(
                device=self.device,
                samplerate=rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block_size,
                latency=self.latency,
                callback=callback,
            )
            stream.start()
        except Exception as exc:
            if stream is not None:  # opened but would not start: release the device
                try:
                    stream.close(ignore_errors=True)
                except Exception:  # pragma: no cover - nothing more to release
                    pass
            observer.on_error(
                DeviceError(
                    f"cannot open {_describe(sd, self.device)} at {rate} Hz, "
                    f"{self.channels} channel(s): {exc}"
                )
            )
            return Disposable()
        handle = _OpenStream(stream, stats)
        stats.opens += 1
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                try:
                    item = q.get(timeout=0.05)
                except queue.Empty:
                    if not stream.active and not stop.is_set():
                        # PortAudio ended the stream on its own: device unplugged, sound
                        # server gone. Say so instead of going silent forever.
                        observer.on_error(
                            DeviceError(
                                f"{_describe(sd, self.device)} stopped delivering audio after "
                                f"{stats.samples} samples (unplugged, or the sound server "
                                "went away); check the device and subscribe again"
                            )
                        )
                        return
                    continue
                if item is None:
                    break
                stats.max_queue_depth = max(stats.max_queue_depth, q.qsize() + 1)
                start, block = item
                stats.blocks += 1
                stats.samples += block.shape[0]
                try:
                    frame = AudioFrame(block, rate, start)
                except Exception as exc:  # pragma: no cover - PortAudio gave an odd block
                    observer.on_error(DeviceError(f"bad block from PortAudio: {exc}"))
                    return
                try:
                    observer.on_next(frame)
                except Exception as exc:  # a subscriber raised: end the stream with it
                    observer.on_error(exc)
                    return

        worker = threading.Thread(target=pump, name="rxaudio-mic-pump", daemon=True)
        worker.start()

        def dispose() -> None:
            stop.set()
            # never hang the disposer on a stalled device: wait a bounded time
            handle.close(timeout=3.0)
            if threading.current_thread() is not worker:
                worker.join(timeout=1.0)

        return Disposable(dispose)


@element("mic", kind="source", produces=Caps())
def from_microphone(
    device: int | str | None = None,
    *,
    sample_rate: Annotated[int, Range(1), Unit("Hz")] = 16000,
    channels: Annotated[int, Range(1, 64)] = 1,
    block_size: Annotated[int, Range(1), Unit("samples")] = 512,
    latency: Annotated[float | str, Range(0.0, lo_open=True), Unit("s")] = "low",
    queue_blocks: Annotated[int, Range(1)] = 64,
    check: bool = True,
) -> MicrophoneSource:
    """Capture from a PortAudio input device as a never-completing stream of frames.

    Each PortAudio block becomes one :class:`AudioFrame` of ``block_size`` samples stamped with
    its sample index since the stream opened. Blocks the consumer cannot keep up with are
    dropped when the queue of ``queue_blocks`` is full and counted in ``stats.dropped_blocks``
    (the sample indices keep counting, so downstream sees the gap). Use ``share()`` to feed
    several chains from one device.

    .. marble::
        from_microphone(block_size=512)
        -A--B--C--D--...    A.start=0, B.start=512, ... every 32 ms at 16 kHz

    Parameters
    ----------
    device
        PortAudio input device: index or (part of) its name; none: the default input.
    sample_rate
        Capture rate in Hz (the device must support it; resample afterwards otherwise).
    channels
        Channels to capture.
    block_size
        Samples per PortAudio block, and so per frame.
    latency
        PortAudio's suggested latency: ``low``, ``high`` or seconds.
    queue_blocks
        Blocks queued for the consumer before new ones are dropped (and counted).
    check
        Check at once that the device exists and supports the rate and channels.

    Raises
    ------
    DeviceError
        No such device, PortAudio missing, or rate/channels unsupported, naming the device and
        the rates it supports (at construction when ``check``; as ``on_error`` if opening fails
        at subscribe). Also as ``on_error`` when a running stream stops delivering audio
        (device unplugged, sound server gone). An exception raised by a subscriber's
        ``on_next`` ends the stream with that error.
    ConfigError
        Bad rate, channels, block size, latency or queue size.
    """
    if isinstance(latency, str) and latency not in ("low", "high"):
        raise ConfigError(f"mic: latency must be 'low', 'high' or seconds > 0, got {latency!r}")
    return MicrophoneSource(
        device,
        sample_rate=sample_rate,
        channels=channels,
        block_size=block_size,
        latency=latency,
        queue_blocks=queue_blocks,
        check=check,
    )
