"""``rxaudio worker``: one member of a worker pool over a Redis stream.

Runs a pipeline that starts with ``redis_src`` once per entry of the stream, through a consumer
group, and acknowledges an entry only after its pipeline's sinks are done (see
:mod:`rxaudio.pipeline.worker`). Start as many as the work needs, on as many machines: the
group splits the entries between them, and a worker that dies leaves its entry to be claimed
by another. SIGTERM or Ctrl-C finish the entry in hand, acknowledge it, and exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline.worker import StreamWorker

HELP = "run a pipeline over every entry of a Redis stream, as one worker of a pool"
DEFAULT_PIPELINE = "redis_src emit=audio ! wav location={out}/{{id}}.wav"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio worker``."""
    from ..io.streams import DEFAULT_STREAM, DEFAULT_URL

    p.add_argument(
        "--redis", metavar="URL", default=DEFAULT_URL, help="where Redis is (default: %(default)s)"
    )
    p.add_argument(
        "--stream", default=DEFAULT_STREAM, help="the stream to read (default: %(default)s)"
    )
    p.add_argument(
        "--group", default="rxaudio-workers", help="the consumer group (default: %(default)s)"
    )
    p.add_argument(
        "--consumer",
        default=None,
        help="this worker's name in the group (default: host name and process id); a fixed "
        "name lets a restarted worker take back what it left pending",
    )
    p.add_argument(
        "--pipeline",
        metavar="LAUNCH",
        default=None,
        help='what to run per entry: a launch string from redis_src ("redis_src ! mfcc ! '
        'features location=out/{id}.npz") or the part after it ("mfcc ! ..."); {id} is the '
        "entry's id (default: each utterance as OUT/{id}.wav)",
    )
    p.add_argument(
        "--out",
        default="worker-out",
        help="the folder of the default pipeline's WAVs (default: %(default)s)",
    )
    p.add_argument(
        "--results",
        default=None,
        metavar="STREAM",
        help="where each entry's results go (default: STREAM:results; 'none': nowhere)",
    )
    p.add_argument(
        "--entry-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds one entry may take before it goes to the dead-letter stream",
    )
    p.add_argument(
        "--max-entries",
        type=int,
        default=None,
        metavar="N",
        help="stop after N entries (default: run until SIGTERM or Ctrl-C)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics",
    )
    p.add_argument(
        "--status-every",
        type=float,
        default=10.0,
        metavar="S",
        help="when stderr is no terminal, print the status line every S seconds (0: never)",
    )


def pipeline_text(args: argparse.Namespace) -> str:
    """The launch string, with the flags' url, stream, group and consumer on ``redis_src``."""
    from ..errors import ConfigError

    text = str(args.pipeline) if args.pipeline is not None else None
    if text is None:
        text = DEFAULT_PIPELINE.format(out=args.out)
    body = text.strip()
    if body.split(None, 1)[0:1] == ["redis_src"]:
        body = body[len("redis_src") :]
    else:
        body = " ! " + body
    given = {w.split("=", 1)[0] for w in body.split("!", 1)[0].split() if "=" in w}
    for name in ("url", "location", "stream", "group", "consumer"):
        if name in given:
            flag = "--redis" if name in ("url", "location") else f"--{name}"
            raise ConfigError(f"--pipeline sets redis_src {name}=; give it with {flag} instead")
    props = [f"url={args.redis}", f"stream={args.stream}", f"group={args.group}"]
    if args.consumer:
        props.append(f"consumer={args.consumer}")
    return "redis_src " + " ".join(props) + body


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now (the entry stays pending)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _serve_metrics(worker: StreamWorker, port: int) -> None:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    class WorkerCollector(Collector):
        def collect(self) -> Iterator[Any]:
            st = worker.stats
            r = st.reader
            for name, doc, v in (
                ("acked", "Entries handled and acknowledged", r.acked),
                ("redelivered", "Entries handled that had been delivered before", r.redelivered),
                ("dead", "Entries moved to the dead-letter stream", r.dead),
                ("skipped", "Entries of other types, acknowledged unread", r.skipped),
                ("results", "Result entries written", r.results),
                (
                    "duplicates",
                    "Entries finished after another worker had acknowledged them (nothing "
                    "written again)",
                    r.duplicates,
                ),
            ):
                yield CounterMetricFamily(f"rxaudio_worker_{name}", doc, value=v)
            yield GaugeMetricFamily(
                "rxaudio_worker_pending", "The group's delivered, unacknowledged entries", r.pending
            )
            yield GaugeMetricFamily(
                "rxaudio_worker_lag",
                "The group's entries not yet delivered (-1: unknown)",
                -1 if r.lag is None else r.lag,
            )

    reg = CollectorRegistry()
    reg.register(WorkerCollector())
    start_http_server(port, addr="127.0.0.1", registry=reg)


def run(args: argparse.Namespace) -> int:
    """Run the worker until stopped; 0 on a clean stop."""
    from ..errors import ConfigError
    from ..pipeline.worker import StreamWorker

    if args.pipeline is None:
        os.makedirs(args.out, exist_ok=True)
    if args.max_entries is not None and args.max_entries < 1:
        raise ConfigError(f"--max-entries must be >= 1, got {args.max_entries}")
    results = None if args.results is None else ("" if args.results == "none" else args.results)
    worker = StreamWorker(pipeline_text(args), results=results, entry_timeout_s=args.entry_timeout)
    worker.open()  # Redis away: one line now, before anything else is said
    if args.metrics_port is not None:
        _serve_metrics(worker, args.metrics_port)
    stop = threading.Event()
    tty = sys.stderr.isatty()
    cfg = worker.source.config
    print(
        f"rxaudio worker: {worker.reader.consumer} reading {cfg.stream} at {cfg.shown} "
        f"(group {cfg.group}); results to {worker.results or 'nowhere'}",
        file=sys.stderr,
        flush=True,
    )
    ticker = threading.Event()

    def status() -> None:
        every = 0.5 if tty else args.status_every
        if every <= 0:
            return
        while not ticker.wait(every):
            line = worker.stats.line()
            sys.stderr.write(("\r" + line) if tty else (line + "\n"))
            sys.stderr.flush()

    t = threading.Thread(target=status, name="rxaudio-worker-status", daemon=True)
    t.start()
    try:
        with _stop_on_signals(stop):
            worker.run(stop, max_entries=args.max_entries)
    finally:
        ticker.set()
        t.join()
    how = "a signal" if stop.is_set() else f"--max-entries {args.max_entries}"
    print(("\r" if tty else "") + worker.stats.line(), file=sys.stderr, flush=True)
    print(f"rxaudio worker: stopped by {how}", file=sys.stderr, flush=True)
    return 0
