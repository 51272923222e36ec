"""The aiohttp application: page, WebSocket protocol, files, health and metrics.

Routes
------
``GET /``                     the browser page (``rxaudio/apps/web/index.html``)
``GET /static/{file}``        its scripts and styles
``GET /ws``                   the WebSocket (protocol in ``docs/protocol.md``)
``GET /files/{session}/{f}``  a session's utterance WAVs and ``events.jsonl``
``GET /healthz``              JSON liveness
``GET /metrics``              Prometheus text format

Every request must name this server in ``Host`` (DNS-rebinding protection, see
:func:`~rxaudio.server.limits.host_allowed`); a browser's WebSocket must come from this
server's own page (``Origin``: same scheme, name and port) unless ``--any-origin``. Behind a
proxy named by ``--trusted-proxy`` the public scheme, name and client address are the ones it
forwards (:func:`~rxaudio.server.limits.forwarded_view`), from nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from .. import __version__
from ..errors import ConfigError
from .config import ServerConfig, hello_limits
from .connection import Connection
from .hub import Hub
from .limits import forwarded_view, host_allowed, origin_allowed
from .messages import ErrorCode
from .metrics import CONTENT_TYPE
from .pipeline import default_settings
from .protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, ProtocolError, hello_event, show

log = logging.getLogger("rxaudio.server")

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "apps", "web")
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FILE_RE = re.compile(r"^(utt-\d{4,}\.wav|events\.jsonl)$")

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    # headers may hold any bytes (aiohttp keeps undecodable ones as surrogates)
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


@web.middleware
async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse requests whose ``Host`` is not a name this server answers to (DNS rebinding)."""
    hub = request.app[HUB]
    hub.guard.begin(request.protocol)
    try:
        cfg = hub.config
        host = request.headers.get("Host", "")
        if hub.proxies:  # behind a named proxy: the public scheme, name and client it reports
            view = forwarded_view(request.remote, request.headers, hub.proxies, request.forwarded)
            if view:
                host = view.get("host", host)
                request = request.clone(
                    scheme=view.get("scheme", request.scheme),
                    host=view.get("host", request.host),
                    remote=view.get("remote", request.remote or ""),
                )
        if not host_allowed(host, cfg.host, cfg.allowed_hosts):
            raise web.HTTPMisdirectedRequest(
                text=f"Host {show(host)} is not a name this server answers to; use its "
                "address, localhost, or start it with --allowed-host NAME\n"
            )
        return await handler(request)
    finally:
        hub.guard.end(request.protocol)


async def websocket(request: web.Request) -> web.StreamResponse:
    """The ``/ws`` endpoint."""
    hub = request.app[HUB]
    if not _authorized(request, hub.config.token):
        raise web.HTTPUnauthorized(text="missing or wrong token; connect with ?token=...")
    origin = request.headers.get("Origin")
    if (
        origin is not None
        and not hub.config.any_origin
        and not origin_allowed(origin, request.scheme, request.host, hub.config.page_port)
    ):
        # a page from another site must not drive this server through the visitor's browser
        raise web.HTTPForbidden(
            text=f"WebSocket from origin {origin} refused; serve the page from this server "
            "or start it with --any-origin"
        )
    if hub.stopping:
        raise web.HTTPServiceUnavailable(text="the server is shutting down")
    ws = web.WebSocketResponse(
        heartbeat=hub.config.heartbeat_s,
        autoping=False,  # pings and pongs come to the loop below: fair turns and rate limit
        max_msg_size=4 * MAX_MESSAGE_BYTES,
        compress=False,
        writer_limit=hub.config.socket_buffer,
        timeout=hub.config.shutdown_timeout_s,
    )
    try:
        await ws.prepare(request)
    except (ConnectionError, OSError) as exc:  # the peer reset during the upgrade
        peer = request.remote or "?"
        log.info("rxaudio serve: %s left during the WebSocket upgrade (%s)", peer, exc)
        # a fresh response: aiohttp's attempt to send it meets the closed connection quietly
        # (finishing the half-prepared WebSocket would raise "Call .prepare() first")
        return web.Response(status=400)
    _limit_buffers(request, hub.config.socket_buffer)
    conn = Connection(hub, ws, request)
    hub.connections.add(conn)
    sender = asyncio.create_task(conn.outbox.run())
    has_source = hub.shared is not None and not hub.shared.closed
    modes = ["client"] + (["listen"] if has_source else [])
    cfg = hub.config
    defaults = {**default_settings(), **cfg.options.settings}  # what a start without options gets
    conn.send(
        hello_event(
            modes=modes,
            server=f"rxaudio {__version__}",
            limits=hello_limits(cfg),
            defaults=defaults,
        )
    )
    try:
        # the messages are read by a task of their own: each of its awaits resumes only its
        # own coroutine, not this handler under the middlewares (a cancelled handler cancels it)
        await asyncio.ensure_future(_messages(conn, ws, hub.loop))
    except (ConnectionError, OSError) as exc:
        log.info("rxaudio serve: connection from %s lost (%s)", request.remote or "?", exc)
    finally:
        conn.disconnected()
        hub.connections.discard(conn)
        hub.ended(conn)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
    return ws


