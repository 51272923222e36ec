"""The server's Prometheus series (``GET /metrics``), kept by ``prometheus_client``.

Why prometheus-client: ``rxaudio serve --processes N`` runs N worker processes, and
``/metrics``, whichever worker answers it, must report all of them. Adding series up across
processes is prometheus-client's solved problem: in its multiprocess mode every process keeps
its values in memory-mapped files in one shared directory, and ``MultiProcessCollector`` merges
the files at scrape time (counters and histograms summed over every process that ever ran,
gauges over the live ones). This module once held its own small registry; it could not do that.

Two modes, chosen per :class:`ServerMetrics`:

* **one process** (``multiprocess_dir=None``): the series live in the instance's own
  ``CollectorRegistry``, values in memory. Nothing is read from or written to the environment
  or the disk, and any number of instances coexist in one process (the tests make many).
* **several processes** (``multiprocess_dir=DIR``): the values live in ``DIR`` (one set of
  files per process) and :meth:`ServerMetrics.render` merges every process's files. The
  directory should start empty (``rxaudio serve --processes N`` makes a fresh temporary one
  and removes it at exit). prometheus-client reads the directory from the environment
  variable ``PROMETHEUS_MULTIPROC_DIR`` when a value opens its file (at creation, and again in
  a forked child), so this mode sets that variable for the whole process: one directory per
  process. Instances on one directory in one process share their series (the files hold one
  set per process). When a worker exits, the supervisor calls :func:`mark_process_dead` so
  its live gauges stop counting (its counters stay in the sums).

The gauges read from callables (connections, sessions, queues, grace, bytes) cannot be read by
another process, so :meth:`ServerMetrics.refresh` copies every callable's value into its gauge;
``render`` does it first (one process is always exact) and the server calls it every second
when it runs as one of several processes (:class:`~rxaudio.server.hub.Hub`).

**Where prometheus-client's public API is used, and where it cannot be (and why).** Public:
one ``CollectorRegistry`` per server, ``Counter``/``Gauge``/``Histogram`` and their ``inc``,
``set`` and ``observe``, ``registry.collect()`` for the samples, ``MultiProcessCollector`` and
``mark_process_dead`` for ``--processes``. Three places go beyond it:

1. *The value class.* prometheus-client chooses in-memory or file-backed values once, at its
   import, from ``PROMETHEUS_MULTIPROC_DIR`` (module global ``values.ValueClass``), for every
   metric of the process. A server must keep its values in memory even when that variable is
   inherited, and one process holds in-memory servers beside file-backed ones (the tests, a
   ``BackgroundServer``); no public argument picks the class per metric, so :func:`_build` sets
   the global while it builds this module's series, under a lock (as prometheus-client's own
   tests do), and restores it.
2. *The exposition.* ``generate_latest`` writes bucket bounds as ``le="1.0"`` where this server
   has always written ``le="1"``, every value as ``1.0``, and a ``_created`` series per counter
   and histogram (switched off only process-wide); dashboards read these lines, so
   :meth:`ServerMetrics.render` writes them from ``registry.collect()``'s samples, family by
   family, as before.
3. *The hot path's batch add.* ``Histogram`` has no public way to add ``n`` observations to one
   bucket; :meth:`ServerMetrics.flush` adds a round's tallied counts to the histogram's bucket
   and sum values (``_buckets``, ``_sum``), which is what ``observe`` does one at a time.

Cost on the hot path (``frames.inc()``, ``latency.observe(s)``): docs/benchmarks.md, "Metrics
on the hot path". The busiest series (frames, samples and events processed, event latency) are
not touched per frame or per event: :class:`Tally` counts them in plain integers and adds them
to the series at :meth:`ServerMetrics.flush` (each batcher round, each :meth:`refresh`, so
``render`` is exact).
"""

from __future__ import annotations

import bisect
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client import values as value_classes

