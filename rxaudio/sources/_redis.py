"""from_redis (``redis_src``): read a Redis stream through a consumer group.

:class:`StreamReader` is one consumer of a group, used from one thread: it claims entries that
other consumers left pending too long (``XAUTOCLAIM``), reads its own pending ones and then new
ones (``XREADGROUP``), decodes them (:mod:`rxaudio.io.streams`), and acknowledges an entry
only when told to (``XACK``, in one transaction with the results written for it). An entry
that cannot be decoded, or that was delivered ``max_deliveries`` times without an ack (it keeps
killing its workers), goes to the dead-letter stream with the reason, and is acknowledged.

:class:`RedisSource` is the Observable: each entry's item goes downstream and the entry is
acknowledged once ``on_next`` has returned. ``rxaudio worker`` (:mod:`rxaudio.pipeline.worker`)
uses the reader directly and acknowledges an entry only after its sinks' receipts.

Timing is wall-clock on purpose (block, claim idle time, back-off): it is about the network
peer and other processes, not about the audio's sample time.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from ..core.caps import Caps
from ..core.props import Choices, Range, Unit, element
from ..errors import ConfigError, SourceError
from ..frames import AudioFrame, Utterance
from ..io.redis import (
    DEFAULT_TIMEOUT_S,
    UNREACHABLE_FIX,
    GiveUp,
    Outage,
    call,
    classify,
    connect,
)
from ..io.streams import (
    DEFAULT_RETRY_S,
    DEFAULT_STREAM,
    DEFAULT_URL,
    DecodedEntry,
    MalformedEntry,
    check_url,
    decode_entry,
    shown_url,
    text,
)

EMIT = ("item", "audio")
START = ("begin", "new")

# KEYS: the stream, the results stream. ARGV: group, entry id, the number of results, then
# each result as its number of fields and its fields (name, value, ...). XACK first; the
# results only when it acknowledged the entry (1), so they are written once per entry.
_ACK_SCRIPT = """
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 0 then return 0 end
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[i])
  local fields = {}
  for j = 1, 2 * n do fields[j] = ARGV[i + j] end
  i = i + 1 + 2 * n
  redis.call('XADD', KEYS[2], '*', unpack(fields))
end
return 1
"""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry read from the stream: its id, its decoded item, its text fields."""

    id: str
    item: Any
    """An :class:`Utterance` (audio included), its audio as one :class:`AudioFrame`
    (``emit=audio``), or the entry's dict form for other types."""
    fields: dict[str, str]
    """The entry's fields as text, audio left out (``type``, ``producer``, ``session``...)."""
    deliveries: int = 1
    """How often it was delivered: more than 1 when it was claimed from another consumer."""
    record: dict[str, Any] = field(default_factory=dict)
    """The entry's dict form (its ``data``), as decoded."""


@dataclass
class ReaderStats:
    """What a reader has done (counts since it opened) and the group's backlog."""

    read: int = 0
    """Entries handed out (claimed ones included)."""
    acked: int = 0
    redelivered: int = 0
    """Entries handed out that had been delivered before (claimed from a dead consumer, or
    left pending by this consumer name's previous run)."""
    dead: int = 0
    """Entries moved to the dead-letter stream."""
    skipped: int = 0
    """Entries of other types, acknowledged unread."""
    results: int = 0
    """Result entries written with acks."""
    duplicates: int = 0
    """Entries this consumer finished after another had acknowledged them (it had claimed
    them, or shares this consumer name): their results and dead letters were not written
    again."""
    pending: int = 0
    """The group's entries delivered and not yet acknowledged (at the last :meth:`poll`)."""
    lag: int | None = None
    """The group's entries not yet delivered (Redis 7; None when unknown)."""


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    """A reader's options (see :func:`from_redis`)."""

    url: str
    stream: str = DEFAULT_STREAM
    group: str = "rxaudio"
    consumer: str = ""
    types: tuple[str, ...] = ("utterance",)
    emit: str = "item"
    start: str = "begin"
    count: int = 1
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    dead_letter: str = ""
    retry_s: float = DEFAULT_RETRY_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    drain: bool = False
    shown: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown", shown_url(self.url))

    @property
    def name(self) -> str:
        """The consumer name (this host and process unless given)."""
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def dead_stream(self) -> str:
        """Where entries that cannot be handled go."""
        return self.dead_letter or f"{self.stream}:dead"

    @property
    def caps(self) -> Caps:
        """What the source emits."""
        if self.emit == "audio":
            return Caps()
        if self.types == ("utterance",):
            return Caps(frame=Utterance)
        return Caps(frame=(Utterance, dict))


