"""The server's state: sessions, connections, the shared source, limits and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .config import Limit, ServerConfig
from .limits import ConnectionGuard, StorageBudget, proxy_networks
from .messages import Close, ErrorCode, error_event
from .metrics import ServerMetrics
from .options import PIPELINE_RATE, WINDOW
from .pipeline import WindowBatcher
from .protocol import StartMessage
from .reclaim import Reclaimer
from .sessions import Session, new_session_id
from .streams import RedisBridge
from .writer import FileWriter

if TYPE_CHECKING:
    from .connection import Connection


class Hub:
    """The server's state: sessions, connections, the shared source, limits, metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.in_grace: OrderedDict[str, Session] = OrderedDict()  # oldest first
        self.connections: set[Connection] = set()  # open WebSockets (sockets, outboxes: theirs)
        self.tasks: set[asyncio.Future[Any]] = set()
        self.budget = StorageBudget(config.max_out_bytes, config.out_dir)
        self.metrics = ServerMetrics(
            clients=lambda: float(len(self.connections)),
            sessions=lambda: float(len(self.sessions)),
            queue_depth=lambda: float(sum(len(c.outbox) for c in self.connections)),
            queue_depth_max=lambda: float(
                max((len(c.outbox) for c in self.connections), default=0)
            ),
            grace=lambda: float(len(self.in_grace)),
            out_bytes=lambda: float(self.budget.used),
            redis_waiting=lambda: self.redis.waiting() if self.redis is not None else 0.0,
            multiprocess_dir=config.metrics_dir,
        )
        self._metrics_refresh: asyncio.Task[None] | None = None
        self.guard = ConnectionGuard(
            max_connections=config.max_connections,
            request_timeout=config.request_timeout_s,
            on_limit=self.limit_reached,
        )
        self.proxies = proxy_networks(config.trusted_proxies)  # --trusted-proxy, parsed once
        self.shared: Session | None = None
        self._source_sub: Any = None
        self._shared_running = False
        self.batcher: WindowBatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: AsyncIOScheduler | None = None
        # frees ended sessions and connections soon after they end (see reclaim.py)
        self.reclaim: Reclaimer | None = None
        self.stopping = False
        self.started = time.time()
        self.redis: RedisBridge | None = None
        self.files: FileWriter | None = None  # utterance WAVs, off the loop (writer.py)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def startup(self, _: web.Application | None = None) -> None:
        """Bind to the running loop; start the shared source if configured."""
        self._loop = asyncio.get_running_loop()
        self._scheduler = AsyncIOScheduler(self._loop)
        if self.config.out_dir is not None:
            self.files = FileWriter(self._loop)
        self.reclaim = Reclaimer(
            self._loop,
            observe=self.metrics.reclaim.observe,
            collected=self.metrics.reclaim_collections.inc,
        )
        if self.config.options.backend == "silero" and self.config.batch:
            self.batcher = WindowBatcher(
                self.metrics, self._loop, max_wait=self.config.batch_wait_s
            )
        cfg = self.config
        if cfg.redis_url is not None:
            self.redis = RedisBridge(
                cfg.redis_url,
                stream=cfg.redis_stream,
                results=cfg.redis_results or "",
                metrics=self.metrics,
                sessions=self.sessions,
                audio=cfg.redis_audio,
                audio_dir=(
                    os.path.join(cfg.out_dir, "redis-audio")
                    if cfg.redis_audio == "file" and cfg.out_dir is not None
                    else None
                ),
                retry_s=cfg.redis_retry_s,
            )
            await self.redis.start()
        if self.config.source is not None:
            self._start_shared()
        if self.config.metrics_dir is not None:
            self._metrics_refresh = self._loop.create_task(self._refresh_metrics())

    async def _refresh_metrics(self, period_s: float = 1.0) -> None:
        # one of several processes: another worker's /metrics reads this process's gauges
        # (connections, sessions, queues) from the shared files, so keep them current there
        while True:
            await asyncio.sleep(period_s)
            self.metrics.refresh()

    async def shutdown(self, _: web.Application | None = None) -> None:
        """Flush every pipeline, then close every connection, all within a bound.

        Sessions are closed first, so every file is complete before any network wait. Then the
        last events get ``shutdown_timeout_s`` to reach the clients and the close frame (1001)
        as long again; a client that does not read by then has its connection cut. Shutdown
        therefore takes at most about twice ``shutdown_timeout_s`` whatever clients do.
        """
        self.stopping = True
        self._shared_running = False
        if self.reclaim is not None:
            self.reclaim.cancel()
        if self._source_sub is not None:
            self._source_sub.dispose()
            self._source_sub = None
        for s in list(self.sessions.values()):
            s.close("server shutdown")
        self.sessions.clear()
        self.in_grace.clear()
        if self.files is not None:  # every utterance on disk, its events and log lines out
            await self.files.drain()
            self.files.close()
        wait = self.config.shutdown_timeout_s
        conns = list(self.connections)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(c.outbox.drain(wait) for c in conns))
        await asyncio.gather(
            *(c.close(Close.GOING_AWAY, "server shutdown", wait) for c in conns),
            return_exceptions=True,
        )
        if self.redis is not None:  # after the sessions: their last events go out too
            await self.redis.stop()
        if self._metrics_refresh is not None:
            self._metrics_refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._metrics_refresh
            self._metrics_refresh = None
            self.metrics.refresh()  # the gauges as they end (no connections, no sessions)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "Hub.startup() must run first"
        return self._loop

    def limit_reached(self, limit: Limit) -> None:
        """Count a limit that refused or ended something (``/metrics``)."""
        self.metrics.limits.inc(limit)

    def new_session(
        self, start: StartMessage, session_id: str | None = None, *, shared: bool = False
    ) -> Session:
        """Create and register a session for ``start``."""
        assert self._scheduler is not None
        defaults = self.config.options
        settings = {**defaults.settings, **start.options}
        sid = session_id or new_session_id(self.config.worker)
        if session_id is None and self.config.instance is not None:
            sid = f"{self.config.instance}-{sid}"  # --instance: the proxy routes resumes by it
        s = Session(
            sid,
            sample_rate=start.sample_rate,
            channels=start.channels,
            options=replace(defaults, events=start.events, settings=settings),
            out_dir=self.config.out_dir,
            metrics=self.metrics,
            loop=self.loop,
            scheduler=self._scheduler,
            batcher=self.batcher,
            budget=self.budget,
            max_bytes=self.config.max_session_bytes,
            on_limit=self._storage_limit,
            replay=not shared,
            publish=self.redis.publish if self.redis is not None else None,
            files=self.files,
        )
        self.sessions[sid] = s
        return s

    def end_session(self, s: Session, reason: str) -> None:
        """Close a session and forget it (its files stay); its memory is freed soon after."""
        s.close(reason)
        if self.sessions.get(s.id) is s:
            del self.sessions[s.id]
        if self.in_grace.get(s.id) is s:
            del self.in_grace[s.id]
        self.ended(s)

    def ended(self, what: object) -> None:
        """A session or a connection ended: check soon that it was freed (see reclaim.py)."""
        if self.reclaim is not None and not self.stopping:
            self.reclaim.soon(what)

    def hold(self, s: Session) -> None:
        """Keep a session whose client vanished for its grace period (bounded in number)."""
        grace = self.config.grace_s
        if grace == 0:
            self.end_session(s, "client gone")
            return
        self.in_grace[s.id] = s
        s.grace = self.loop.call_later(grace, self.end_session, s, "client gone")
        while len(self.in_grace) > self.config.max_grace_sessions:
            _, oldest = next(iter(self.in_grace.items()))
            self.limit_reached(Limit.GRACE_SESSIONS)
            self.end_session(oldest, "grace limit (--max-grace-sessions)")

    def resumed(self, s: Session) -> None:
        """A session in grace got its client back."""
        if self.in_grace.get(s.id) is s:
            del self.in_grace[s.id]

    def _storage_limit(self, s: Session, limit: Limit) -> None:
        # called from inside the session's chain: end it on the next loop turn, not re-entrantly
        self.limit_reached(limit)
        self.loop.call_soon(self._end_for_limit, s, limit)

    def _end_for_limit(self, s: Session, limit: str) -> None:
        if s.closed:
            return
        owner = s.owner
        self.end_session(s, f"{limit} limit")
        if owner is not None:
            owner.session_ended(s, f"{limit} limit")

    # ---- shared source -----------------------------------------------------------------------
    def _start_shared(self) -> None:
        source = self.config.source
        if source == "mic":
            from ..sources import from_microphone

            obs: Any = from_microphone(
                self.config.device, sample_rate=PIPELINE_RATE, block_size=WINDOW
            )
            rate, channels = PIPELINE_RATE, 1
        else:
            from ..sources import from_file

            assert source is not None
            obs = from_file(source, block_size=WINDOW, realtime=True)
            rate, channels = obs.info.sample_rate, obs.info.channels
        start = StartMessage(rate, channels, "float32", events=self.config.options.events)
        self.shared = self.new_session(
            start, session_id="shared-" + new_session_id()[:8], shared=True
        )
        loop = self.loop

        # these run on the source's thread; after shutdown the loop may be closed already
        def on_next(frame: Any) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._feed_shared, frame.samples, loop.time())

        def on_error(exc: Exception) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._shared_failed, exc)

        def on_completed() -> None:  # a file source loops
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(resubscribe)

        def resubscribe() -> None:
            if self._shared_running:
                self._source_sub = obs.subscribe(on_next, on_error, on_completed)

        self._shared_running = True
        self._source_sub = obs.subscribe(on_next, on_error, on_completed)

    def open_external(self, sample_rate: int, channels: int) -> Session:
        """Open the shared session for an outside source (so viewers can ``listen`` at once)."""
        if self.shared is None or self.shared.closed:
            start = StartMessage(
                sample_rate, channels, "float32", events=self.config.options.events
            )
            self.shared = self.new_session(start, "shared-" + new_session_id()[:8], shared=True)
        return self.shared

    def feed_external(self, samples: Any, sample_rate: int) -> None:
        """Feed the shared session from an outside source (on the loop's thread).

        The session is opened at the first frame's format (or reopened, when it was opened at
        another format and has not received audio yet); later frames at another format are
        refused with an error event to the listeners.
        """
        fmt = (sample_rate, samples.shape[1])
        shared = self.shared
        if (
            shared is not None
            and shared.received == 0
            and (shared.sample_rate, shared.channels) != fmt
        ):
            self.end_session(shared, "reopened at the source's format")
            self.shared = None
        shared = self.open_external(*fmt)
        if (shared.sample_rate, shared.channels) != fmt:
            shared.emit(error_event(ErrorCode.SOURCE_ERROR, "the shared source changed its format"))
            return
        self._feed_shared(samples, self.loop.time())

    def _feed_shared(self, samples: Any, arrival: float) -> None:
        if self.shared is not None and not self.shared.closed:
            self.shared.feed(samples, arrival)

    def _shared_failed(self, exc: Exception) -> None:
        if self.shared is not None:
            self.shared.emit(error_event(ErrorCode.SOURCE_ERROR, f"server source failed: {exc}"))
            self.end_session(self.shared, "source error")