from .config import Limit

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# every limit that can be reached (``rxaudio_limit_reached_total{limit=...}``), declared with
# the ServerConfig field that sets it
LIMITS: tuple[str, ...] = tuple(Limit)


@dataclass(frozen=True)
class Series:
    """One exposed family: its name (counters' end in ``_total``), type and help text.

    ``mode`` is how a gauge's values from several processes combine (``livesum``: added up
    over the live processes; ``livemax``: their maximum). ``buckets`` are a histogram's upper
    bounds (``+Inf`` is added). A counter with ``label`` is told apart by that one label, each
    of ``values`` exposed from the start (at 0).
    """

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    mode: Literal["livesum", "livemax"] = "livesum"
    buckets: tuple[float, ...] = ()
    label: str = ""
    values: tuple[str, ...] = ()


_P = "rxaudio_"
CLIENTS = Series(_P + "clients_connected", "gauge", "Open WebSocket connections.")
SESSIONS = Series(_P + "sessions", "gauge", "Live sessions, including ones in grace.")
QUEUE_DEPTH = Series(_P + "outbound_queue_depth", "gauge", "Events waiting in all outbound queues.")
QUEUE_DEPTH_MAX = Series(
    _P + "outbound_queue_depth_max", "gauge", "Deepest single outbound queue.", mode="livemax"
)
GRACE = Series(_P + "sessions_in_grace", "gauge", "Sessions waiting to be resumed.")
OUT_BYTES = Series(_P + "out_bytes", "gauge", "Bytes of session files under --out.")
LIMIT_REACHED = Series(
    _P + "limit_reached_total",
    "counter",
    "Times a resource limit refused or ended something (limit: which one).",
    label="limit",
    values=LIMITS,
)
FRAMES = Series(_P + "frames_processed_total", "counter", "Audio frames fed to pipelines.")
SAMPLES = Series(_P + "samples_processed_total", "counter", "Audio samples fed to pipelines.")
EVENTS = Series(_P + "events_sent_total", "counter", "Events written to WebSockets.")
DROPPED = Series(
    _P + "events_dropped_total",
    "counter",
    "Events dropped from full outbound queues (oldest first).",
)
ERRORS = Series(_P + "protocol_errors_total", "counter", "error events sent for bad input.")
UTTERANCES = Series(_P + "utterances_total", "counter", "Utterance WAV files written.")
LATENCY = Series(
    _P + "frame_to_event_seconds",
    "histogram",
    "Latency from an audio frame's arrival to the sending of an event it caused.",
    buckets=LATENCY_BUCKETS,
)
BATCH = Series(
    _P + "vad_batch_size",
    "histogram",
    "Streams scored per batched Silero call.",
    buckets=BATCH_BUCKETS,
)
RECLAIM = Series(
    _P + "reclaim_seconds",
    "histogram",
    "Time the event loop spent giving ended sessions' memory back (a heap trim, and a full "
    "garbage collection when one is needed; every session waits meanwhile).",
    buckets=PAUSE_BUCKETS,
)
RECLAIM_COLLECTIONS = Series(
    _P + "reclaim_collections_total",
    "counter",
    "Full garbage collections run because an ended session or connection was still alive "
    "(held by a reference cycle: worth reporting).",
)
REDIS_WRITTEN = Series(
    _P + "redis_entries_written_total",
    "counter",
    "Speech events and utterances written to the Redis stream (serve --redis).",
)
REDIS_NOT_WRITTEN = Series(
    _P + "redis_entries_not_written_total",
    "counter",
    "Entries for the Redis stream refused (buffer full) or lost (outage past --redis-retry).",
)
REDIS_WAITING = Series(
    _P + "redis_entries_waiting", "gauge", "Entries queued for the Redis stream, not yet written."
)
REDIS_RELAYED = Series(
    _P + "redis_results_relayed_total",
    "counter",
    "Worker results read from the results stream and sent to a session's clients.",
)
# every family, in exposition order
SERIES = (
    CLIENTS,
    SESSIONS,
    QUEUE_DEPTH,
    QUEUE_DEPTH_MAX,
    GRACE,
    OUT_BYTES,
    LIMIT_REACHED,
    FRAMES,
    SAMPLES,
    EVENTS,
    DROPPED,
    ERRORS,
    UTTERANCES,
    LATENCY,
    BATCH,
    RECLAIM,
    RECLAIM_COLLECTIONS,
    REDIS_WRITTEN,
    REDIS_NOT_WRITTEN,
    REDIS_WAITING,
    REDIS_RELAYED,
)