def _seconds_to_index(record: Mapping[str, Any], key: str, rate: int) -> int:
    v = record.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MalformedEntry(f"the utterance has no {key} in seconds (got {v!r})")
    if not math.isfinite(v) or v < 0:
        raise MalformedEntry(f"the utterance's {key} is {v!r} s; it must be a time >= 0")
    try:
        return round(float(v) * rate)
    except OverflowError:
        raise MalformedEntry(f"the utterance's {key} ({v!r} s) is out of range") from None


def utterance_of(entry: DecodedEntry) -> Utterance:
    """The :class:`Utterance` an ``utterance`` entry with audio describes."""
    if entry.samples is None or entry.sample_rate is None:
        raise MalformedEntry(
            "an utterance entry without audio (written with audio=none?); a worker needs its "
            "audio: write it with audio=int16, flac or file"
        )
    rec, rate = entry.record, entry.sample_rate
    audio_start = _seconds_to_index(rec, "audio_start", rate)
    start = _seconds_to_index(rec, "start", rate)
    end = _seconds_to_index(rec, "end", rate)
    n = int(entry.samples.shape[0])
    if n == 0:
        raise MalformedEntry("the utterance's audio is empty")
    if end < start:
        raise MalformedEntry(
            f"the utterance ends ({rec['end']!r} s) before it starts ({rec['start']!r} s)"
        )
    reason = rec.get("reason")
    return Utterance(
        entry.samples,
        rate,
        start,
        end,
        audio_start,
        audio_start + n,  # the audio itself says where it ends
        reason if isinstance(reason, str) else "silence",
        int(rec["id"]) if isinstance(rec.get("id"), int) else 0,
    )


