"""``rxaudio serve --redis URL``: sessions' speech events and utterances out to a Redis stream,
workers' results back to the sessions' clients.

Out: every ``speech_start``, ``speech_end`` and ``utterance`` a session emits (the very event
its clients get, ``seq`` and utterance ``id`` included) becomes one entry of the deployment's
stream, with ``session`` (the session id) as a field and, for an utterance, its audio, written
by the ``redis`` sink's writer (:class:`~rxaudio.sinks.RedisWriter`: bounded queue, its own
thread, retries with back-off, nothing written twice). The event loop never waits for Redis.
When the writer gives up (an outage longer than ``--redis-retry``, or a full buffer), what it
could not write is counted (``rxaudio_redis_entries_not_written_total``), logged, and a new
writer takes over for the events that follow.

Back: a task reads the results stream (``XREAD``, from the moment the server started) and
sends each result that names a session of this process to that session's clients as a
``result`` event (``docs/protocol.md``). Results for sessions elsewhere (another process of
``--processes N``, or another server) are left to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..frames import Utterance
from ..io.streams import DEFAULT_RETRY_S, check_url, shown_url, text, unreachable, why
from ..sinks import RedisEntry, RedisWriter
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from .sessions import Session

log = logging.getLogger("rxaudio.server")

RELAY_BLOCK_MS = 1000
RELAY_COUNT = 256


def probe(url: str, results: str = "") -> str:
    """PING ``url``; return the results stream's newest id (``0-0`` when empty). Redis away is
    a :class:`ConfigError` in one line."""
    from ..io.streams import connect

    client = connect(url, timeout_s=5.0, name="rxaudio-serve")
    try:
        client.ping()
        top = client.xrevrange(results, count=1) if results else []
    except Exception as exc:
        raise ConfigError(
            f"serve: --redis {shown_url(url)}: cannot reach it ({why(exc)}); start "
            "redis-server there or drop --redis"
        ) from None
    finally:
        client.close()
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
        self._writer_options: dict[str, Any] = {
            "stream": stream,
            "audio": audio,
            "audio_dir": audio_dir,
            "retry_s": retry_s,
            "buffer": buffer,
        }
        self.writer: RedisWriter | None = None
        self._counted = 0  # of the current writer's written entries, already in the counter
        self._relay: asyncio.Task[None] | None = None
        self._sync: asyncio.Task[None] | None = None
        self.relayed = 0

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check Redis answers (a :class:`ConfigError` in one line when not), start the writer
        and the relay."""
        loop = asyncio.get_running_loop()
        last = await loop.run_in_executor(None, probe, self.url, self.results)
        self.writer = self._new_writer()
        self._sync = loop.create_task(self._sync_metrics())
        if self.results:
            self._relay = loop.create_task(self._relay_results(last))

    def _new_writer(self) -> RedisWriter:
        self._counted = 0
        return RedisWriter(self.url, **self._writer_options)

    async def stop(self) -> None:
        """Stop relaying; write what is queued (bounded by ``retry_s``), then count it."""
        for task in (self._relay, self._sync):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._relay = self._sync = None
        writer, self.writer = self.writer, None
        if writer is not None:
            receipt = await asyncio.get_running_loop().run_in_executor(None, writer.close)
            self._count(writer)
            if receipt.not_written:
                self.metrics.redis_not_written.inc(receipt.not_written)
                log.warning(
                    "serve --redis: %d entries not written to %s at shutdown",
                    receipt.not_written,
                    self.shown,
                )

    # --- out ----------------------------------------------------------------------------------
    def publish(self, session: Session, event: dict[str, Any], item: Any) -> None:
        """Queue one speech event of ``session`` (with the utterance's audio when it is one)."""
        writer = self.writer
        if writer is None:
            return
        if writer.failed:
            self._replace(writer)
            writer = self.writer
            assert writer is not None
        audio = item if isinstance(item, Utterance) else event
        if not writer.put(RedisEntry(audio, {"session": session.id}, record=event)):
            self.metrics.redis_not_written.inc()

    def _replace(self, writer: RedisWriter) -> None:
        self._count(writer)
        lost = writer.waiting
        log.error(
            "serve --redis: %s; %d entries lost; writing on with a new connection",
            writer.error,
            lost,
        )
        self.metrics.redis_not_written.inc(lost)
        writer.close()  # failed: returns at once
        self.writer = self._new_writer()

    def _count(self, writer: RedisWriter) -> None:
        n = writer.written
        if n > self._counted:
            self.metrics.redis_written.inc(n - self._counted)
            self._counted = n

    def waiting(self) -> float:
        """Entries queued, not yet written (the gauge)."""
        w = self.writer
        return float(w.waiting) if w is not None else 0.0

    async def _sync_metrics(self, period_s: float = 0.5) -> None:
        while True:
            await asyncio.sleep(period_s)
            w = self.writer
            if w is not None:
                self._count(w)
                if w.failed:
                    self._replace(w)

    # --- back ---------------------------------------------------------------------------------
    async def _relay_results(self, last: str) -> None:
        import redis.asyncio as aredis

        client: Any = None
        delay, warned = 0.05, False
        try:
            while True:
                try:
                    if client is None:
                        client = aredis.Redis.from_url(self.url, socket_timeout=None)
                    got = await client.xread(
                        {self.results: last}, count=RELAY_COUNT, block=RELAY_BLOCK_MS
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not unreachable(exc):
                        log.error("serve --redis: relaying results stopped: %s", why(exc))
                        return
                    if not warned:
                        log.warning("serve --redis: lost %s (%s); retrying", self.shown, why(exc))
                        warned = True
                    with contextlib.suppress(Exception):
                        await client.aclose()
                    client = None
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, 1.0)
                    continue
                delay, warned = 0.05, False
                for _stream, entries in got or []:
                    for entry_id, fields in entries:
                        last = text(entry_id)
                        self.deliver(last, fields)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

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
