"""The aiohttp application: page, WebSocket protocol, files, health and metrics.

Routes
------
``GET /``                     the browser page (``rxaudio/apps/web/index.html``)
``GET /static/{file}``        its scripts and styles
``GET /ws``                   the WebSocket (protocol in ``docs/protocol.md``)
``GET /files/{session}/{f}``  a session's utterance WAVs and ``events.jsonl``
``GET /healthz``              JSON liveness
``GET /metrics``              Prometheus text format
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from reactivex.scheduler.eventloop import AsyncIOScheduler

from .. import __version__
from ..errors import ConfigError
from .metrics import CONTENT_TYPE, ServerMetrics
from .pipeline import ChainOptions, WindowBatcher
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TAKEN_OVER,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    StartMessage,
    decode_audio,
    error_event,
    hello_event,
    parse_options,
    parse_start,
    parse_text,
)
from .sessions import Outbox, Session, new_session_id

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "apps", "web")
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FILE_RE = re.compile(r"^(utt-\d{4,}\.wav|events\.jsonl)$")
MAX_ERRORS = 32


@dataclass
class ServerConfig:
    """Everything ``rxaudio serve`` can set.

    Parameters
    ----------
    out_dir
        Where sessions write ``<session>/utt-NNNN.wav`` and ``<session>/events.jsonl``;
        ``None`` writes nothing (utterance events then carry no URL).
    token
        When set, ``/ws`` and ``/files`` require ``?token=`` (or ``Authorization: Bearer``).
    source
        The server-side input shared by every ``listen`` client: ``None`` (clients only),
        ``"mic"`` (the default input device) or an audio file played in real time, looped.
    grace_s
        How long a disconnected client's session (pipeline, files) waits to be resumed.
    queue_max
        Events each connection's outbound queue holds before dropping the oldest.
    heartbeat_s
        WebSocket ping interval; a peer that misses a pong for half of it is disconnected.
    socket_buffer
        Bytes of kernel send buffer and of transport buffer per connection. Kept small on
        purpose: a slow client's backlog then waits in its outbox, where the oldest events are
        dropped, instead of megabytes of stale events queuing in the kernel.
    batch
        Score every session's Silero windows together (one onnxruntime call per loop
        iteration); ``False`` gives each session its own scorer (the benchmark's reference).
    batch_wait_s
        How long a window waits for the other sessions' before its batch is scored anyway.
    any_origin
        Accept WebSockets opened by pages from other origins (browsers send ``Origin``; by
        default only this server's own page may connect; programs send no ``Origin``).
    options
        Default chain options for every session.
    """

    out_dir: str | None = None
    token: str | None = None
    source: str | None = None
    grace_s: float = 30.0
    queue_max: int = 256
    heartbeat_s: float = 20.0
    socket_buffer: int = 16384
    batch: bool = True
    batch_wait_s: float = 0.005
    any_origin: bool = False
    options: ChainOptions = field(default_factory=ChainOptions)
    device: int | str | None = None

    def __post_init__(self) -> None:
        if self.grace_s < 0:
            raise ConfigError(f"serve: grace must be >= 0 seconds, got {self.grace_s}")
        if self.queue_max < 8:
            raise ConfigError(f"serve: queue size must be at least 8, got {self.queue_max}")
        if self.socket_buffer < 4096:
            raise ConfigError(
                f"serve: socket buffer must be >= 4096 bytes, got {self.socket_buffer}"
            )
        if not 0 <= self.batch_wait_s <= 0.1:
            raise ConfigError(f"serve: batch wait must be 0-100 ms, got {self.batch_wait_s}")
        if self.heartbeat_s <= 0:
            raise ConfigError(f"serve: heartbeat must be > 0 seconds, got {self.heartbeat_s}")
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
            if not os.access(self.out_dir, os.W_OK):
                raise ConfigError(f"serve: --out {self.out_dir} is not writable")
        if self.source not in (None, "mic") and not os.path.isfile(self.source):
            raise ConfigError(
                f"serve: --source {self.source}: no such file; give an audio file or 'mic'"
            )


class Hub:
    """The server's state: sessions, connections, the shared source, metrics."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.outboxes: set[Outbox] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        self.tasks: set[asyncio.Future[Any]] = set()
        self.metrics = ServerMetrics(
            clients=lambda: float(len(self.sockets)),
            sessions=lambda: float(len(self.sessions)),
            queue_depth=lambda: float(sum(len(o) for o in self.outboxes)),
            queue_depth_max=lambda: float(max((len(o) for o in self.outboxes), default=0)),
        )
        self.shared: Session | None = None
        self._source_sub: Any = None
        self._shared_running = False
        self.batcher: WindowBatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self.started = time.time()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def startup(self, _: web.Application | None = None) -> None:
        """Bind to the running loop; start the shared source if configured."""
        self._loop = asyncio.get_running_loop()
        self._scheduler = AsyncIOScheduler(self._loop)
        if self.config.options.backend == "silero" and self.config.batch:
            self.batcher = WindowBatcher(
                self.metrics, self._loop, max_wait=self.config.batch_wait_s
            )
        if self.config.source is not None:
            self._start_shared()

    async def shutdown(self, _: web.Application | None = None) -> None:
        """Flush and close every pipeline, then close every WebSocket (going away)."""
        self._shared_running = False
        if self._source_sub is not None:
            self._source_sub.dispose()
            self._source_sub = None
        for s in list(self.sessions.values()):
            s.close("server shutdown")
        self.sessions.clear()
        # the pipelines' last events (speech_end, the end_of_stream utterance) are queued now:
        # let them reach the clients before the close frame (bounded: a stalled client waits
        # at most a second)
        outboxes = list(self.outboxes)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(ob.drain(1.0) for ob in outboxes))
        for ob in outboxes:
            ob.close()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=CLOSE_GOING_AWAY, message=b"server shutdown")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "Hub.startup() must run first"
        return self._loop

    def new_session(self, start: StartMessage, session_id: str | None = None) -> Session:
        """Create and register a session for ``start``."""
        assert self._scheduler is not None
        defaults = self.config.options
        settings = {**defaults.settings, **start.options}
        sid = session_id or new_session_id()
        s = Session(
            sid,
            sample_rate=start.sample_rate,
            channels=start.channels,
            options=ChainOptions(events=start.events, backend=defaults.backend, settings=settings),
            out_dir=self.config.out_dir,
            metrics=self.metrics,
            loop=self.loop,
            scheduler=self._scheduler,
            batcher=self.batcher,
        )
        self.sessions[sid] = s
        return s

    def end_session(self, s: Session, reason: str) -> None:
        """Close a session and forget it (its files stay)."""
        s.close(reason)
        if self.sessions.get(s.id) is s:
            del self.sessions[s.id]

    # ---- shared source -----------------------------------------------------------------------
    def _start_shared(self) -> None:
        source = self.config.source
        if source == "mic":
            from ..sources import from_microphone

            obs: Any = from_microphone(self.config.device, sample_rate=16000, block_size=512)
            rate, channels = 16000, 1
        else:
            from ..sources import from_file

            assert source is not None
            obs = from_file(source, block_size=512, realtime=True)
            rate, channels = obs.info.sample_rate, obs.info.channels
        start = StartMessage(rate, channels, "float32", events=self.config.options.events)
        self.shared = self.new_session(start, session_id="shared-" + new_session_id()[:8])
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
            self.shared = self.new_session(start, "shared-" + new_session_id()[:8])
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
            shared.emit(error_event("source_error", "the shared source changed its format"))
            return
        self._feed_shared(samples, self.loop.time())

    def _feed_shared(self, samples: Any, arrival: float) -> None:
        if self.shared is not None and not self.shared.closed:
            self.shared.feed(samples, arrival)

    def _shared_failed(self, exc: Exception) -> None:
        if self.shared is not None:
            self.shared.emit(error_event("source_error", f"server source failed: {exc}"))
            self.end_session(self.shared, "source error")


HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)


class Connection:
    """One WebSocket: its outbox, its session (client mode) or the shared one (listen)."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse) -> None:
        self.hub = hub
        self.ws = ws
        self.outbox = Outbox(ws.send_str, hub.metrics, maxlen=hub.config.queue_max)
        self.session: Session | None = None
        self.start: StartMessage | None = None
        self.listening = False
        self.errors = 0

    def send(self, event: dict[str, Any]) -> None:
        self.outbox.put(event, self.hub.loop.time())

    async def fail(self, err: ProtocolError) -> None:
        """Answer a protocol error; close the socket when it must, or after too many."""
        self.errors += 1
        self.hub.metrics.errors.inc()
        self.send(err.event())
        close = err.close
        if close is None and self.errors >= MAX_ERRORS:
            close = CLOSE_POLICY
            self.send(error_event("too_many_errors", f"{MAX_ERRORS} protocol errors; closing"))
        if close is not None:
            await self.outbox.drain()  # the error event goes out before the close frame
            self.outbox.close()
            await self.ws.close(code=close, message=err.code.encode()[:120])

    def on_text(self, text: str) -> None:
        if len(text) > MAX_MESSAGE_BYTES // 4 and len(text.encode()) > MAX_MESSAGE_BYTES:
            raise ProtocolError(
                "too_big",
                f"text message of {len(text.encode())} bytes exceeds {MAX_MESSAGE_BYTES}",
                close=1009,
            )
        msg = parse_text(text)
        kind = msg["type"]
        if kind == "start":
            self._start(parse_start(msg))
        elif kind == "config":
            self._config(msg)
        elif kind == "stop":
            self._stop()
        elif kind == "listen":
            self._listen()
        elif kind == "ping":
            ev: dict[str, Any] = {"type": "pong"}
            if "id" in msg:
                ev["id"] = msg["id"]
            self.send(ev)
        else:
            raise ProtocolError(
                "unknown_type",
                f"unknown message type {kind!r}; use start, config, stop, listen or ping",
            )

    def on_binary(self, data: bytes, arrival: float) -> None:
        if self.session is None or self.start is None:
            raise ProtocolError(
                "not_started", "binary audio before start; send a start message first"
            )
        if len(data) > MAX_MESSAGE_BYTES:
            raise ProtocolError(
                "too_big",
                f"binary message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}",
                close=1009,
            )
        samples = decode_audio(data, self.start)
        self.session.feed(samples, arrival)

    def _start(self, start: StartMessage) -> None:
        if self.session is not None and self.session.failed is not None and not self.listening:
            self.hub.end_session(self.session, "pipeline error")  # a failed session ends here
            self.session = None
        if self.session is not None or self.listening:
            raise ProtocolError(
                "already_started", "this connection already started; send stop first"
            )
        hub = self.hub
        resumed = False
        s = hub.sessions.get(start.session) if start.session else None
        if (
            s is not None
            and not s.closed
            and s.failed is None
            and s is not hub.shared
            and (s.sample_rate, s.channels) == (start.sample_rate, start.channels)
        ):
            if start.options:
                s.configure(start.options)
            old = s.owner
            if old is not None and old is not self:
                # the client came back before we noticed its old connection died (a half-open
                # TCP connection): the new connection takes the session over
                old.session = None
                s.detach(old.outbox)
                task = asyncio.ensure_future(
                    old.ws.close(code=CLOSE_TAKEN_OVER, message=b"session resumed elsewhere")
                )
                hub.tasks.add(task)
                task.add_done_callback(hub.tasks.discard)
            resumed = True
        else:
            s = hub.new_session(start)
        self.session, self.start = s, start
        s.owner = self
        s.attach(self.outbox)
        self.send(
            {
                "type": "started",
                "session": s.id,
                "resumed": resumed,
                "received": s.received,
                "sample_rate": s.sample_rate,
                "channels": s.channels,
                "format": start.format,
                "pipeline_rate": 16000,
                "settings": s.settings.value,
                "events": list(s.options.events),
            }
        )

    def _config(self, msg: dict[str, Any]) -> None:
        if self.session is None:
            raise ProtocolError("not_started", "config before start; send a start message first")
        if self.listening:
            raise ProtocolError("bad_config", "listeners cannot retune the shared pipeline")
        settings = parse_options(msg.get("options"), context="config")
        merged = self.session.configure(settings)
        self.send({"type": "config", "settings": merged})

    def _stop(self) -> None:
        s = self.session
        if s is None:
            raise ProtocolError("not_started", "stop before start")
        if self.listening:
            s.detach(self.outbox)
        else:
            self.hub.end_session(s, "client stop")
            s.detach(self.outbox)
        self.send({"type": "stopped", "session": s.id, "received": s.received})
        self.session, self.start, self.listening = None, None, False

    def _listen(self) -> None:
        if self.session is not None:
            raise ProtocolError("already_started", "this connection already started")
        shared = self.hub.shared
        if shared is None or shared.closed:
            raise ProtocolError(
                "no_server_source", "this server has no shared source; start with --source"
            )
        self.session, self.listening = shared, True
        shared.attach(self.outbox)
        self.send(
            {
                "type": "started",
                "session": shared.id,
                "resumed": False,
                "listen": True,
                "received": shared.received,
                "sample_rate": shared.sample_rate,
                "channels": shared.channels,
                "pipeline_rate": 16000,
                "settings": shared.settings.value,
                "events": list(shared.options.events),
            }
        )

    def disconnected(self) -> None:
        """The socket is gone: keep a client session for its grace period, then close it."""
        s = self.session
        self.outbox.close()
        if s is None:
            return
        s.detach(self.outbox)
        if self.listening or s.closed:
            return
        s.owner = None
        hub = self.hub
        if hub.config.grace_s == 0:
            hub.end_session(s, "client gone")
        else:
            s.grace = hub.loop.call_later(hub.config.grace_s, hub.end_session, s, "client gone")


def _limit_buffers(request: web.Request, size: int) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    with contextlib.suppress(AttributeError, NotImplementedError):
        transport.set_write_buffer_limits(high=size)


def _authorized(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = given or auth[7:]
    return hmac.compare_digest(given.encode(), token.encode())


async def websocket(request: web.Request) -> web.StreamResponse:
    """The ``/ws`` endpoint."""
    hub: Hub = request.app[HUB]
    if not _authorized(request, hub.config.token):
        raise web.HTTPUnauthorized(text="missing or wrong token; connect with ?token=...")
    origin = request.headers.get("Origin")
    if origin and not hub.config.any_origin and urlsplit(origin).netloc != request.host:
        # a page from another site must not drive this server through the visitor's browser
        raise web.HTTPForbidden(
            text=f"WebSocket from origin {origin} refused; serve the page from this server "
            "or start it with --any-origin"
        )
    ws = web.WebSocketResponse(
        heartbeat=hub.config.heartbeat_s,
        max_msg_size=4 * MAX_MESSAGE_BYTES,
        compress=False,
        writer_limit=hub.config.socket_buffer,
    )
    await ws.prepare(request)
    _limit_buffers(request, hub.config.socket_buffer)
    conn = Connection(hub, ws)
    hub.sockets.add(ws)
    hub.outboxes.add(conn.outbox)
    sender = asyncio.create_task(conn.outbox.run())
    has_source = hub.shared is not None and not hub.shared.closed
    modes = ["client"] + (["listen"] if has_source else [])
    conn.send(hello_event(modes=modes, server=f"rxaudio {__version__}"))
    loop = hub.loop
    try:
        async for msg in ws:
            try:
                if msg.type == WSMsgType.BINARY:
                    conn.on_binary(msg.data, loop.time())
                    # fairness: a client sending faster than real time gets one frame per turn
                    # of the loop, like everyone else, instead of its whole backlog at once
                    await asyncio.sleep(0)
                elif msg.type == WSMsgType.TEXT:
                    conn.on_text(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
            except ProtocolError as err:
                await conn.fail(err)
            except ConfigError as err:  # e.g. a setting the operators refuse
                await conn.fail(ProtocolError("bad_config", str(err)))
    finally:
        conn.disconnected()
        hub.sockets.discard(ws)
        hub.outboxes.discard(conn.outbox)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    return ws


async def index(request: web.Request) -> web.StreamResponse:
    """The page."""
    return web.FileResponse(os.path.join(WEB_DIR, "index.html"))


async def files(request: web.Request) -> web.StreamResponse:
    """A session's file, by name (only the names sessions write)."""
    hub: Hub = request.app[HUB]
    if not _authorized(request, hub.config.token):
        raise web.HTTPUnauthorized(text="missing or wrong token")
    sid, name = request.match_info["session"], request.match_info["name"]
    if hub.config.out_dir is None or not _SESSION_RE.match(sid) or not _FILE_RE.match(name):
        raise web.HTTPNotFound()
    path = os.path.join(hub.config.out_dir, sid, name)
    if not os.path.isfile(path):
        raise web.HTTPNotFound()
    ctype = "audio/wav" if name.endswith(".wav") else "application/x-ndjson"
    return web.FileResponse(path, headers={"Content-Type": ctype})


async def healthz(request: web.Request) -> web.StreamResponse:
    """Liveness: status, version, counts."""
    hub: Hub = request.app[HUB]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "clients": len(hub.sockets),
            "sessions": len(hub.sessions),
            "uptime_s": round(time.time() - hub.started, 1),
        }
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text exposition."""
    hub: Hub = request.app[HUB]
    return web.Response(body=hub.metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})


def create_app(config: ServerConfig | None = None) -> web.Application:
    """Build the aiohttp application (its hub is ``app[HUB]``)."""
    hub = Hub(config or ServerConfig())
    app = web.Application()
    app[HUB] = hub
    app.on_startup.append(hub.startup)
    app.on_shutdown.append(hub.shutdown)
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/files/{session}/{name}", files)
    app.router.add_static("/static", WEB_DIR)
    return app