class StreamReader:
    """One consumer of a group on one stream, used from one thread.

    :meth:`open` connects and creates the group if needed; :meth:`poll` returns the next
    entries (claimed, own pending, then new; an empty list after ``block_ms`` without any);
    :meth:`ack` acknowledges one, writing its results in the same transaction. Outages are
    retried with back-off for ``retry_s``; then :class:`SourceError` says what failed.
    """

    def __init__(self, cfg: ReaderConfig) -> None:
        self.cfg = cfg
        self.consumer = cfg.name
        self.stats = ReaderStats()
        self.client: Any = None
        self._own_done = False  # this consumer name's pending entries were read back
        self._next_claim = 0.0
        self._claim_from = "0-0"
        self._next_refresh = 0.0

    # --- connection ---------------------------------------------------------------------------
    def open(self) -> None:
        """Connect and make sure the group exists (no retries: a wrong URL says so at once)."""
        try:
            self._connect()
        except Exception as exc:
            raise self._error(exc, at_start=True) from None

    def _connect(self) -> None:
        import redis.exceptions as rex

        cfg = self.cfg
        client = connect(cfg.url, timeout_s=cfg.timeout_s, name="rxaudio-redis-src")
        try:
            client.xgroup_create(
                cfg.stream, cfg.group, id="0" if cfg.start == "begin" else "$", mkstream=True
            )
        except rex.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                client.close()
                raise
        except BaseException:
            client.close()
            raise
        self.client = client

    def close(self) -> None:
        """Drop the connection (pending entries stay pending, to be claimed or read back)."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection: nothing to report
                pass

    def _error(self, exc: BaseException, *, at_start: bool = False) -> SourceError:
        """The one-line error for ``exc`` (a :class:`GiveUp`, or a failure at the start)."""
        cfg = self.cfg
        if isinstance(exc, GiveUp):
            failure = exc.failure
        else:
            failure = classify(exc, shown=cfg.shown, stream=cfg.stream)
        if not failure.retry:
            return SourceError(f"redis_src: {failure.what}; {failure.fix}")
        when = "" if at_start else f" for {cfg.retry_s:g} s"
        if failure.fix == UNREACHABLE_FIX:
            return SourceError(
                f"redis_src: cannot reach {cfg.shown}{when} ({failure.why}); {failure.fix} or "
                "check the url"
            )
        return SourceError(
            f"redis_src: {cfg.shown} refused commands{when} ({failure.why}); {failure.fix}"
        )

    def _call(self, what: Callable[[Any], Any]) -> Any:
        """``what(client)``, reconnecting and retrying with back-off while Redis is away (the
        one policy: :mod:`rxaudio.io.redis`); :class:`SourceError` when no retry helps."""

        def do() -> Any:
            if self.client is None:
                self._connect()
            return what(self.client)

        outage = Outage(self.cfg.retry_s, shown=self.cfg.shown, stream=self.cfg.stream)
        try:
            return call(do, outage, drop=self.close)
        except GiveUp as exc:
            raise self._error(exc) from exc.__cause__

    # --- reading ------------------------------------------------------------------------------
    def poll(self, block_ms: int | None = None) -> list[StreamEntry]:
        """The next entries for this consumer, decoded (may be empty)."""
        cfg = self.cfg
        block = cfg.block_ms if block_ms is None else block_ms
        rows: list[tuple[Any, dict[Any, Any], int]] = []
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(cfg.claim_idle_ms / 2000.0, 0.05)
            rows = self._claim()
        if not rows and not self._own_done:
            got = self._call(
                lambda c: c.xreadgroup(cfg.group, self.consumer, {cfg.stream: "0"}, count=cfg.count)
            )
            mine = [(i, f) for i, f in (got[0][1] if got else []) if f]
            if not mine:
                self._own_done = True
            rows = self._counted(mine)  # a previous run of this consumer had them
        if not rows:
            got = self._call(
                lambda c: c.xreadgroup(
                    cfg.group, self.consumer, {cfg.stream: ">"}, count=cfg.count, block=block
                )
            )
            rows = [(i, f, 1) for i, f in (got[0][1] if got else [])]
        out: list[StreamEntry] = []
        for raw_id, raw_fields, deliveries in rows:
            entry_id = text(raw_id)
            e = self._decode(entry_id, raw_fields, deliveries)
            if e is not None:
                out.append(e)
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        return out

    def _claim(self) -> list[tuple[Any, dict[Any, Any], int]]:
        cfg = self.cfg
        res = self._call(
            lambda c: c.xautoclaim(
                cfg.stream,
                cfg.group,
                self.consumer,
                min_idle_time=cfg.claim_idle_ms,
                start_id=self._claim_from,
                count=cfg.count,
            )
        )
        cursor, claimed = text(res[0]), res[1]
        self._claim_from = cursor if claimed and cursor != "0-0" else "0-0"
        if claimed and cursor != "0-0":
            self._next_claim = 0.0  # more to claim: look again at once
        return self._counted([(i, f) for i, f in claimed if f])

    def _counted(
        self, rows: list[tuple[Any, dict[Any, Any]]]
    ) -> list[tuple[Any, dict[Any, Any], int]]:
        """Entries delivered before (claimed, or read back), each with its delivery count from
        the group, so ``max_deliveries`` holds for both (a read-back counts as a delivery)."""
        if not rows:
            return []
        cfg = self.cfg
        ids = [text(i) for i, _ in rows]
        got = self._call(
            lambda c: c.xpending_range(
                cfg.stream, cfg.group, min=ids[0], max=ids[-1], count=len(ids) + 100
            )
        )
        counts = {text(p["message_id"]): int(p["times_delivered"]) for p in got}
        return [(i, f, counts.get(text(i), 2)) for i, f in rows]

    def _decode(self, entry_id: str, raw: dict[Any, Any], deliveries: int) -> StreamEntry | None:
        cfg = self.cfg
        if deliveries > cfg.max_deliveries:
            self.dead(
                entry_id,
                raw,
                f"delivered {deliveries} times without being acknowledged (more than "
                f"max_deliveries={cfg.max_deliveries}): it may crash or stall its worker",
            )
            return None
        kind = text(raw.get(b"type", raw.get("type", b"")))
        if cfg.types and kind not in cfg.types:
            self.stats.skipped += 1
            self._call(lambda c: c.xack(cfg.stream, cfg.group, entry_id))
            return None
        try:
            d = decode_entry(raw)
            item: Any
            said = d.record["type"]
            if not kind:
                raise MalformedEntry(
                    f"the entry has no type field (its data is a {said!r} event); a producer "
                    f"writes type={said} beside data"
                )
            if said != kind:
                raise MalformedEntry(
                    f"the entry says type={kind} but its data is a {said!r} event (data's "
                    f"type); a producer writes each item under its own type: an utterance's "
                    f"dict form with its audio under type=utterance, other events under theirs"
                )
            if said == "utterance":
                utt = utterance_of(d)
                item = utt.to_frame() if cfg.emit == "audio" else utt
            elif cfg.emit == "audio":
                raise MalformedEntry(
                    f"emit=audio takes utterances; this is a {said!r} event: read it with "
                    "emit=item, or write utterances to this stream"
                )
            else:
                item = d.record
        except MalformedEntry as exc:
            self.dead(entry_id, raw, str(exc))
            return None
        except Exception as exc:  # an entry that breaks a frame's checks: its fault, not ours
            self.dead(entry_id, raw, f"cannot decode this entry: {type(exc).__name__}: {exc}")
            return None
        self.stats.read += 1
        if deliveries > 1:
            self.stats.redelivered += 1
        return StreamEntry(entry_id, item, d.fields, deliveries, d.record)

    def refresh(self) -> None:
        """Read the group's pending count and lag into :attr:`stats`."""
        cfg = self.cfg
        self._next_refresh = time.monotonic() + 0.5
        try:
            groups = self._call(lambda c: c.xinfo_groups(cfg.stream))
        except SourceError:
            return  # a count for the status line is not worth failing a read for
        for g in groups:
            if text(g.get("name", b"")) == cfg.group:
                self.stats.pending = int(g.get("pending", 0))
                lag = g.get("lag")
                self.stats.lag = int(lag) if lag is not None else None

    # --- acknowledging ------------------------------------------------------------------------
    def ack(
        self, entry_id: str, results: Sequence[Mapping[str, Any]] = (), *, to: str = ""
    ) -> bool:
        """Acknowledge ``entry_id`` and add ``results`` (entry fields) to stream ``to``, at
        once, so a crash leaves either both or neither; and only if the entry was still
        pending: an entry another consumer acknowledged first gets no second set of results
        (False, counted in ``duplicates``)."""
        first = self._commit(entry_id, results, to)
        if first:
            self.stats.acked += 1
            self.stats.results += len(results)
        else:
            self.stats.duplicates += 1
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        return first

    def _commit(self, entry_id: str, results: Sequence[Mapping[str, Any]], to: str) -> bool:
        """``XACK`` ``entry_id`` and, when that acknowledged it (it was pending), ``XADD``
        each of ``results`` to ``to``, in one script (atomic, as a transaction). Whether it
        acknowledged it.

        Conditional on the ack, so results are written once per entry whoever else ran it:
        two live workers under one consumer name, an entry claimed from a worker that was slow
        rather than dead, a retry after a reply lost with the connection."""
        cfg = self.cfg
        args: list[Any] = [cfg.group, entry_id, len(results)]
        for fields in results:
            args.append(len(fields))
            for k, v in fields.items():
                args += [k, v]

        def run(c: Any) -> int:
            return int(c.eval(_ACK_SCRIPT, 2, cfg.stream, to or cfg.stream, *args))

        return bool(self._call(run))

    def dead(self, entry_id: str, raw: Mapping[Any, Any], reason: str) -> None:
        """Move an entry to the dead-letter stream with ``reason``, and acknowledge it (once:
        as :meth:`ack`, nothing is written for an entry another consumer acknowledged)."""
        cfg = self.cfg
        fields = {text(k): v for k, v in raw.items()}
        fields.update(
            {
                "reason": reason,
                "source_id": entry_id,
                "source_stream": cfg.stream,
                "group": cfg.group,
                "consumer": self.consumer,
            }
        )
        if self._commit(entry_id, [fields], cfg.dead_stream):
            self.stats.dead += 1
        else:
            self.stats.duplicates += 1


