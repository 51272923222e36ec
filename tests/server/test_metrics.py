"""``/metrics``: the series' names, types and help, their values, and prometheus-client's
multiprocess mode (several processes on one directory, summed; dead processes' gauges dropped)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from rxaudio.server import metrics as metrics_module
from rxaudio.server.metrics import LIMITS, MULTIPROC_ENV, ServerMetrics, mark_process_dead

# every family as /metrics has always exposed it: name -> (type, help)
EXPECTED = {
    "rxaudio_clients_connected": ("gauge", "Open WebSocket connections."),
    "rxaudio_sessions": ("gauge", "Live sessions, including ones in grace."),
    "rxaudio_outbound_queue_depth": ("gauge", "Events waiting in all outbound queues."),
    "rxaudio_outbound_queue_depth_max": ("gauge", "Deepest single outbound queue."),
    "rxaudio_sessions_in_grace": ("gauge", "Sessions waiting to be resumed."),
    "rxaudio_out_bytes": ("gauge", "Bytes of session files under --out."),
    "rxaudio_limit_reached_total": (
        "counter",
        "Times a resource limit refused or ended something (limit: which one).",
    ),
    "rxaudio_frames_processed_total": ("counter", "Audio frames fed to pipelines."),
    "rxaudio_samples_processed_total": ("counter", "Audio samples fed to pipelines."),
    "rxaudio_events_sent_total": ("counter", "Events written to WebSockets."),
    "rxaudio_events_dropped_total": (
        "counter",
        "Events dropped from full outbound queues (oldest first).",
    ),
    "rxaudio_protocol_errors_total": ("counter", "error events sent for bad input."),
    "rxaudio_utterances_total": ("counter", "Utterance WAV files written."),
    "rxaudio_frame_to_event_seconds": (
        "histogram",
        "Latency from an audio frame's arrival to the sending of an event it caused.",
    ),
    "rxaudio_vad_batch_size": ("histogram", "Streams scored per batched Silero call."),
    "rxaudio_reclaim_seconds": (
        "histogram",
        "Time the event loop spent giving ended sessions' memory back (a heap trim, and a full "
        "garbage collection when one is needed; every session waits meanwhile).",
    ),
    "rxaudio_reclaim_collections_total": (
        "counter",
        "Full garbage collections run because an ended session or connection was still alive "
        "(held by a reference cycle: worth reporting).",
    ),
    "rxaudio_redis_entries_written_total": (
        "counter",
        "Speech events and utterances written to the Redis stream (serve --redis).",
    ),
    "rxaudio_redis_entries_not_written_total": (
        "counter",
        "Entries for the Redis stream refused (buffer full) or lost (outage past --redis-retry).",
    ),
    "rxaudio_redis_entries_waiting": (
        "gauge",
        "Entries queued for the Redis stream, not yet written.",
    ),
    "rxaudio_redis_results_relayed_total": (
        "counter",
        "Worker results read from the results stream and sent to a session's clients.",
    ),
}


def _zero() -> float:
    return 0.0


def _values(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


@pytest.fixture
def no_multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh multiprocess directory; afterwards this process's files are closed and its
    series forgotten, and the environment is as before."""
    path = str(tmp_path / "metrics")
    monkeypatch.setenv(MULTIPROC_ENV, path)  # restored afterwards (ServerMetrics sets it too)
    yield path
    prometheus_client.values.close_all_multiprocess_files()  # type: ignore[no-untyped-call]
    metrics_module._shared.clear()


def test_a_fresh_exposition_lists_every_series_once(no_multiproc_env: None) -> None:
    text = ServerMetrics().render()
    assert text.endswith("\n")
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert {n: (types[n], helps[n]) for n in types} == EXPECTED
    assert len(re.findall(r"^# TYPE ", text, re.M)) == len(EXPECTED)
    values = _values(text)
    for limit in LIMITS:  # every limit shown from the start
        assert values[f'rxaudio_limit_reached_total{{limit="{limit}"}}'] == 0
    assert "_created" not in text
    for line in text.splitlines():  # every sample belongs to the family above it
        if not line.startswith("#"):
            assert any(line.startswith(name) for name in EXPECTED), line
    assert all(v == 0 for v in values.values())
    assert 'rxaudio_vad_batch_size_bucket{le="1"} 0' in text  # bounds as always: no "1.0"


def test_tally_counts_as_the_series_would(no_multiproc_env: None, metric: Any) -> None:
    """The hot path's tally (plain numbers) shows the same /metrics as counting each frame and
    observing each delay, as soon as anything reads the metrics (no round has to run)."""
    delays = (0.0, 0.0005, 0.001, 0.003, 0.02, 3.0, 0.25, 1e9)
    one, tallied = ServerMetrics(), ServerMetrics()
    for _ in range(3):
        one.frames.inc()
        one.samples.inc(512)
    one.events.inc(len(delays))
    for v in delays:
        one.latency.observe(v)
    t = tallied.tally
    t.frames, t.samples, t.events = 3, 3 * 512, len(delays)
    for v in delays:
        t.latency(v)
    assert _values(tallied.render()) == pytest.approx(_values(one.render()))
    assert metric(tallied, "rxaudio_frames_processed_total") == 3
    t.frames += 1  # counted after a read: read at once
    t.samples += 512
    assert metric(tallied, "rxaudio_samples_processed_total") == 4 * 512
    assert t.frames == t.samples == t.events == 0 and not any(t.buckets)