_Key = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted (label, value) pairs)


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


def _labels(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    # bucket bounds compared as numbers: prometheus-client writes le="1.0", this server le="1"
    return tuple(sorted((k, _num(float(v)) if k == "le" else v) for k, v in labels.items()))


def _rows(s: Series) -> list[tuple[str, _Key]]:
    """The exposition lines' left-hand sides of ``s`` (``name{labels}``) and their keys."""
    if s.kind == "histogram":
        rows = []
        for bound in (*s.buckets, math.inf):
            le = _num(bound)
            rows.append((f'{s.name}_bucket{{le="{le}"}}', (s.name + "_bucket", (("le", le),))))
        return [
            *rows,
            (s.name + "_sum", (s.name + "_sum", ())),
            (s.name + "_count", (s.name + "_count", ())),
        ]
    if s.label:
        return [(f'{s.name}{{{s.label}="{v}"}}', (s.name, ((s.label, v),))) for v in s.values]
    return [(s.name, (s.name, ()))]


_ROWS = {s.name: _rows(s) for s in SERIES}


class LabeledCounter:
    """A counter told apart by one label; every label value declared up front (exposed at 0)."""

    __slots__ = ("_children",)

    def __init__(self, counter: Counter, values: Sequence[str]) -> None:
        self._children = {v: counter.labels(v) for v in values}

    def inc(self, value: str, n: float = 1.0) -> None:
        """Add ``n`` (>= 0) to the series ``value`` (which must be declared)."""
        self._children[value].inc(n)


class _Instruments:
    """The prometheus-client objects of every series (values in memory or in mmap files)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        def gauge(s: Series) -> Gauge:
            return Gauge(s.name, s.help, registry=registry, multiprocess_mode=s.mode)

        def counter(s: Series) -> Counter:
            return Counter(s.name, s.help, (s.label,) if s.label else (), registry=registry)

        def histogram(s: Series) -> Histogram:
            return Histogram(s.name, s.help, registry=registry, buckets=s.buckets)

        self.clients = gauge(CLIENTS)
        self.sessions = gauge(SESSIONS)
        self.queue_depth = gauge(QUEUE_DEPTH)
        self.queue_depth_max = gauge(QUEUE_DEPTH_MAX)
        self.grace = gauge(GRACE)
        self.out_bytes = gauge(OUT_BYTES)
        self.limits = LabeledCounter(counter(LIMIT_REACHED), LIMIT_REACHED.values)
        self.frames = counter(FRAMES)
        self.samples = counter(SAMPLES)
        self.events = counter(EVENTS)
        self.dropped = counter(DROPPED)
        self.errors = counter(ERRORS)
        self.utterances = counter(UTTERANCES)
        self.latency = histogram(LATENCY)
        self.batch = histogram(BATCH)
        self.reclaim = histogram(RECLAIM)
        self.reclaim_collections = counter(RECLAIM_COLLECTIONS)
        self.redis_written = counter(REDIS_WRITTEN)
        self.redis_not_written = counter(REDIS_NOT_WRITTEN)
        self.redis_waiting = gauge(REDIS_WAITING)
        self.redis_relayed = counter(REDIS_RELAYED)


# prometheus-client picks a new metric's value class from the module global
# ``prometheus_client.values.ValueClass`` (chosen at its import from the environment; its own
# tests swap it the same way). It is swapped only while this module builds its series, under
# this lock (a metric another thread builds at that moment would get it too: none here).
_lock = threading.Lock()
_shared: dict[str, _Instruments] = {}  # multiprocess series of this process, by directory


def _build(value_class: Any, registry: CollectorRegistry | None) -> _Instruments:
    saved = value_classes.ValueClass
    value_classes.ValueClass = value_class
    try:
        return _Instruments(registry)
    finally:
        value_classes.ValueClass = saved


def _single(registry: CollectorRegistry) -> _Instruments:
    with _lock:  # values in memory, whatever the environment says
        return _build(value_classes.MutexValue, registry)


def _multiprocess(path: str) -> _Instruments:
    with _lock:
        found = _shared.get(path)
        if found is None:
            # the value class opens <type>_<pid>.db files in the directory the variable names
            os.environ[MULTIPROC_ENV] = path
            # (the multiprocess parts of prometheus-client are untyped: no-untyped-call)
            value_class = value_classes.MultiProcessValue()  # type: ignore[no-untyped-call]
            found = _shared[path] = _build(value_class, None)
        return found


def mark_process_dead(pid: int, multiprocess_dir: str) -> None:
    """Drop the live gauges of process ``pid``, which exited, from ``multiprocess_dir``.

    Its counters and histograms stay in the sums. The supervisor of ``rxaudio serve
    --processes N`` calls it for every worker that exits.
    """
    # untyped in prometheus-client (no-untyped-call)
    multiprocess.mark_process_dead(pid, multiprocess_dir)  # type: ignore[no-untyped-call]


def _zero() -> float:
    """A gauge with nothing to read (a ServerMetrics outside a hub: tests, benchmarks)."""
    return 0.0


class Tally:
    """What the hot path counted since the last :meth:`ServerMetrics.flush`: plain numbers.

    ``frames``, ``samples`` and ``events`` add to their counters; :meth:`latency` files a
    delay into the latency histogram's bucket counts (the bucket ``observe`` would pick), and
    :meth:`sent` a send's worth of them.
    """

    __slots__ = ("bounds", "buckets", "events", "frames", "latency_sum", "samples")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.frames = 0
        self.samples = 0
        self.events = 0
        self.buckets = [0] * len(self.bounds)
        self.latency_sum = 0.0

    def latency(self, seconds: float) -> None:
        """One event's delay (seconds, >= 0), as ``latency.observe(seconds)`` would count it."""
        self.sent(seconds, (0.0,))

    def sent(self, now: float, arrivals: Sequence[float]) -> None:
        """Events sent at loop time ``now`` whose audio arrived at ``arrivals``: each one's
        delay (never below 0) counted as :meth:`latency` counts it, in one call per send."""
        buckets, bounds, total = self.buckets, self.bounds, self.latency_sum
        for arrival in arrivals:
            d = max(0.0, now - arrival)
            buckets[bisect.bisect_left(bounds, d)] += 1
            total += d
        self.latency_sum = total


class ServerMetrics:
    """Every series the server exposes at ``/metrics``.

    Parameters
    ----------
    clients, sessions, queue_depth, queue_depth_max, grace, out_bytes, redis_waiting
        Callables giving the gauges' values (read by :meth:`refresh`).
    multiprocess_dir
        ``None``: this instance's own registry, values in memory. A directory: values in
        prometheus-client's multiprocess files there, and :meth:`render` reports every process
        that uses the directory (see the module docstring).

    The hot path counts frames, samples, events and their latency in :attr:`tally` (plain
    numbers, added to the series by :meth:`flush`), and calls ``dropped.inc()``,
    ``errors.inc()``, ``utterances.inc()``, ``batch.observe(n)``, ``reclaim.observe(seconds)``,
    ``reclaim_collections.inc()`` and ``limits.inc(limit)`` (prometheus-client's objects).
    """

    def __init__(
        self,
        clients: Callable[[], float] = _zero,
        sessions: Callable[[], float] = _zero,
        queue_depth: Callable[[], float] = _zero,
        queue_depth_max: Callable[[], float] = _zero,
        grace: Callable[[], float] = _zero,
        out_bytes: Callable[[], float] = _zero,
        redis_waiting: Callable[[], float] = _zero,
        *,
        multiprocess_dir: str | None = None,
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        if multiprocess_dir is None:
            m = _single(self.registry)
        else:
            path = os.path.realpath(multiprocess_dir)
            os.makedirs(path, exist_ok=True)
            m = _multiprocess(path)
            # the registry render() reads: every process's files, merged at each collect
            # (untyped in prometheus-client: no-untyped-call)
            multiprocess.MultiProcessCollector(self.registry, path)  # type: ignore[no-untyped-call]
        self.clients, self.sessions, self.grace = m.clients, m.sessions, m.grace
        self.queue_depth, self.queue_depth_max = m.queue_depth, m.queue_depth_max
        self.out_bytes = m.out_bytes
        self.limits = m.limits
        self.frames, self.samples, self.events = m.frames, m.samples, m.events
        self.dropped, self.errors, self.utterances = m.dropped, m.errors, m.utterances
        self.latency, self.batch, self.reclaim = m.latency, m.batch, m.reclaim
        self.reclaim_collections = m.reclaim_collections
        self.redis_written, self.redis_not_written = m.redis_written, m.redis_not_written
        self.redis_relayed = m.redis_relayed
        # the hot path's counts, added to the series by flush()
        self.tally = Tally(m.latency._upper_bounds)
        self._callbacks: tuple[tuple[Gauge, Callable[[], float]], ...] = (
            (m.clients, clients),
            (m.sessions, sessions),
            (m.queue_depth, queue_depth),
            (m.queue_depth_max, queue_depth_max),
            (m.grace, grace),
            (m.out_bytes, out_bytes),
            (m.redis_waiting, redis_waiting),
        )

    def flush(self) -> None:
        """Add what :attr:`tally` counted to the series (frames, samples, events, latency)."""
        t = self.tally
        if t.frames:
            self.frames.inc(t.frames)
            self.samples.inc(t.samples)
            t.frames = t.samples = 0
        if t.events:
            self.events.inc(t.events)
            t.events = 0
        if t.latency_sum or any(t.buckets):
            # prometheus-client's Histogram keeps a value per bucket (not cumulative) and a
            # sum, which observe() adds to one at a time: the same values, added per bucket
            hist: Any = self.latency
            for i, n in enumerate(t.buckets):
                if n:
                    hist._buckets[i].inc(n)
                    t.buckets[i] = 0
            hist._sum.inc(t.latency_sum)
            t.latency_sum = 0.0

    def refresh(self) -> None:
        """Set every callback gauge from its callable (in multiprocess mode: into this
        process's files, where the other processes' ``render`` reads them), after adding
        what the hot path tallied (:meth:`flush`)."""
        self.flush()
        for gauge, fn in self._callbacks:
            gauge.set(fn())

    def _collect(self) -> dict[_Key, float]:
        return {
            (s.name, _labels(s.labels)): s.value
            for family in self.registry.collect()
            for s in family.samples
        }

    def render(self) -> str:
        """The whole exposition, Prometheus text format (version 0.0.4)."""
        self.refresh()
        found = self._collect()
        lines: list[str] = []
        for s in SERIES:
            lines.append(f"# HELP {s.name} {s.help}")
            lines.append(f"# TYPE {s.name} {s.kind}")
            for left, key in _ROWS[s.name]:
                # a line no process wrote yet (multiprocess mode) is 0
                lines.append(f"{left} {_num(found.get(key, 0.0))}")
        return "\n".join(lines) + "\n"
