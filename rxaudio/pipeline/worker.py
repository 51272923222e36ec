"""A worker over a Redis stream: a launch string that starts with ``redis_src``, run per entry.

``StreamWorker("redis_src stream=s group=g ! mfcc ! features location=out/{id}.npz")`` reads
the stream through the group (:class:`~rxaudio.sources.StreamReader`) and, for every entry,
builds the pipeline afresh with ``{id}`` replaced by the entry's id, feeds it the entry's
item and waits until every branch has ended (each sink's file final, its receipt out). Only
then is the entry acknowledged, in one transaction with its results: every item the
pipeline's branch ends emitted (receipts, or the items of a branch that ends in an operator),
one entry each in the results stream, carrying ``source_id`` (the entry's id) and the
entry's ``session`` and utterance ``id`` when it had them. A worker killed mid-entry leaves
the entry pending; another claims it and runs it again, and since files are named by entry id
the second run overwrites the first: every entry's output exists once.

A pipeline whose files would have the same names for every entry is refused before any
entry is read: each entry's run would replace the last one's files while every entry was
acknowledged. Elements declare the options that name what they write
(:attr:`~rxaudio.core.props.ElementInfo.writes`: a file sink's ``location``, ``wavdir``'s
folder and ``stem``), and one of them must hold ``{id}``. (``wavdir`` is not given names of its
own per entry: its numbering and its label files start afresh with every run, so only a name
from the entry keeps them apart, and the user should see where each entry's files go.)

Results are written once per entry: the ack is conditional (:meth:`StreamReader.ack`), so an
entry run twice at once (two live workers under one consumer name, an entry claimed from a
worker that was slow rather than dead) gets the first finisher's results only; the other
counts it in ``duplicates``.

An entry whose decoding or pipeline fails (or takes longer than ``entry_timeout_s``) goes to
the dead-letter stream with the reason, and the worker goes on: a worker stops only for its own
faults (Redis gone for longer than ``retry_s``, a bad pipeline), never for an entry's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import reactivex as rx

from ..errors import ConfigError
from ..io.streams import results_stream
from ..sinks import to_json, to_record
from ..sources import RedisSource, StreamEntry, StreamReader
from ..sources._redis import ReaderStats
from .launch import LaunchError, Output, Pipeline, parse_launch

ID_FIELD = "{id}"


@dataclass
class WorkerStats:
    """What a worker has done: its reader's counts plus its own."""

    reader: ReaderStats
    failed: int = 0
    """Entries whose pipeline failed or timed out (moved to the dead-letter stream)."""
    busy_s: float = 0.0
    """Seconds spent running entries' pipelines."""
    last_s: float = 0.0
    """How long the last entry took."""

    def line(self) -> str:
        """One status line."""
        r = self.reader
        lag = "?" if r.lag is None else str(r.lag)
        return (
            f"entries {r.acked} acked · {r.redelivered} redelivered · {r.dead} dead "
            f"({self.failed} failed) · {r.skipped} skipped · {r.duplicates} duplicates · "
            f"results {r.results} · "
            f"pending {r.pending} · lag {lag} · last {self.last_s:.2f} s"
        )


def _with_id(value: str) -> str:
    """``value`` with ``{id}`` in it: before a file's extension, or as a folder's last part."""
    head, ext = os.path.splitext(value)
    if ext and not value.endswith(("/", os.sep)):
        return f"{head}-{ID_FIELD}{ext}"
    return value.rstrip("/" + os.sep) + "/" + ID_FIELD


def _check_output(out: Output, text: str) -> None:
    """Refuse an element whose files would have the same names for every entry."""
    if any(ID_FIELD in value for _, value in out.options):
        return
    key, value = out.options[0]
    others = ", ".join(f"{k}=" for k, _ in out.options[1:])
    more = f" (or in {others})" if others else ""
    raise LaunchError(
        f"{out.element} {key}={value} names the same files for every entry, so each entry's "
        f"output would replace the last one's; put {ID_FIELD} (the entry's id) in it{more}: "
        f"{key}={_with_id(value)}",
        text,
        out.pos,
    )