def test_values_after_counting(no_multiproc_env: None, metric: Any) -> None:
    state = {"clients": 2.0, "depth": 5.0}
    m = ServerMetrics(
        lambda: state["clients"],
        lambda: 3.0,
        lambda: 7.0,
        lambda: state["depth"],
        grace=lambda: 1.0,
        out_bytes=lambda: 4096.0,
    )
    m.frames.inc()
    m.frames.inc()
    m.samples.inc(1024)
    m.events.inc(3)
    m.dropped.inc()
    m.errors.inc()
    m.utterances.inc()
    m.limits.inc("connections")
    m.limits.inc("out_bytes", 2)
    for v in (0.0005, 0.001, 0.003, 0.02, 3.0):
        m.latency.observe(v)
    for n in (1, 3, 300):
        m.batch.observe(n)
    with pytest.raises(KeyError):
        m.limits.inc("no_such_limit")
    text = m.render()
    values = _values(text)
    assert values["rxaudio_frames_processed_total"] == 2
    assert "rxaudio_samples_processed_total 1024\n" in text  # integers without ".0"
    assert values["rxaudio_events_sent_total"] == 3
    assert values["rxaudio_events_dropped_total"] == 1
    assert values["rxaudio_protocol_errors_total"] == 1
    assert values["rxaudio_utterances_total"] == 1
    assert values['rxaudio_limit_reached_total{limit="connections"}'] == 1
    assert values['rxaudio_limit_reached_total{limit="out_bytes"}'] == 2
    assert values['rxaudio_limit_reached_total{limit="control_rate"}'] == 0
    # buckets cumulative (a value on a bound counts in it), then sum and count
    lat = "rxaudio_frame_to_event_seconds"
    assert values[f'{lat}_bucket{{le="0.001"}}'] == 2
    assert values[f'{lat}_bucket{{le="0.005"}}'] == 3
    assert values[f'{lat}_bucket{{le="0.025"}}'] == 4
    assert values[f'{lat}_bucket{{le="2.5"}}'] == 4
    assert values[f'{lat}_bucket{{le="+Inf"}}'] == 5
    assert values[f"{lat}_sum"] == pytest.approx(3.0245)
    assert values[f"{lat}_count"] == 5
    assert values['rxaudio_vad_batch_size_bucket{le="1"}'] == 1
    assert values['rxaudio_vad_batch_size_bucket{le="4"}'] == 2
    assert values['rxaudio_vad_batch_size_bucket{le="256"}'] == 2
    assert values['rxaudio_vad_batch_size_bucket{le="+Inf"}'] == 3
    assert values["rxaudio_vad_batch_size_sum"] == 304
    gauges = {
        "rxaudio_clients_connected": 2,
        "rxaudio_sessions": 3,
        "rxaudio_outbound_queue_depth": 7,
        "rxaudio_outbound_queue_depth_max": 5,
        "rxaudio_sessions_in_grace": 1,
        "rxaudio_out_bytes": 4096,
    }
    assert {k: values[k] for k in gauges} == gauges
    state.update(clients=4.0, depth=0.0)  # callables are read at every render
    values = _values(m.render())
    assert values["rxaudio_clients_connected"] == 4
    assert values["rxaudio_outbound_queue_depth_max"] == 0
    assert metric(m, "rxaudio_frame_to_event_seconds_count") == 5
    assert metric(m, "rxaudio_limit_reached_total", limit="out_bytes") == 2
    # each instance has its own registry: a second one starts at 0
    assert (
        _values(ServerMetrics(_zero, _zero, _zero, _zero).render())[
            "rxaudio_frames_processed_total"
        ]
        == 0
    )


def test_one_process_touches_neither_environment_nor_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # even with the variable set (inherited, say): without multiprocess_dir, values in memory
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)
    m = ServerMetrics(_zero, _zero, _zero, _zero)
    m.frames.inc()
    m.latency.observe(0.01)
    m.limits.inc("connections")
    assert _values(m.render())["rxaudio_frames_processed_total"] == 1
    assert dict(os.environ) == before
    assert list(tmp_path.iterdir()) == []


def _child(directory: str, frames: int, clients: float) -> None:
    """One worker process: counts, sets its gauges, writes them out, exits."""
    m = ServerMetrics(
        lambda: clients,
        lambda: 1.0,
        lambda: clients,
        lambda: clients,
        multiprocess_dir=directory,
    )
    m.frames.inc(frames)
    m.samples.inc(512 * frames)
    m.limits.inc("connections")
    m.latency.observe(0.003)
    m.refresh()


