"""to_redis (``redis``): every item as one entry of a Redis stream, never blocking the caller.

Threads: ``on_next`` runs on the caller's thread (perhaps the audio thread), so it only turns
the item into its one dict form and JSON text and appends the entry to a bounded queue. One
writer thread per subscription connects, encodes utterance audio, XADDs the queued entries in
pipelined batches and takes them off the queue once the server has acknowledged them, so an
entry leaves the queue only written. While Redis is unreachable the entries wait, in order, and
the writer retries with back-off; an outage longer than ``retry_s`` or a full queue ends the
stream with a :class:`~rxaudio.errors.SinkError` that counts what was and was not written.
Connecting, back-off, the outage limit and what a failure means are the one Redis policy
(:mod:`rxaudio.io.redis`); the queue, its batches and the exactly-once bookkeeping are
:class:`EntryQueue`, which ``rxaudio serve --redis`` drives from its event loop instead of a
thread.

Exactly once: every entry carries its producer (one random id per subscription) and its
``seq``. A round trip cut off by a lost connection may or may not have been applied; before
anything is sent again the writer reads the entries added since the last one acknowledged
(``XRANGE``) and takes those of its own that arrived off the queue.

Timing here is wall-clock on purpose: back-off and outage limits are about a network peer,
not about the stream's sample time, and they live on the writer thread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable

from ..core.caps import Caps
from ..core.element import wrap_error
from ..core.props import Choices, Range, Unit, element
from ..errors import ConfigError, SinkError
from ..frames import StreamReceipt, Utterance
from ..io.redis import DEFAULT_TIMEOUT_S, GiveUp, Outage, connect, why
from ..io.streams import (
    AUDIO_FORMAT,
    AUDIO_MODES,
    DEFAULT_RETRY_S,
    DEFAULT_STREAM,
    DEFAULT_URL,
    check_url,
    flac_bytes,
    shown_url,
    text,
)
from ..io.wav import write_wav
from ._filesink import SinkOutput
from ._jsonl import to_json
from ._serialize import to_record

log = logging.getLogger("rxaudio.sinks")

BATCH_ENTRIES = 256
"""Most entries sent in one pipelined round trip..."""
BATCH_BYTES = 4 << 20
"""...and about the most bytes (at least one entry goes, however large)."""
SCAN = 1000
"""Entries per XRANGE page when looking for what a lost round trip wrote."""


@dataclass(frozen=True, slots=True)
class _Config:
    url: str
    shown: str  # the url for messages: a password replaced by ***
    stream: str
    maxlen: int | None
    audio: str
    audio_dir: str | None
    buffer: int
    retry_s: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class RedisEntry:
    """An item with more for its entry: extra ``fields`` (such as ``session``), and a
    ``record`` to send as ``data`` instead of the item's own dict form (the server sends its
    events, which add the session's numbering to an utterance's dict form). An Utterance
    ``item`` still carries its audio."""

    item: Any
    fields: dict[str, str] = field(default_factory=dict)
    record: dict[str, Any] | None = None


class WriteFailed(Exception):
    """Writing cannot go on: ``what`` failed, ``fix`` says what to do."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


@dataclass(slots=True)
class _Entry:
    seq: int
    fields: dict[str, str | bytes | int]
    utt: Utterance | None  # audio still to add (the writer adds it just before sending)
    size: int  # about the bytes it sends


@dataclass(slots=True)
class Scan:
    """Where :meth:`EntryQueue.reconcile` has got to: read ``start`` onwards next."""

    start: str
    count: int = SCAN
    newest: str | None = None
    found: set[int] = field(default_factory=set)
    done: bool = False


