"""``rxaudio serve --redis URL``: sessions' speech events and utterances out to a Redis stream,
workers' results back to the sessions' clients, through one ``redis.asyncio`` client.

Out: every ``speech_start``, ``speech_end`` and ``utterance`` a session emits (the very event
its clients get, ``seq`` and utterance ``id`` included) becomes one entry of the deployment's
stream, with ``session`` (the session id) as a field and, for an utterance, its audio. A
session only queues it (:meth:`RedisBridge.publish`: the ``redis`` sink's
:class:`~rxaudio.sinks.EntryQueue`, bounded, never waiting); a writer task on the event loop,
woken by the queue, writes the queue in pipelined batches, in order, each entry once (a round
trip cut off by a lost connection is checked against the stream before anything is sent
again), encoding FLAC or writing WAVs in a worker thread. The event loop never waits for
Redis. A full queue refuses the new entry; an outage longer than ``--redis-retry`` drops what
waits (the writer goes on with the events that follow); both are counted
(``rxaudio_redis_entries_not_written_total``) and logged.

Back: a task reads the results stream (``XREAD``, from the moment the server started) and
sends each result that names a session of this process to that session's clients as a
``result`` event (``docs/protocol.md``). Results for sessions elsewhere (another process of
``--processes N``, or another server) are left to them.

Both tasks use the one client (its connection pool gives the blocking XREAD and the XADDs a
connection each) and the one Redis policy (:mod:`rxaudio.io.redis`): its back-off while Redis
is away, its classification of what no retry will help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..frames import Utterance
from ..io.redis import BACKOFF_MAX_S, GiveUp, Outage, connect_async, why
from ..io.streams import DEFAULT_RETRY_S, check_url, shown_url, text
from ..sinks import EntryQueue, RedisEntry, WriteFailed
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from .sessions import Session

log = logging.getLogger("rxaudio.server")

RELAY_BLOCK_MS = 1000
"""How long one XREAD of the results stream waits (well under the client's timeout)."""
RELAY_COUNT = 256


def probe(url: str) -> None:
    """PING ``url`` once, before the server starts (``rxaudio serve`` checks it before it
    starts its processes): Redis away is a :class:`ConfigError` in one line."""

    async def ping() -> None:
        client = connect_async(url, name="rxaudio-serve")
        try:
            await _reach(client, shown_url(url), "")
        finally:
            await client.aclose()

    asyncio.run(ping())


async def _reach(client: Any, shown: str, results: str) -> str:
    """PING; return the results stream's newest id (``0-0`` when empty or none)."""
    try:
        await client.ping()
        top = await client.xrevrange(results, count=1) if results else []
    except Exception as exc:
        raise ConfigError(
            f"serve: --redis {shown}: cannot reach it ({why(exc)}); start redis-server there "
            "or drop --redis"
        ) from None
    return text(top[0][0]) if top else "0-0"


class RedisBridge:
    """The server's link to Redis Streams (see the module's docs).

    Parameters
    ----------
    url
        Where Redis is.
    stream
        The deployment's stream (speech events and utterances of every session).
    results
        The stream workers write their results to; ``""``: relay nothing.
    sessions
        This process's sessions by id (the hub's dict, read at each result).
    audio
        How utterance audio goes with its entry (``int16``, ``flac``, ``file``, ``none``).
    audio_dir
        The folder of ``audio=file`` WAVs.
    retry_s, buffer
        The writer's outage limit and queue size.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        results: str,
        metrics: ServerMetrics,
        sessions: Mapping[str, Session],
        audio: str = "int16",
        audio_dir: str | None = None,
        retry_s: float = DEFAULT_RETRY_S,
        buffer: int = 10_000,
    ) -> None:
        self.url = check_url(url, "serve --redis")
        self.shown = shown_url(url)
        self.stream, self.results = stream, results
        self.metrics = metrics
        self.sessions = sessions
        self.queue = EntryQueue.to(
            url, stream=stream, audio=audio, audio_dir=audio_dir, buffer=buffer, retry_s=retry_s
        )
        self.client: Any = None
        self._wake = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self.relayed = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check Redis answers (a :class:`ConfigError` in one line when not), start the writer
        and the relay."""
        self.client = connect_async(self.url, name="rxaudio-serve")
        try:
            last = await _reach(self.client, self.shown, self.results)
        except ConfigError:
            await self.client.aclose()
            raise
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write())
        if self.results:
            self._relay = loop.create_task(self._relay_results(last))

    async def stop(self) -> None:
        """Stop relaying; write what is queued (bounded by ``retry_s``), then count what was
        not written."""
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None
        if self._writer is not None:
            self._closing = True  # the writer ends once the queue is written, or gives up
            self._wake.set()
            await self._writer
            self._writer = None
        left = self.queue.clear()
        if left:
            self.metrics.redis_not_written.inc(left)
            log.warning("serve --redis: %d entries not written to %s at shutdown", left, self.shown)
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing to say
                await self.client.aclose()
            self.client = None

    # --- out ----------------------------------------------------------------------------------
    def publish(self, session: Session, event: dict[str, Any], item: Any) -> None:
        """Queue one speech event of ``session`` (with the utterance's audio when it is one);
        never waits: a full queue refuses it (counted)."""
        if self._writer is None or self._closing:
            return
        audio = item if isinstance(item, Utterance) else event
        if self.queue.put(RedisEntry(audio, {"session": session.id}, record=event)):
            self._wake.set()
        else:
            self.metrics.redis_not_written.inc()

    def waiting(self) -> float:
        """Entries queued, not yet written (the gauge)."""
        return float(self.queue.waiting)

    async def _write(self) -> None:
        """The writer task: write the queue whenever it holds entries (woken by
        :meth:`publish`), retrying with the policy's back-off while Redis is away."""
        q, client = self.queue, self.client
        cfg = q.cfg
        outage = Outage(cfg.retry_s, shown=self.shown, stream=self.stream)
        while True:
            if not q.waiting:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = q.take()
            started = outage.clock()
            try:
                if q.last_id is None:
                    q.started(await client.xrevrange(self.stream, count=1))
                if q.in_flight:
                    scan = q.scan()
                    while not scan.done:
                        q.scanned(
                            scan,
                            await client.xrange(
                                self.stream, min=scan.start, max="+", count=scan.count
                            ),
                        )
                    self.metrics.redis_written.inc(q.reconciled(scan))
                    continue
                if q.heavy(batch):
                    await asyncio.to_thread(q.prepare, batch)  # FLAC or WAV: off the loop
                else:
                    q.prepare(batch)
                pipe = client.pipeline(transaction=False)
                q.stage(pipe, batch)
                results = await pipe.execute(raise_on_error=False)
                self.metrics.redis_written.inc(q.settle(batch, results))
            except asyncio.CancelledError:
                raise
            except WriteFailed as exc:  # an utterance's audio (a full disk): drop what waits
                self._lost(f"{exc.what}; {exc.fix}", q.clear())
                continue
            except Exception as exc:
                try:
                    wait = outage.failed(exc, started=started)
                except GiveUp as g:
                    f = g.failure
                    if g.waited is None:
                        self._lost(f"{f.what}; {f.fix}", q.clear())
                        wait = BACKOFF_MAX_S  # the next events try again, not at once
                    else:
                        self._lost(
                            f"no connection to {self.shown} for {g.waited:.1f} s ({f.why}); "
                            f"{f.fix} or raise --redis-retry (now {cfg.retry_s:g} s)",
                            q.clear(),
                        )
                        wait = 0.0
                    outage.ok()
                    if self._closing:
                        return
                await asyncio.sleep(wait)
                continue
            outage.ok()

    def _lost(self, why: str, n: int) -> None:
        self.metrics.redis_not_written.inc(n)
        log.error("serve --redis: %s; %d entries lost; writing on", why, n)

    # --- back ---------------------------------------------------------------------------------
    async def _relay_results(self, last: str) -> None:
        client = self.client
        outage = Outage(float("inf"), shown=self.shown, stream=self.results)  # never gives up
        while True:
            try:
                got = await client.xread(
                    {self.results: last}, count=RELAY_COUNT, block=RELAY_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                try:
                    wait = outage.failed(exc)
                except GiveUp as g:
                    log.error("serve --redis: relaying results stopped: %s", g.failure.what)
                    return
                if outage.failures == 1 and outage.last is not None:
                    log.warning(
                        "serve --redis: lost %s (%s); retrying", self.shown, outage.last.why
                    )
                await asyncio.sleep(wait)
                continue
            outage.ok()
            for _stream, entries in got or []:
                for entry_id, fields in entries:
                    last = text(entry_id)
                    self.deliver(last, fields)

    def deliver(self, entry_id: str, fields: Mapping[Any, Any]) -> bool:
        """Send one result to its session's clients; ``False`` when it names no session here."""
        import orjson

        f = {text(k): v for k, v in fields.items()}
        sid = f.get("session")
        session = self.sessions.get(text(sid)) if sid is not None else None
        if session is None:
            return False
        try:
            result = orjson.loads(f.get("data", b"null"))
        except orjson.JSONDecodeError:
            result = None
        event: dict[str, Any] = {
            "type": "result",
            "id": entry_id,
            "source_id": text(f.get("source_id", "")),
            "worker": text(f.get("producer", "")),
            "result": result,
        }
        utt = f.get("utterance")
        if utt is not None:
            u = text(utt)
            event["utterance"] = int(u) if u.isdigit() else u
        session.emit(event)
        self.metrics.redis_relayed.inc()
        self.relayed += 1
        return True