async def _messages(
    conn: Connection, ws: web.WebSocketResponse, loop: asyncio.AbstractEventLoop
) -> None:
    """A connection's messages, one per turn of the loop, until it closes."""
    async for msg in ws:
        try:
            if msg.type == WSMsgType.BINARY:
                conn.on_binary(msg.data, loop.time())
            elif msg.type == WSMsgType.TEXT:
                conn.on_text(msg.data)
            elif msg.type == WSMsgType.PING:
                conn.on_ping_pong()
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.on_ping_pong()
            elif msg.type == WSMsgType.ERROR:
                break
        except ProtocolError as err:
            await conn.fail(err)
        except ConfigError as err:  # e.g. a setting the operators refuse
            await conn.fail(ProtocolError(ErrorCode.BAD_CONFIG, str(err)))
        # fairness: every connection gets one message per turn of the loop, whatever kind
        # and however many it has queued, instead of its whole backlog at once
        await asyncio.sleep(0)


async def index(request: web.Request) -> web.StreamResponse:
    """The page."""
    return web.FileResponse(os.path.join(WEB_DIR, "index.html"))


async def files(request: web.Request) -> web.StreamResponse:
    """A session's file, by name (only the names sessions write)."""
    hub = request.app[HUB]
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
    hub = request.app[HUB]
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "clients": len(hub.connections),
            "sessions": len(hub.sessions),
            "uptime_s": round(time.time() - hub.started, 1),
        }
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prometheus text exposition."""
    hub = request.app[HUB]
    return web.Response(body=hub.metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})


class OneLineErrors(logging.Filter):
    """Malformed requests are a client's problem: one line each in the log, no traceback.

    aiohttp logs every request it cannot parse (a bad header, a missing ``Host``, raw bytes in
    the URL) with a full traceback, so anyone could fill the log with them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if isinstance(exc, HttpProcessingError | ConnectionError):
                record.msg = f"{record.getMessage()}: {type(exc).__name__}: {show(str(exc))}"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
        return True


def quiet_client_errors() -> None:
    """Install :class:`OneLineErrors` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineErrors) for f in logger.filters):
        logger.addFilter(OneLineErrors())


def create_app(config: ServerConfig | None = None) -> web.Application:
    """Build the aiohttp application (its hub is ``app[HUB]``).

    Whoever runs it should call :func:`guard` on its runner after ``setup()``: aiohttp itself
    neither caps connections nor times out a connection that never sends a request.
    """
    hub = Hub(config or ServerConfig())
    quiet_client_errors()
    app = web.Application(middlewares=[check_host])
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


def guard(runner: web.AppRunner) -> None:
    """Install the connection limits (count, time to first request) on a set-up runner."""
    server = runner.server
    assert server is not None, "guard(runner) after runner.setup()"
    runner.app[HUB].guard.install(server)