class StreamWorker:
    """Runs a ``redis_src ! ...`` launch string once per entry (see the module's docs).

    Parameters
    ----------
    text
        The launch string; its source must be ``redis_src``. ``{id}`` anywhere in it (a
        sink's location) becomes the entry's id.
    results
        The stream the results go to; none: ``<stream>:results``; ``""``: no results.
    entry_timeout_s
        How long one entry's pipeline may run before it counts as failed.
    """

    def __init__(
        self, text: str, *, results: str | None = None, entry_timeout_s: float = 600.0
    ) -> None:
        if entry_timeout_s <= 0:
            raise ConfigError(f"worker: entry_timeout_s must be > 0, got {entry_timeout_s}")
        pipeline = parse_launch(text)  # every mistake reported now, with a caret
        if not isinstance(pipeline.source, RedisSource):
            raise LaunchError(
                f"a worker's pipeline starts with redis_src, not {pipeline.source_label}",
                text,
                len(text) - len(text.lstrip()),
            )
        for out in pipeline.outputs:
            _check_output(out, text)
        self.text = text
        self.source = pipeline.source
        cfg = self.source.config
        self.results = results_stream(cfg.stream) if results is None else results
        self.entry_timeout_s = entry_timeout_s
        self.reader: StreamReader = self.source.reader()
        self.stats = WorkerStats(self.reader.stats)

    def open(self) -> None:
        """Connect (a :class:`~rxaudio.errors.SourceError` when Redis cannot be reached)."""
        self.reader.open()

    def close(self) -> None:
        """Drop the connection."""
        self.reader.close()

    def run(
        self,
        stop: threading.Event,
        *,
        on_entry: Callable[[StreamEntry], None] | None = None,
        max_entries: int | None = None,
    ) -> WorkerStats:
        """Handle entries until ``stop`` is set (the entry in hand is finished and acked
        first) or ``max_entries`` were handled; ``on_entry`` is called after each."""
        if self.reader.client is None:
            self.open()
        handled = 0
        try:
            while not stop.is_set():
                if max_entries is not None and handled >= max_entries:
                    break
                block = min(self.source.config.block_ms, 250)  # see stop within a quarter second
                for e in self.reader.poll(block_ms=block):
                    self.handle(e)
                    handled += 1
                    if on_entry is not None:
                        on_entry(e)
                    if stop.is_set():
                        break  # any others fetched stay pending: read back or claimed later
            self.reader.refresh()
        finally:
            self.close()
        return self.stats

    def handle(self, entry: StreamEntry) -> None:
        """Run the pipeline over one entry; ack it with its results, or dead-letter it."""
        started = time.monotonic()
        try:
            outputs = self.run_entry(entry)
            results = [self._result(entry, o) for o in outputs] if self.results else []
        except Exception as exc:  # the entry's fault (or its pipeline's): never the worker's end
            self.stats.failed += 1
            self.reader.dead(
                entry.id,
                entry.fields,
                f"the pipeline failed on this entry: {type(exc).__name__}: {exc}",
            )
        else:
            self.reader.ack(entry.id, results, to=self.results)
        self.stats.last_s = time.monotonic() - started
        self.stats.busy_s += self.stats.last_s

    def run_entry(self, entry: StreamEntry) -> list[Any]:
        """Run the pipeline over one entry (no Redis involved); return what its branch ends
        emitted. Raises what the pipeline raised, or TimeoutError."""
        built = parse_launch(self.text.replace(ID_FIELD, entry.id))
        pipeline = Pipeline(
            built.text, rx.of(entry.item), built.source_label, built.source_caps, built.branches
        )
        outputs: list[Any] = []
        done = threading.Event()
        failed: list[Exception] = []

        def on_error(exc: Exception) -> None:
            failed.append(exc)
            done.set()

        sub = pipeline.observable().subscribe(outputs.append, on_error, done.set)
        try:
            if not done.wait(self.entry_timeout_s):
                raise TimeoutError(f"it ran longer than entry_timeout_s={self.entry_timeout_s:g}")
        finally:
            sub.dispose()
        if failed:
            raise failed[0]
        return outputs

    def _result(self, entry: StreamEntry, item: Any) -> dict[str, Any]:
        rec = to_record(item)
        kind = rec.get("type")
        fields: dict[str, Any] = {
            "type": kind if isinstance(kind, str) else type(item).__name__,
            "data": to_json(rec),
            "source_id": entry.id,
            "producer": self.reader.consumer,
        }
        session = entry.fields.get("session")
        if session is not None:
            fields["session"] = session
        utt = entry.record.get("id")  # the session's utterance number, when it had one
        if utt is not None:
            fields["utterance"] = str(utt)
        return fields