class RedisSource(Observable[Any]):
    """The entries of a stream as an Observable (see :func:`from_redis`); ``caps`` says what
    it emits, :meth:`reader` makes a consumer with the same options."""

    def __init__(self, cfg: ReaderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.caps = cfg.caps
        self.stats = ReaderStats()

    def reader(self) -> StreamReader:
        """A new consumer with this source's options."""
        return StreamReader(self.config)

    def _subscribe_core(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        stop = threading.Event()
        reader = self.reader()
        self.stats = reader.stats

        def run() -> None:
            try:
                reader.open()
                while not stop.is_set():
                    entries = reader.poll(block_ms=min(self.config.block_ms, 250))
                    if not entries and self.config.drain and not reader.stats.lag:
                        break  # nothing came within the wait and nothing is undelivered
                    for e in entries:
                        if stop.is_set():
                            return  # left pending: read back or claimed later
                        observer.on_next(e.item)
                        reader.ack(e.id)
            except Exception as exc:
                if not stop.is_set():
                    observer.on_error(exc)
                return
            finally:
                reader.close()
            if not stop.is_set():
                observer.on_completed()

        thread = threading.Thread(target=run, name="rxaudio-redis-src", daemon=True)
        thread.start()

        def dispose() -> None:
            stop.set()
            if threading.current_thread() is not thread:
                thread.join(timeout=self.config.timeout_s + 2.0)

        return Disposable(dispose)


@element("redis_src", kind="source", produces=Caps(frame=(Utterance, AudioFrame, dict)),
         aliases={"location": "url"})  # fmt: skip
def from_redis(
    url: str = DEFAULT_URL,
    *,
    stream: str = DEFAULT_STREAM,
    group: str = "rxaudio",
    consumer: str | None = None,
    types: str = "utterance",
    emit: Annotated[str, Choices(EMIT)] = "item",
    start: Annotated[str, Choices(START)] = "begin",
    count: Annotated[int, Range(1, 1000)] = 1,
    block_ms: Annotated[int, Range(1, 60_000), Unit("ms")] = 1000,
    claim_idle_ms: Annotated[int, Range(1, None), Unit("ms")] = 30_000,
    max_deliveries: Annotated[int, Range(1, None)] = 5,
    dead_letter: str | None = None,
    retry_s: Annotated[float, Range(0, None), Unit("s")] = DEFAULT_RETRY_S,
    timeout_s: Annotated[float, Range(0, 300, lo_open=True), Unit("s")] = DEFAULT_TIMEOUT_S,
    drain: bool = False,
) -> RedisSource:
    """Read a Redis stream through a consumer group (``XREADGROUP``), one item per entry.

    Entries are those the ``redis`` sink and ``rxaudio serve --redis`` write
    (``docs/sinks/to_redis.md``). An ``utterance`` entry with its audio becomes an
    :class:`Utterance` (or, with ``emit=audio``, its audio as one :class:`AudioFrame` starting
    at the utterance's first sample); other types, when ``types`` lets them through, are their
    dict form. Entries of other types are acknowledged and skipped.

    Delivery is at least once. Each entry is acknowledged (``XACK``) after its item's
    ``on_next`` has returned downstream; ``rxaudio worker`` instead runs its pipeline once per
    entry and acknowledges only after every sink's receipt (so a sink that writes later is
    covered too). Entries another consumer of the group left pending for ``claim_idle_ms``
    (it died, or was killed) are claimed (``XAUTOCLAIM``), at start and every ``claim_idle_ms
    / 2`` after; entries this consumer name left pending in an earlier run are read back
    first. An entry that cannot be decoded, or one delivered ``max_deliveries`` times without
    an ack, goes to the dead-letter stream with its ``reason`` and is acknowledged: the source
    goes on. Redis unreachable at start ends the stream at once with a :class:`SourceError`;
    a later outage is retried with back-off for ``retry_s``. Never completes unless ``drain``.

    .. marble::
        redis_src (entries U1, U2 in the stream)
        -U1--U2--...      each XACKed once on_next returned

    Parameters
    ----------
    url
        Where Redis is: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` or
        ``unix:///path``.
    stream
        The stream's key.
    group
        The consumer group (created, with the stream if missing, on first use).
    consumer
        This consumer's name in the group; none: this host's name and the process id. Give a
        fixed name to let a restarted worker read back what it left pending.
    types
        Comma-separated entry types to take (others are acknowledged and skipped); ``*``:
        every type.
    emit
        ``item``: an Utterance (other types: their dict form); ``audio``: an utterance's audio
        as one AudioFrame (for audio elements such as ``mfcc`` or ``wav``).
    start
        Where a new group starts: at the stream's first entry, or only new entries.
    count
        Entries read per call (``rxaudio worker`` holds at most this many at once).
    block_ms
        How long one read waits for new entries.
    claim_idle_ms
        How long an entry must sit unacknowledged with another consumer before it is claimed.
    max_deliveries
        Deliveries after which an entry goes to the dead-letter stream instead.
    dead_letter
        The dead-letter stream; none: ``<stream>:dead``.
    retry_s
        How long one outage may last before the stream ends with an error.
    timeout_s
        How long connecting or one command may take.
    drain
        Complete once the group has nothing left to deliver (batch jobs and tests).

    Raises
    ------
    ConfigError
        A url that is not a Redis URL, an empty stream or group name, or the redis package
        missing.
    """
    url = check_url(url, "redis_src")
    for name, v in (("stream", stream), ("group", group)):
        if not v:
            raise ConfigError(f"redis_src: {name} must name something, got ''")
    kinds = tuple(t.strip() for t in types.split(",") if t.strip())
    if kinds == ("*",):
        kinds = ()
    if emit == "audio" and kinds not in (("utterance",),):
        raise ConfigError(
            "redis_src: emit=audio emits utterances' audio; keep types=utterance or use emit=item"
        )
    cfg = ReaderConfig(
        url,
        stream,
        group,
        consumer or "",
        kinds,
        emit,
        start,
        count,
        block_ms,
        claim_idle_ms,
        max_deliveries,
        dead_letter or "",
        retry_s,
        timeout_s,
        drain,
    )
    return RedisSource(cfg)
