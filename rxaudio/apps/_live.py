"""Shared by ``record`` and ``run``: a live source, a level meter and a WAV file, stopped cleanly.

:func:`record_live` publishes the source once (so a microphone opens once), feeds one branch
into the level meter and one into :func:`~rxaudio.sinks.to_wav`, and waits until the WAV branch
completes (``seconds`` reached, or the source ended), the source fails, or the user stops it
(Ctrl-C / SIGTERM). Every way out disposes the chain, and disposing ``to_wav`` finalizes the
file, so the WAV on disk is always complete and valid.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from reactivex import Observable
from reactivex import operators as ops

from ..errors import ConfigError
from ..frames import AudioFrame, FileReceipt, LevelFrame
from ._signals import stop_signals

_FLOOR_DB = -60.0  # left end of the meter bar


@dataclass
class RecordResult:
    """What a live recording wrote and why it stopped."""

    path: str
    samples: int
    sample_rate: int | None
    channels: int | None
    stopped_by: str  # "completed", "SIGINT", "SIGTERM", "error"
    error: Exception | None = None  # what ended the chain, when it failed

    @property
    def seconds(self) -> float:
        """Duration written, in seconds."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0


class LevelMeter:
    """Renders :class:`LevelFrame` s as a meter on a text stream.

    On a terminal: one line rewritten in place (``\\r``) about ten times a second. Otherwise
    (a pipe, a log file): a plain line once a second. Intervals are counted in samples, not
    wall-clock time, so the meter shows the audio's own time.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = 0.1 if self.tty else 1.0
        self._next_end: int | None = None
        self._rms_sum = 0.0
        self._n = 0
        self._peak = -math.inf
        self.lines = 0
        self._dirty = False
        self._last: tuple[int, int] | None = None

    def update(self, lv: LevelFrame) -> None:
        """Accumulate one level frame; draw when an interval of audio is complete."""
        if self._next_end is None:
            self._next_end = lv.start + round(self.interval * lv.sample_rate)
        n = lv.end - lv.start
        self._rms_sum += n * 10.0 ** (lv.rms_db / 10.0)
        self._n += n
        self._peak = max(self._peak, lv.peak_db)
        if lv.end >= self._next_end:
            rms = 10.0 * math.log10(max(self._rms_sum / max(self._n, 1), 1e-12))
            self.draw(lv.end / lv.sample_rate, rms, self._peak)
            self._next_end += round(self.interval * lv.sample_rate)
            self._rms_sum, self._n, self._peak = 0.0, 0, -math.inf
        self._last = (lv.end, lv.sample_rate)

    def draw(self, t: float, rms_db: float, peak_db: float) -> None:
        """Write one meter reading."""
        clock = f"{int(t // 60):02d}:{t % 60:04.1f}"
        if self.tty:
            width = 30
            fill = round(width * min(max((rms_db - _FLOOR_DB) / -_FLOOR_DB, 0.0), 1.0))
            bar = "#" * fill + "-" * (width - fill)
            self.stream.write(f"\r{clock} [{bar}] rms {rms_db:6.1f} dBFS  peak {peak_db:6.1f}")
            self._dirty = True
        else:
            self.stream.write(f"level {clock} rms {rms_db:.1f} dBFS peak {peak_db:.1f} dBFS\n")
        self.stream.flush()
        self.lines += 1

    def close(self) -> None:
        """Draw what is left of the last interval; end the in-place line."""
        if self._n and self._last is not None:
            rms = 10.0 * math.log10(max(self._rms_sum / self._n, 1e-12))
            self.draw(self._last[0] / self._last[1], rms, self._peak)
            self._rms_sum, self._n, self._peak = 0.0, 0, -math.inf
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False


def limit_seconds(
    seconds: float | None,
) -> Callable[[Observable[AudioFrame]], Observable[AudioFrame]]:
    """Keep the first ``seconds`` of audio (cut inside the last frame), then complete."""
    if seconds is None:
        return lambda source: source
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"--seconds must be a positive number, got {seconds!r}")

    def _limit(source: Observable[AudioFrame]) -> Observable[AudioFrame]:
        def cut(frame: AudioFrame) -> AudioFrame:
            n = round(seconds * frame.sample_rate)
            if frame.end <= n:
                return frame
            return frame.with_samples(frame.samples[: n - frame.start])

        def more(frame: AudioFrame) -> bool:
            return frame.end < round(seconds * frame.sample_rate)

        return source.pipe(ops.take_while(more, inclusive=True), ops.map(cut))

    return _limit


def record_live(
    source: Observable[AudioFrame],
    path: str,
    *,
    seconds: float | None = None,
    subtype: str | None = None,
    meter: LevelMeter | None = None,
    on_start: Callable[[], None] | None = None,
) -> RecordResult:
    """Record ``source`` into the WAV ``path`` with a level meter until done or stopped.

    ``subtype`` is the ``wav`` sink's (none: its default). ``on_start`` is called once the
    options are validated and the output is known to be writable, just before the source
    starts. Options that are wrong raise at once. If the chain
    fails while running (device, file or format problems: a
    :class:`~rxaudio.errors.RxAudioError`), the file is finalized with everything before the
    failure and the result carries the error in ``error`` for the caller to report.
    """
    from ..pipeline import registry

    limit = limit_seconds(seconds)
    # the wav sink validates the directory before anything opens
    sink = registry.make("wav", path=path, **({} if subtype is None else {"subtype": subtype}))
    stop = threading.Event()
    why: list[str] = []
    errors: list[Exception] = []
    receipts: list[FileReceipt] = []

    def fail(exc: Exception) -> None:
        errors.append(exc)
        stop.set()

    def done() -> None:
        stop.set()

    published = source.pipe(limit, ops.publish())
    subs: list[Any] = []
    # SIGINT/SIGTERM only record a stop request (polled below) from before anything is
    # subscribed: no KeyboardInterrupt can land between a subscription and its dispose, and no
    # handler sets ``stop`` itself (Event.set from a handler can deadlock against this thread's
    # own stop.wait); a second signal while the file is finalized is a no-op
    with stop_signals() as sigs:
        try:
            if meter is not None:
                subs.append(published.pipe(registry.make("level")).subscribe(meter.update, fail))
            subs.append(published.pipe(sink).subscribe(receipts.append, fail, done))
            if on_start is not None and sigs.name is None:
                on_start()
            if sigs.name is None:
                subs.append(published.connect())
            while sigs.name is None and not stop.wait(0.1):
                pass
        except KeyboardInterrupt:  # off the main thread no handler is ours: Python's own
            why.append("SIGINT")
        finally:
            for sub in reversed(subs):
                sub.dispose()
            if meter is not None:
                meter.close()
        if sigs.name is not None:
            why.append(sigs.name)
    if receipts and not errors:
        r = receipts[-1]
        if r.reason == "empty":  # the source held no audio: to_wav wrote no file
            return RecordResult("", 0, None, None, "completed")
        return RecordResult(r.path, r.samples, r.sample_rate, r.channels, "completed")
    # stopped by a signal or an error: to_wav finalized the file on dispose; read what it holds
    result = RecordResult("", 0, None, None, "error" if errors else why[0] if why else "completed")
    result.error = errors[0] if errors else None
    if os.path.exists(path):
        import soundfile as sf

        info = sf.info(path)
        result.path, result.samples = path, int(info.frames)
        result.sample_rate, result.channels = int(info.samplerate), int(info.channels)
    return result


def describe(result: RecordResult) -> str:
    """One line saying what was written."""
    if not result.path:
        return "no audio arrived; no file written"
    fmt = f"{result.sample_rate} Hz, {result.channels} ch" if result.sample_rate else ""
    how = {"completed": "", "error": " (stopped by an error)"}.get(
        result.stopped_by, f" (stopped by {result.stopped_by})"
    )
    return f"wrote {result.path}: {result.seconds:.2f} s, {fmt}{how}"