class EntryQueue:
    """The entries one producer writes to one stream, in order and each once: the core that
    the ``redis`` sink's writer thread and ``rxaudio serve --redis``'s writer task share.

    No I/O here: the writer runs the commands with its own client (blocking, or
    ``redis.asyncio``, whose pipelines take the same calls) and hands back the answers.
    :meth:`put` from any thread (it never waits; :attr:`cond` guards the queue and the
    counts); the rest from one writer: :meth:`take` a batch, :meth:`prepare` its audio,
    :meth:`stage` its XADDs on a pipeline, :meth:`settle` the answers. An entry leaves the
    queue only once Redis has acknowledged it. After a round trip cut off part-way
    (:attr:`in_flight`), :meth:`reconcile` the stream's newest entries before sending again.
    """

    def __init__(self, cfg: _Config) -> None:
        self.cfg = cfg
        self.producer = secrets.token_hex(8)
        self.cond = threading.Condition()  # reentrant: a writer adds its own checks around put
        # guarded by cond
        self.queue: deque[_Entry] = deque()
        self.next_seq = 0
        self.written = 0
        self.refused = 0  # items taken in but never queued (buffer full, or after the end)
        # the writer's own
        self.last_id: str | None = None  # the newest entry known to be in the stream before ours
        self.in_flight = 0  # entries of a round trip that failed part-way: maybe written

    @classmethod
    def to(
        cls,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int | None = None,
        audio: str = "int16",
        audio_dir: str | None = None,
        buffer: int = 10_000,
        retry_s: float = DEFAULT_RETRY_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> EntryQueue:
        """A queue for ``stream`` at ``url``; the options are :func:`to_redis`'s."""
        if audio not in AUDIO_MODES:
            raise ConfigError(
                f"redis: audio must be one of {', '.join(AUDIO_MODES)}, got {audio!r}"
            )
        return cls(_config(url, stream, maxlen, audio, audio_dir, buffer, retry_s, timeout_s))

    def put(self, item: Any) -> bool:
        """Queue one item's entry (raises when the item has no JSON form); never waits.
        ``False`` (counted in :attr:`refused`) when the queue holds ``buffer`` entries."""
        extra: dict[str, str] = {}
        if isinstance(item, RedisEntry):
            extra = item.fields
            rec = item.record if item.record is not None else to_record(item.item)
            item = item.item
        else:
            rec = to_record(item)
        data = to_json(rec)
        kind = rec.get("type")
        kind = kind if isinstance(kind, str) else type(item).__name__
        utt = item if isinstance(item, Utterance) and self.cfg.audio != "none" else None
        size = len(data) + 64 + (int(utt.samples.size) * 2 if utt is not None else 0)
        with self.cond:
            if len(self.queue) >= self.cfg.buffer:
                self.refused += 1
                return False
            seq = self.next_seq
            self.next_seq += 1
            fields: dict[str, str | bytes | int] = {
                "type": kind,
                "data": data,
                "producer": self.producer,
                "seq": seq,
                **extra,
            }
            self.queue.append(_Entry(seq, fields, utt, size))
            self.cond.notify_all()
        return True

    @property
    def waiting(self) -> int:
        """Entries queued, not yet written."""
        with self.cond:
            return len(self.queue)

    def take(self) -> list[_Entry]:
        """The next batch from the front of the queue (left there until written)."""
        batch: list[_Entry] = []
        size = 0
        with self.cond:
            for e in self.queue:
                if batch and (len(batch) >= BATCH_ENTRIES or size + e.size > BATCH_BYTES):
                    break
                batch.append(e)
                size += e.size
        return batch

    def heavy(self, batch: list[_Entry]) -> bool:
        """Whether preparing ``batch`` encodes FLAC or writes WAVs (work for a thread)."""
        return self.cfg.audio in ("flac", "file") and any(e.utt is not None for e in batch)

    def prepare(self, batch: list[_Entry]) -> None:
        """Add each utterance's audio to its entry (once: a retry sends the same fields);
        :class:`WriteFailed` when it cannot be encoded or written."""
        cfg = self.cfg
        for e in batch:
            utt = e.utt
            if utt is None:
                continue
            what = "encode" if cfg.audio != "file" else "write the WAV of"
            try:
                fields = e.fields
                fields["audio_format"] = AUDIO_FORMAT[cfg.audio]
                fields["sample_rate"] = int(utt.sample_rate)
                fields["channels"] = int(utt.samples.shape[1])
                if cfg.audio == "int16":
                    fields["audio"] = utt.to_frame().to_pcm16()
                elif cfg.audio == "flac":
                    fields["audio"] = flac_bytes(utt.samples, utt.sample_rate)
                else:
                    assert cfg.audio_dir is not None
                    path = os.path.join(cfg.audio_dir, f"{self.producer}-{e.seq:08d}.wav")
                    fields["path"] = write_wav(path, utt.samples, utt.sample_rate)
            except Exception as exc:
                fix = "free space in audio_dir" if cfg.audio == "file" else "use audio=int16"
                raise WriteFailed(
                    f"cannot {what} the utterance at {utt.time:.3f} s ({why(exc)})", fix
                ) from exc
            e.utt = None

    def started(self, top: list[Any]) -> None:
        """Note the stream's newest entry when the writer first connects (``XREVRANGE
        COUNT 1``, which also checks that the key is a stream)."""
        if self.last_id is None:
            self.last_id = text(top[0][0]) if top else "0-0"

    def stage(self, pipe: Any, batch: list[_Entry]) -> None:
        """Queue ``batch``'s XADDs on ``pipe`` (a pipeline without a transaction)."""
        cfg = self.cfg
        for e in batch:
            pipe.xadd(cfg.stream, e.fields, maxlen=cfg.maxlen, approximate=True)
        self.in_flight = len(batch)  # until the answers are in, any of them may be written

    def settle(self, batch: list[_Entry], results: list[Any]) -> int:
        """Take what Redis acknowledged off the queue; return how many. The first refusal
        (an entry refused one by one, out of memory...: left queued, retried) is raised."""
        self.in_flight = 0
        ok = [not isinstance(r, Exception) for r in results]
        with self.cond:
            for _ in batch:
                self.queue.popleft()
            for e, done in zip(reversed(batch), reversed(ok), strict=True):
                if not done:
                    self.queue.appendleft(e)
            self.written += sum(ok)
            self.cond.notify_all()
        ids = [r for r in results if not isinstance(r, Exception)]
        if ids:
            self.last_id = text(ids[-1])
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]
        return len(ids)

    def scan(self) -> Scan:
        """Begin reconciling: read the stream after the last entry known (``XRANGE``,
        ``SCAN`` at a time from :attr:`Scan.start`), :meth:`scanned` each page."""
        return Scan(f"({self.last_id}")

    def scanned(self, scan: Scan, rows: list[Any]) -> None:
        """Note one page of ``XRANGE`` rows (``COUNT`` :attr:`Scan.count`): which of ours
        arrived."""
        me = self.producer.encode()
        for _id, fields in rows:
            if fields.get(b"producer") == me:
                with contextlib.suppress(KeyError, ValueError):
                    scan.found.add(int(fields[b"seq"]))
        if rows:
            scan.newest = text(rows[-1][0])
            scan.start = f"({scan.newest}"
        scan.done = len(rows) < SCAN

    def reconciled(self, scan: Scan) -> int:
        """Take off the queue the entries of the cut-off round trip that reached the stream;
        return how many."""
        with self.cond:
            head = [self.queue.popleft() for _ in range(min(self.in_flight, len(self.queue)))]
            kept = [e for e in head if e.seq not in scan.found]
            self.queue.extendleft(reversed(kept))
            arrived = len(head) - len(kept)
            self.written += arrived
            self.cond.notify_all()
        self.in_flight = 0
        if scan.newest is not None:
            self.last_id = scan.newest
        return arrived

    def clear(self) -> int:
        """Drop every queued entry (a writer that gave up on them); return how many."""
        with self.cond:
            n = len(self.queue)
            self.queue.clear()
            self.cond.notify_all()
        self.in_flight = 0
        return n


