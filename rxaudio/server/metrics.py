"""A small Prometheus text-format registry: counters, gauges and histograms.

No dependency on ``prometheus_client``: the server needs a handful of series and the text
exposition format (version 0.0.4) is a few lines.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# every limit that can be reached (``rxaudio_limit_reached_total{limit=...}``); see ServerConfig
LIMITS = (
    "connections",
    "request_timeout",
    "start_timeout",
    "control_rate",
    "sessions_per_minute",
    "grace_sessions",
    "session_bytes",
    "out_bytes",
)


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class Counter:
    """A monotonically increasing count."""

    def __init__(self, name: str, help: str) -> None:
        self.name, self.help, self.value = name, help, 0.0

    def inc(self, n: float = 1.0) -> None:
        """Add ``n`` (>= 0)."""
        self.value += n

    def render(self) -> list[str]:
        """Exposition lines."""
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} counter",
            f"{self.name} {_num(self.value)}",
        ]


class LabeledCounter:
    """Counters told apart by one label (``name{label="value"} n``); every value pre-declared."""

    def __init__(self, name: str, help: str, label: str, values: Sequence[str]) -> None:
        self.name, self.help, self.label = name, help, label
        self.values: dict[str, float] = dict.fromkeys(values, 0.0)

    def inc(self, value: str, n: float = 1.0) -> None:
        """Add ``n`` to the series ``value`` (which must be declared)."""
        self.values[value] += n

    def render(self) -> list[str]:
        """Exposition lines (every declared series, zeros included)."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for v, n in self.values.items():
            lines.append(f'{self.name}{{{self.label}="{v}"}} {_num(n)}')
        return lines


class Gauge:
    """A value read at scrape time from a callback, or set directly."""

    def __init__(self, name: str, help: str, fn: Callable[[], float] | None = None) -> None:
        self.name, self.help, self.fn, self.value = name, help, fn, 0.0

    def set(self, v: float) -> None:
        """Set the value (ignored when a callback provides it)."""
        self.value = v

    def render(self) -> list[str]:
        """Exposition lines."""
        v = self.fn() if self.fn is not None else self.value
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {_num(v)}",
        ]


class Histogram:
    """Cumulative buckets, sum and count; also keeps quantiles over a recent window."""

    def __init__(self, name: str, help: str, buckets: Sequence[float], window: int = 4096) -> None:
        self.name, self.help = name, help
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0
        self._recent: list[float] = []
        self._window = window
        self._pos = 0

    def observe(self, v: float) -> None:
        """Record one observation."""
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1
        if len(self._recent) < self._window:
            self._recent.append(v)
        else:
            self._recent[self._pos] = v
            self._pos = (self._pos + 1) % self._window

    def quantile(self, q: float) -> float:
        """Quantile ``q`` in [0, 1] of the most recent observations (NaN when none)."""
        if not self._recent:
            return math.nan
        s = sorted(self._recent)
        return s[min(len(s) - 1, int(q * len(s)))]

    def render(self) -> list[str]:
        """Exposition lines."""
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cum = 0
        for bound, c in zip(self.bounds, self.counts, strict=False):
            cum += c
            lines.append(f'{self.name}_bucket{{le="{_num(bound)}"}} {cum}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {_num(self.sum)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class ServerMetrics:
    """Every series the server exposes at ``/metrics``."""

    def __init__(
        self,
        clients: Callable[[], float],
        sessions: Callable[[], float],
        queue_depth: Callable[[], float],
        queue_depth_max: Callable[[], float],
        grace: Callable[[], float] = lambda: 0.0,
        out_bytes: Callable[[], float] = lambda: 0.0,
    ) -> None:
        p = "rxaudio_"
        self.clients = Gauge(p + "clients_connected", "Open WebSocket connections.", clients)
        self.sessions = Gauge(p + "sessions", "Live sessions, including ones in grace.", sessions)
        self.queue_depth = Gauge(
            p + "outbound_queue_depth", "Events waiting in all outbound queues.", queue_depth
        )
        self.queue_depth_max = Gauge(
            p + "outbound_queue_depth_max", "Deepest single outbound queue.", queue_depth_max
        )
        self.grace = Gauge(p + "sessions_in_grace", "Sessions waiting to be resumed.", grace)
        self.out_bytes = Gauge(p + "out_bytes", "Bytes of session files under --out.", out_bytes)
        self.limits = LabeledCounter(
            p + "limit_reached_total",
            "Times a resource limit refused or ended something (limit: which one).",
            "limit",
            LIMITS,
        )
        self.frames = Counter(p + "frames_processed_total", "Audio frames fed to pipelines.")
        self.samples = Counter(p + "samples_processed_total", "Audio samples fed to pipelines.")
        self.events = Counter(p + "events_sent_total", "Events written to WebSockets.")
        self.dropped = Counter(
            p + "events_dropped_total", "Events dropped from full outbound queues (oldest first)."
        )
        self.errors = Counter(p + "protocol_errors_total", "error events sent for bad input.")
        self.utterances = Counter(p + "utterances_total", "Utterance WAV files written.")
        self.latency = Histogram(
            p + "frame_to_event_seconds",
            "Latency from an audio frame's arrival to the sending of an event it caused.",
            LATENCY_BUCKETS,
        )
        self.batch = Histogram(
            p + "vad_batch_size", "Streams scored per batched Silero call.", BATCH_BUCKETS
        )

    def render(self) -> str:
        """The whole exposition, Prometheus text format."""
        lines: list[str] = []
        for m in (
            self.clients,
            self.sessions,
            self.queue_depth,
            self.queue_depth_max,
            self.grace,
            self.out_bytes,
            self.limits,
            self.frames,
            self.samples,
            self.events,
            self.dropped,
            self.errors,
            self.utterances,
            self.latency,
            self.batch,
        ):
            lines.extend(m.render())
        return "\n".join(lines) + "\n"