def test_multiprocess_sums_processes_and_drops_dead_ones_gauges(
    multiproc_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    pytestconfig: pytest.Config,
    metric: Any,
) -> None:
    # a spawned child imports _child from this module by name (tests.server.test_metrics)
    monkeypatch.syspath_prepend(str(pytestconfig.rootpath))
    parent = ServerMetrics(
        lambda: 1.0, lambda: 0.0, lambda: 0.0, lambda: 0.0, multiprocess_dir=multiproc_dir
    )
    parent.frames.inc(100)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_child, args=(multiproc_dir, 3, 2.0)),
        ctx.Process(target=_child, args=(multiproc_dir, 5, 4.0)),
    ]
    try:
        for p in children:
            p.start()
        for p in children:  # both started before either is reaped: two distinct pids
            p.join(120)  # a bound against a hung child, not a timing assertion
            assert p.exitcode == 0
    finally:
        for p in children:
            if p.is_alive():
                p.kill()
                p.join()
    a, b = children
    assert a.pid is not None and b.pid is not None
    assert {f"counter_{a.pid}.db", f"gauge_livesum_{b.pid}.db"} <= set(os.listdir(multiproc_dir))

    values = _values(parent.render())
    assert values["rxaudio_frames_processed_total"] == 108
    assert values["rxaudio_samples_processed_total"] == 512 * 8
    assert values['rxaudio_limit_reached_total{limit="connections"}'] == 2
    assert values['rxaudio_limit_reached_total{limit="request_timeout"}'] == 0
    assert values["rxaudio_frame_to_event_seconds_count"] == 2
    assert values['rxaudio_frame_to_event_seconds_bucket{le="0.0025"}'] == 0
    assert values['rxaudio_frame_to_event_seconds_bucket{le="0.005"}'] == 2
    # gauges: summed over the processes not marked dead (deepest queue: the maximum)
    assert values["rxaudio_clients_connected"] == 1 + 2 + 4
    assert values["rxaudio_sessions"] == 2
    assert values["rxaudio_outbound_queue_depth"] == 6
    assert values["rxaudio_outbound_queue_depth_max"] == 4

    mark_process_dead(b.pid, multiproc_dir)  # b's gauges go, its counts stay
    values = _values(parent.render())
    assert values["rxaudio_frames_processed_total"] == 108
    assert values["rxaudio_clients_connected"] == 1 + 2
    assert values["rxaudio_sessions"] == 1
    assert values["rxaudio_outbound_queue_depth_max"] == 2

    mark_process_dead(a.pid, multiproc_dir)
    values = _values(parent.render())
    assert values["rxaudio_frames_processed_total"] == 108
    assert values["rxaudio_frame_to_event_seconds_count"] == 2
    assert values["rxaudio_clients_connected"] == 1  # the parent's own
    assert values["rxaudio_outbound_queue_depth_max"] == 0
    assert metric(parent, "rxaudio_clients_connected") == 1


def _read_dir(path: str, name: str) -> float | None:
    """What another process's /metrics would read for ``name`` from the files alone."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return registry.get_sample_value(name)


async def test_the_server_keeps_its_gauges_current_in_the_shared_directory(
    server: Any, multiproc_dir: str
) -> None:
    async with server(metrics_dir=multiproc_dir) as client:
        ws = await client.ws_connect("/ws")
        # nothing asks this server's /metrics: only its once-a-second refresh writes the gauge
        for _ in range(600):
            if _read_dir(multiproc_dir, "rxaudio_clients_connected") == 1:
                break
            await asyncio.sleep(0.05)
        assert _read_dir(multiproc_dir, "rxaudio_clients_connected") == 1
        await ws.close()
    # shut down: the last refresh leaves no connection counted
    assert _read_dir(multiproc_dir, "rxaudio_clients_connected") == 0


def test_histogram_exposition() -> None:
    m = ServerMetrics()
    for v in (0.005, 0.05, 0.05, 0.5):
        m.latency.observe(v)
    text = m.render()
    lines = text.splitlines()
    name = "rxaudio_frame_to_event_seconds"
    assert f"# TYPE {name} histogram" in lines and text.endswith("\n")
    assert f'{name}_bucket{{le="0.0025"}} 0' in lines
    assert f'{name}_bucket{{le="0.005"}} 1' in lines  # a value on a bound counts in it
    assert f'{name}_bucket{{le="0.01"}} 1' in lines
    assert f'{name}_bucket{{le="0.05"}} 3' in lines  # cumulative
    assert f'{name}_bucket{{le="0.25"}} 3' in lines
    assert f'{name}_bucket{{le="0.5"}} 4' in lines
    assert f'{name}_bucket{{le="+Inf"}} 4' in lines
    assert f"{name}_sum 0.605" in lines
    assert f"{name}_count 4" in lines
