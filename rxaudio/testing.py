"""Test your own chains with marble diagrams in virtual time.

Example::

    from rxaudio.testing import frame, run_marbles
    from rxaudio.operators import gain

    out = run_marbles("-a-b-|", {"a": frame(0, 4, value=0.5), "b": frame(4, 4)}, gain(6.0))
    assert out.marbles() == "-x-x-|"           # one character per tick, x = a value
    assert [f.start for f in out.values] == [0, 4]
    assert out.completed

Each marble character is one tick of virtual time (``timespan``). ``run_marbles`` builds a cold
observable on a :class:`reactivex.testing.TestScheduler`, subscribes the chain at tick 0, runs
the scheduler (optionally disposing at ``dispose_at``) and records what came out. Frames hold
numpy arrays, which reactivex compares with ``==`` (ambiguous for arrays), so compare extracted
values (``out.values``) or use :func:`frames_close` rather than comparing notifications.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from reactivex import Observable
from reactivex.notification import OnCompleted, OnError, OnNext
from reactivex.observable.marbles import parse
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from .frames import AudioFrame

SUBSCRIBED = 100.0


def frame(
    start: int = 0,
    n: int = 4,
    *,
    value: float | None = None,
    sample_rate: int = 16000,
    channels: int = 1,
) -> AudioFrame:
    """A small test frame: constant ``value``, or a ramp ``start, start+1, ...`` scaled by 1e-4
    (so every sample is distinct and identifies its own index)."""
    if value is None:
        col = (np.arange(start, start + n, dtype=np.float64) * 1e-4).astype(np.float32)
    else:
        col = np.full(n, value, dtype=np.float32)
    return AudioFrame(np.repeat(col.reshape(-1, 1), channels, axis=1), sample_rate, start)


def ramp_frames(
    sizes: list[int], *, sample_rate: int = 16000, channels: int = 1
) -> list[AudioFrame]:
    """Consecutive ramp frames of the given sizes (a chunking of one continuous signal)."""
    out, start = [], 0
    for n in sizes:
        out.append(frame(start, n, sample_rate=sample_rate, channels=channels))
        start += n
    return out


@dataclass
class Event:
    """One recorded notification: tick (relative to subscription), kind N/E/C, payload."""

    tick: float
    kind: str
    value: Any = None


@dataclass
class MarbleResult:
    """What a chain emitted in virtual time."""

    events: list[Event] = field(default_factory=list)
    timespan: float = 1.0

    @property
    def values(self) -> list[Any]:
        """Payloads of the ``on_next`` notifications, in order."""
        return [e.value for e in self.events if e.kind == "N"]

    @property
    def ticks(self) -> list[float]:
        """Ticks of the ``on_next`` notifications."""
        return [e.tick for e in self.events if e.kind == "N"]

    @property
    def completed(self) -> bool:
        """Whether the chain completed."""
        return any(e.kind == "C" for e in self.events)

    @property
    def error(self) -> BaseException | None:
        """The error the chain ended with, if any."""
        for e in self.events:
            if e.kind == "E":
                return e.value  # type: ignore[no-any-return]  # payload of an OnError
        return None

    def marbles(self, name: Callable[[Any], str] = lambda _v: "x") -> str:
        """Render as a marble string: ``-`` per empty tick, ``name(v)`` per value, ``|``, ``#``;
        simultaneous events are grouped in parentheses."""
        by_tick: dict[int, list[str]] = {}
        for e in self.events:
            t = round(e.tick / self.timespan)
            sym = name(e.value) if e.kind == "N" else ("|" if e.kind == "C" else "#")
            by_tick.setdefault(t, []).append(sym)
        if not by_tick:
            return ""
        out, t = [], 0
        last = max(by_tick)
        while t <= last:
            syms = by_tick.get(t)
            if syms is None:
                out.append("-")
            elif len(syms) == 1:
                out.append(syms[0])
            else:
                out.append("(" + "".join(syms) + ")")
            t += 1
        return "".join(out)


def run_marbles(
    source: str,
    lookup: Mapping[str, Any],
    chain: Callable[[Observable[Any]], Observable[Any]] | None = None,
    *,
    error: Exception | None = None,
    timespan: float = 1.0,
    dispose_at: float | None = None,
    scheduler: TestScheduler | None = None,
) -> MarbleResult:
    """Feed a cold marble source through ``chain`` in virtual time and record the output.

    Parameters
    ----------
    source
        Marble string, e.g. ``"-a-b-|"`` (``#`` for an error, ``(a,b)`` for simultaneous values;
        names may be several characters, so a group needs commas, and takes its characters' ticks).
    lookup
        Values of the marble names.
    chain
        The operator (or composed chain) under test; ``None`` records the source itself.
    error
        Exception for ``#``.
    timespan
        Virtual seconds per marble character.
    dispose_at
        Tick at which the subscription is disposed (default: never).
    """
    sched = scheduler or TestScheduler()
    names: dict[str | float, Any] = {k: v for k, v in lookup.items()}
    messages = parse(source, timespan=timespan, lookup=names, error=error)
    records: list[Recorded[Any]] = []
    for t, n in messages:
        # TestScheduler works in float ticks; ReactiveTest's stubs say int
        ticks = cast(int, float(t) if isinstance(t, int | float) else t.total_seconds())
        if isinstance(n, OnNext):
            records.append(ReactiveTest.on_next(ticks, n.value))
        elif isinstance(n, OnError):
            records.append(ReactiveTest.on_error(ticks, n.exception))
        else:
            records.append(ReactiveTest.on_completed(ticks))
    cold = sched.create_cold_observable(records)
    obs: Observable[Any] = chain(cold) if chain is not None else cold
    disposed = SUBSCRIBED + (dispose_at * timespan if dispose_at is not None else 1e9)
    observer = sched.start(lambda: obs, created=0.0, subscribed=SUBSCRIBED, disposed=disposed)
    result = MarbleResult(timespan=timespan)
    for rec in observer.messages:
        tick = float(rec.time) - SUBSCRIBED
        v = rec.value
        if isinstance(v, OnNext):
            result.events.append(Event(tick, "N", v.value))
        elif isinstance(v, OnError):
            result.events.append(Event(tick, "E", v.exception))
        elif isinstance(v, OnCompleted):
            result.events.append(Event(tick, "C"))
    return result


def frames_close(a: AudioFrame, b: AudioFrame, *, atol: float = 1e-6) -> bool:
    """Same start, rate, shape and samples within ``atol``."""
    return (
        a.start == b.start
        and a.sample_rate == b.sample_rate
        and a.samples.shape == b.samples.shape
        and bool(np.allclose(a.samples, b.samples, atol=atol))
    )


def concat(frames: list[AudioFrame]) -> np.ndarray:
    """Concatenate frames' samples into one ``(n, channels)`` array."""
    if not frames:
        return np.zeros((0, 1), dtype=np.float32)
    return np.concatenate([f.samples for f in frames])


def collect(observable: Observable[Any], timeout: float = 30.0) -> list[Any]:
    """Subscribe, wait for completion (re-raising an error) and return the values.

    For synchronous sources this returns at once; for threaded sources (``realtime=True``,
    the microphone with ``take``) it blocks up to ``timeout`` seconds.
    """
    import threading

    values: list[Any] = []
    done = threading.Event()
    err: list[BaseException] = []

    def on_error(e: Exception) -> None:
        err.append(e)
        done.set()

    sub = observable.subscribe(values.append, on_error, done.set)
    if not done.wait(timeout):
        sub.dispose()
        raise TimeoutError(f"collect: the stream did not complete within {timeout} s")
    if err:
        raise err[0]
    return values