# subscriptions whose writer still runs: a script that never disposes its chain still gets
# its queued entries written (when Redis is there) or counted in a warning at exit
_LIVE: set[_Link] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for link in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at exit: nothing left to report to
            link.dispose()


class _Link:
    """One subscription: its entry queue, its writer thread, the end downstream."""

    def __init__(
        self,
        cfg: _Config,
        observer: abc.ObserverBase[StreamReceipt],
        upstream: abc.DisposableBase,
    ) -> None:
        self.cfg, self.observer, self.upstream = cfg, observer, upstream
        self.q = EntryQueue(cfg)
        self.cond = self.q.cond
        # guarded by cond
        self.closing = False  # the input ended: write what is queued, then stop
        self.stopping = False  # disposed: stop (after one last flush while connected)
        self.full = False
        self.failed = False
        self.finished = False  # the writer thread is done
        self.upstream_error: Exception | None = None
        # the writer thread's own
        self.client: Any = None
        self.outage = Outage(cfg.retry_s, shown=cfg.shown, stream=cfg.stream)
        # the end downstream, once
        self.emit_lock = threading.Lock()
        self.ended = False
        self.thread = threading.Thread(
            target=self._run, name=f"rxaudio-redis-{self.q.producer[:6]}", daemon=True
        )

    # --- the caller's side ---------------------------------------------------------------

    def start(self) -> None:
        _LIVE.add(self)
        self.thread.start()

    def put(self, item: Any) -> bool:
        """Queue one item's entry (raises when the item has no JSON form); never waits.
        ``False`` when it was refused (buffer full, or the writer stopped or failed)."""
        with self.cond:
            if self.failed or self.full or self.stopping or self.closing:
                self.q.refused += 1
                return False
            if not self.q.put(item):
                self.full = True  # the writer ends the stream with the counts
                self.cond.notify_all()
                return False
        return True

    def finish(self, error: Exception | None = None) -> None:
        """The input ended (``error``: it failed): wait until the queue is written, then emit
        the receipt and end the same way. Bounded: the writer gives up after ``retry_s``
        without a connection, and then reports that itself."""
        with self.cond:
            self.closing = True
            if error is not None and self.upstream_error is None:
                self.upstream_error = error
            self.cond.notify_all()
            while not self.finished:
                self.cond.wait()
            if self.failed or self.stopping:
                return  # reported by the writer, or disposed: nobody is listening
        self.thread.join()
        self._end(self.receipt("completed" if error is None else "error"), error)

    def dispose(self) -> None:
        """Stop the writer (it writes what is queued first unless Redis is away) and join it."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if threading.current_thread() is not self.thread:
            # bounded: a round trip in flight ends within timeout_s, then the writer sees stop
            self.thread.join(timeout=3 * self.cfg.timeout_s + 1.0)
        with self.cond:
            left, failed = len(self.q.queue) + self.q.refused, self.failed
        with self.emit_lock:
            ended, self.ended = self.ended, True  # nothing goes downstream after a dispose
        if left and not failed and not ended:
            log.warning(
                "redis: disposed with %d entries not written to %s (stream %r); %d written",
                left,
                self.cfg.shown,
                self.cfg.stream,
                self.q.written,
            )

    def receipt(self, reason: str) -> StreamReceipt:
        with self.cond:
            written, left = self.q.written, len(self.q.queue) + self.q.refused
        return StreamReceipt(self.cfg.shown, self.cfg.stream, written, left, reason)

    def _end(self, receipt: StreamReceipt, error: Exception | None) -> None:
        with self.emit_lock:
            if self.ended:
                return
            self.ended = True
        self.observer.on_next(receipt)
        if error is None:
            self.observer.on_completed()
        else:
            self.observer.on_error(error)

    # --- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except WriteFailed as f:
            self._fail(f.what, f.fix)
        except Exception as exc:  # a bug or an unforeseen library error: reported, never silent
            self._fail(f"unexpected {type(exc).__name__}: {exc}", "please report this")
        finally:
            self._drop_client()
            with self.cond:
                self.finished = True
                self.cond.notify_all()
            _LIVE.discard(self)

    def _loop(self) -> None:
        q, outage = self.q, self.outage
        while True:
            with self.cond:
                while True:
                    if self.full:
                        raise self._overflow()
                    # disposed: write what is queued unless an attempt has failed since the
                    # last success (the first connection may still be on its way)
                    if self.stopping and not (not outage.away and q.queue):
                        return
                    if q.queue or (self.client is None and not self.closing):
                        break  # entries to send, or not yet connected (connect at once)
                    if self.closing or self.stopping:
                        return  # everything is written
                    self.cond.wait()
                batch = q.take()
            started = outage.clock()
            try:
                if self.client is None:
                    self._connect()
                if q.in_flight:
                    self._reconcile()
                elif batch:
                    q.prepare(batch)
                    pipe = self.client.pipeline(transaction=False)
                    q.stage(pipe, batch)
                    q.settle(batch, pipe.execute(raise_on_error=False))
            except WriteFailed:
                raise
            except Exception as exc:
                self._drop_client()
                try:
                    wait = outage.failed(exc, started=started)  # the one policy
                except GiveUp as g:
                    if g.outage and self.stopping:
                        return  # disposed: counted in dispose's warning
                    raise self._gave_up(g) from None
                if self.stopping:
                    return
                with self.cond:
                    self.cond.wait_for(
                        lambda: self.stopping or self.full or (self.closing and not q.queue),
                        timeout=wait,
                    )
                continue
            outage.ok()

    def _connect(self) -> None:
        cfg = self.cfg
        client = connect(cfg.url, timeout_s=cfg.timeout_s, name="rxaudio-redis")
        try:
            self.q.started(client.xrevrange(cfg.stream, count=1))
        except BaseException:
            client.close()
            raise
        self.client = client

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _reconcile(self) -> None:
        """After a round trip cut off part-way: take off the queue what reached the stream."""
        scan = self.q.scan()
        while not scan.done:
            rows = self.client.xrange(self.cfg.stream, min=scan.start, max="+", count=scan.count)
            self.q.scanned(scan, rows)
        self.q.reconciled(scan)

    def _gave_up(self, g: GiveUp) -> WriteFailed:
        f, cfg = g.failure, self.cfg
        if g.waited is None:
            return WriteFailed(f.what, f.fix)
        return WriteFailed(
            f"no connection to {cfg.shown} for {g.waited:.1f} s ({f.why})",
            f"{f.fix} or raise retry_s (now {cfg.retry_s:g} s)",
        )

    def _overflow(self) -> WriteFailed:
        cfg, outage = self.cfg, self.outage
        head = f"the buffer of {cfg.buffer} entries is full"
        if outage.away and outage.last is not None:
            return WriteFailed(
                f"{head}: no connection to {cfg.shown} for {outage.waited():.1f} s so far "
                f"({outage.last.why})",
                f"{outage.last.fix}, or raise buffer to ride out longer outages",
            )
        if self.client is None:
            return WriteFailed(
                f"{head} before the connection to {cfg.shown} was made", "raise buffer"
            )
        return WriteFailed(
            f"{head}: {cfg.shown} takes entries slower than they come",
            "raise buffer, or make entries cheaper (audio=file) or redis faster",
        )

    def _fail(self, what: str, fix: str) -> None:
        q = self.q
        with self.cond:
            self.failed = True
            written, left, maybe = q.written, len(q.queue) + q.refused, q.in_flight
            self.cond.notify_all()
        note = ""
        if maybe:
            note = (
                f" (the first {min(maybe, left)} were sent as the connection was lost and may "
                "have arrived: a reader tells them by producer and seq)"
            )
        err = SinkError(
            f"redis: {what}; {written} entries written, {left} not written{note}; {fix}"
        )
        if self.upstream_error is not None:
            err.__cause__ = self.upstream_error
        self.upstream.dispose()  # the stream ends here: stop the source
        receipt = StreamReceipt(self.cfg.shown, self.cfg.stream, written, left, "failed")
        self._end(receipt, err)


def _config(
    url: str,
    stream: str,
    maxlen: int | None,
    audio: str,
    audio_dir: str | None,
    buffer: int,
    retry_s: float,
    timeout_s: float,
) -> _Config:
    url = check_url(url)
    if not stream:
        raise ConfigError("redis: stream must name a key, got ''")
    folder: str | None = None
    if audio == "file":
        if not audio_dir:
            raise ConfigError(
                "redis: audio=file writes each utterance's WAV into audio_dir; give audio_dir"
            )
        folder = os.path.abspath(os.fspath(audio_dir))
        parent = os.path.dirname(folder)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ConfigError(f"redis: audio_dir {folder} exists and is not a folder")
        if not os.path.isdir(parent):
            raise ConfigError(f"redis: the parent of audio_dir ({parent}) does not exist")
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"redis: audio_dir {folder} is not writable")
    elif audio_dir is not None:
        raise ConfigError(
            f"redis: audio_dir is for audio=file (audio is {audio!r}); set audio=file or drop it"
        )
    cfg = _Config(url, shown_url(url), stream, maxlen, audio, folder, buffer, retry_s, timeout_s)
    return cfg


def _sink(cfg: _Config) -> Callable[[Observable[Any]], SinkOutput[StreamReceipt]]:
    def apply(source: Observable[Any]) -> SinkOutput[StreamReceipt]:
        def subscribe(
            observer: abc.ObserverBase[StreamReceipt], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            upstream = SingleAssignmentDisposable()
            link = _Link(cfg, observer, upstream)
            link.start()

            def on_next(item: Any) -> None:
                try:
                    link.put(item)
                except Exception as exc:  # an item with no JSON form ends the stream
                    upstream.dispose()
                    link.finish(wrap_error("redis", exc, item))

            upstream.disposable = source.subscribe(
                on_next, link.finish, link.finish, scheduler=scheduler
            )
            return CompositeDisposable(upstream, Disposable(link.dispose))

        return SinkOutput(subscribe)

    return apply


@element(
    "redis",
    kind="sink",
    accepts=Caps(frame=(Utterance, object)),
    produces=Caps(frame=StreamReceipt),
    aliases={"location": "url"},
)
def to_redis(
    url: str = DEFAULT_URL,
    *,
    stream: str = DEFAULT_STREAM,
    maxlen: Annotated[int | None, Range(1, None)] = None,
    audio: Annotated[str, Choices(AUDIO_MODES)] = "int16",
    audio_dir: str | None = None,
    buffer: Annotated[int, Range(1, None)] = 10_000,
    retry_s: Annotated[float, Range(0, None), Unit("s")] = DEFAULT_RETRY_S,
    timeout_s: Annotated[float, Range(0, 300, lo_open=True), Unit("s")] = DEFAULT_TIMEOUT_S,
) -> Callable[[Observable[Any]], Observable[StreamReceipt]]:
    """Add each item to a Redis stream (XADD); emit a :class:`StreamReceipt` at the end.

    Every item becomes one entry: ``type`` (its dict form's type), ``data`` (its one dict form
    as JSON, the text the ``jsonl`` sink writes), ``producer`` (a random id, one per
    subscription) and ``seq`` (0, 1, ... per producer, with no gaps unless entries were not
    written). An :class:`Utterance` also carries its audio, as ``audio`` says: ``int16`` adds
    ``audio`` (little-endian interleaved 16-bit PCM), ``flac`` adds ``audio`` (a FLAC file),
    ``file`` writes a WAV into ``audio_dir`` (temporary name, then rename) and adds its
    absolute ``path``; each of these also adds ``audio_format`` (``int16``, ``flac``, ``wav``),
    ``sample_rate`` and ``channels``; ``none`` adds nothing. Values are bytes in Redis:
    numbers are decimal text, text is UTF-8. With ``maxlen`` every XADD trims the stream to
    about that many entries (``MAXLEN ~``).

    The caller never waits: items go to a queue of up to ``buffer`` entries that one thread
    writes in pipelined batches, in order. When Redis is unreachable or lost, the entries wait
    and the writer retries with back-off (50 ms doubling to 1 s); an outage longer than
    ``retry_s``, or a full queue, ends the stream with a ``SinkError`` saying what failed, how
    many entries were written and how many not, and the fix (a ``StreamReceipt`` with reason
    ``failed`` and the same counts comes first). A round trip cut off by a lost connection is
    checked against the stream before anything is sent again, so no entry is written twice.
    On completion the sink waits until every entry is written (or the writer gives up, as
    above), then emits the receipt (``written``) and completes. An item with no JSON form ends
    the stream with an error after the entries before it are written. Disposing stops the
    writer; unless Redis is away (an attempt failed since the last success) it first writes
    what is queued, and it logs a warning counting any entry left. Needs the ``redis``
    package (``rxaudio[redis]``) and Redis 6.2 or newer.

    .. marble::
        -a--b--U--|
        [ redis ]
        ----------(R|)      U = Utterance (+ audio); R = StreamReceipt(written=3)

    Parameters
    ----------
    url
        Where Redis is: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) or
        ``unix:///path/to/socket``.
    stream
        The stream's key.
    maxlen
        Trim the stream to about this many entries on every XADD (``MAXLEN ~``); none: no
        trimming.
    audio
        How an utterance's audio goes with its entry: 16-bit PCM bytes, FLAC bytes, a WAV file
        in ``audio_dir`` named by its ``path``, or none.
    audio_dir
        The folder WAVs are written to with ``audio=file`` (created if missing); it must be
        readable where the entries are read.
    buffer
        Entries held while they wait to be written (while Redis is unreachable, too); a full
        buffer ends the stream with an error.
    retry_s
        How long one outage may last (no connection, or Redis refusing writes) before the
        stream ends with an error.
    timeout_s
        How long connecting or one round trip may take before the connection counts as lost.

    Raises
    ------
    ConfigError
        A url that is not redis://, rediss:// or unix://, an empty stream name, ``audio_dir``
        missing for (or given without) ``audio=file``, or the redis package missing.
    """
    return _sink(_config(url, stream, maxlen, audio, audio_dir, buffer, retry_s, timeout_s))
