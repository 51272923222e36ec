"""One WebSocket connection: the protocol's state machine, its limits and its outbox."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .config import Limit
from .limits import TokenBucket, WindowCounter
from .messages import (
    Close,
    ErrorCode,
    Started,
    Stopped,
    config_event,
    error_event,
    pong_event,
)
from .options import PIPELINE_RATE
from .protocol import (
    MAX_MESSAGE_BYTES,
    MAX_TEXT_BYTES,
    ProtocolError,
    StartMessage,
    decode_audio,
    parse_ack,
    parse_batch,
    parse_options,
    parse_ping_id,
    parse_start,
    parse_text,
    show,
)
from .sessions import Outbox, Session

if TYPE_CHECKING:
    from .hub import Hub

MAX_ERRORS = 32
DROP_NOTICE_S = 1.0  # audio dropped after a session ended: one error at most this often


class Connection:
    """One WebSocket: its outbox, its session (client mode) or the shared one (listen)."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.hub = hub
        self.ws = ws
        self.request = request
        self.outbox = Outbox(ws.send_str, hub.metrics, maxlen=hub.config.queue_max)
        self.session: Session | None = None
        self.start: StartMessage | None = None
        self.listening = False
        self.errors = 0
        self.ended: tuple[str, str] | None = None  # (session id, why) of a server-ended session
        now = hub.loop.time()
        cfg = hub.config
        self.control = TokenBucket(cfg.control_rate, cfg.control_burst, now)
        self.starts = WindowCounter(cfg.sessions_per_minute, 60.0)
        self._idle: asyncio.TimerHandle | None = None
        self._arm_idle()
        # audio refused after its session ended or failed: reported, coalesced (see _dropped)
        self._drop_last = -1e9
        self._drop_pending: tuple[ErrorCode, str, int, int] | None = (
            None  # code, prefix, frames, bytes
        )
        self._drop_timer: asyncio.TimerHandle | None = None

    def send(self, event: dict[str, Any]) -> None:
        self.outbox.put(event, self.hub.loop.time())

    # ---- ending -------------------------------------------------------------------------------
    async def fail(self, err: ProtocolError) -> None:
        """Answer a protocol error; close the socket when it must, or after too many."""
        self.errors += 1
        self.hub.metrics.errors.inc()
        self.send(err.event())
        close = err.close
        if close is None and self.errors >= MAX_ERRORS:
            close = Close.POLICY
            self.send(
                error_event(ErrorCode.TOO_MANY_ERRORS, f"{MAX_ERRORS} protocol errors; closing")
            )
        if close is not None:
            await self.outbox.drain()  # the error event goes out before the close frame
            await self.close(close, err.code, self.hub.config.shutdown_timeout_s)

    async def close(self, code: int, message: str, timeout: float) -> None:
        """Send the close frame; cut the connection if the peer does not take it in ``timeout``.

        A client that never reads leaves the close frame stuck behind a full socket buffer;
        waiting for it would hold shutdown (or this handler) for as long as TCP keeps trying.
        """
        self.outbox.close()
        task = asyncio.ensure_future(self.ws.close(code=code, message=message.encode()[:120]))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            self.abort()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 1.0)
        elif not task.cancelled():
            task.exception()  # retrieved: a peer that vanished meanwhile is not an error

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def _arm_idle(self) -> None:
        """(Re)start the start timeout: a connection without a session may idle that long."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        t = self.hub.config.start_timeout_s
        if t > 0:
            self._idle = self.hub.loop.call_later(t, self._idle_timeout)

    def _idle_timeout(self) -> None:
        self._idle = None
        if self.session is not None or self.ws.closed:
            return
        self.hub.limit_reached(Limit.START_TIMEOUT)
        self.send(
            error_event(
                ErrorCode.START_TIMEOUT,
                f"no start or listen within {self.hub.config.start_timeout_s:g} s "
                "(--start-timeout); connect again when there is audio to send",
            )
        )
        task = asyncio.ensure_future(
            self.close(Close.IDLE, "start_timeout", self.hub.config.shutdown_timeout_s)
        )
        self.hub.tasks.add(task)
        task.add_done_callback(self.hub.tasks.discard)

    def session_ended(self, s: Session, why: str) -> None:
        """The server ended our session (a limit): say so; later audio is refused by name."""
        if self.session is s and not self.listening:
            s.detach(self.outbox)
            self.send(Stopped(s.id, s.received, why).encode())
            self.session, self.start = None, None
            self.ended = (s.id, why)
            self._arm_idle()

    def _dropped(self, code: ErrorCode, prefix: str, nbytes: int) -> None:
        """A frame refused because its session is gone: say so, at most every DROP_NOTICE_S.

        The first refused frame gets an ``error`` naming it at once; later ones are counted
        and summed up in one ``error`` per second ("N more frames (B bytes)"), so every
        dropped byte is reported without an error flood, and none of it counts toward the
        protocol-error limit (the server ended the session, not the client's protocol).
        """
        now = self.hub.loop.time()
        if self._drop_pending is None and now - self._drop_last >= DROP_NOTICE_S:
            self._drop_last = now
            self.send(
                error_event(
                    code,
                    f"{prefix}; this frame of {nbytes} bytes was dropped; "
                    "send start for a new session",
                )
            )
            return
        _, _, frames, total = self._drop_pending or (code, prefix, 0, 0)
        self._drop_pending = (code, prefix, frames + 1, total + nbytes)
        if self._drop_timer is None:
            delay = max(0.0, self._drop_last + DROP_NOTICE_S - now)
            self._drop_timer = self.hub.loop.call_later(delay, self._flush_drops)

    def _flush_drops(self) -> None:
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        if self._drop_pending is None:
            return
        code, prefix, frames, total = self._drop_pending
        self._drop_pending = None
        self._drop_last = self.hub.loop.time()
        self.send(
            error_event(
                code,
                f"{prefix}; {frames} more frame{'s' if frames != 1 else ''} ({total} bytes) "
                "were dropped; send start for a new session",
            )
        )

    # ---- messages -----------------------------------------------------------------------------
    def _control(self) -> None:
        """Count one control message (text, or a WebSocket ping/pong) against the rate limit."""
        if not self.control.take(self.hub.loop.time()):
            self.hub.limit_reached(Limit.CONTROL_RATE)
            cfg = self.hub.config
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"more than {cfg.control_rate:g} text messages per second (bursts of "
                f"{cfg.control_burst:g}) on one connection (--control-rate); closing",
                close=Close.POLICY,
            )

    def on_ping_pong(self) -> None:
        """A WebSocket ping or pong frame: a control message like any other."""
        self._control()

    def on_text(self, text: str) -> None:
        self._control()
        if (
            len(text) > MAX_TEXT_BYTES // 4
            and len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES
        ):
            raise ProtocolError(
                ErrorCode.TOO_BIG,
                f"text message of {len(text.encode('utf-8', 'replace'))} bytes exceeds "
                f"{MAX_TEXT_BYTES} (control messages are small; audio goes in binary messages)",
                close=Close.TOO_BIG,
            )
        msg = parse_text(text)
        kind = msg["type"]
        if kind == "start":
            self._start(parse_start(msg, self.hub.config.options.events))
        elif kind == "config":
            self._config(msg)
        elif kind == "stop":
            self._stop()
        elif kind == "listen":
            self._listen(parse_batch(msg))
        elif kind == "ack":
            self._ack(parse_ack(msg))
        elif kind == "ping":
            self.send(pong_event(parse_ping_id(msg)))
        else:
            raise ProtocolError(
                ErrorCode.UNKNOWN_TYPE,
                f"unknown message type {show(kind)}; use start, config, stop, listen, ack or ping",
            )

    def on_binary(self, data: bytes, arrival: float) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ProtocolError(
                ErrorCode.TOO_BIG,
                f"binary message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}",
                close=Close.TOO_BIG,
            )
        s = self.session
        if s is None or self.start is None:
            if self.ended is not None:
                sid, why = self.ended
                self._dropped(ErrorCode.SESSION_ENDED, f"session {sid} ended ({why})", len(data))
                return
            raise ProtocolError(
                ErrorCode.NOT_STARTED, "binary audio before start; send a start message first"
            )
        if self.listening:
            raise ProtocolError(
                ErrorCode.NOT_STARTED, "listeners cannot send audio; send stop, then start"
            )
        if s.failed is not None:
            self._dropped(
                ErrorCode.SESSION_FAILED,
                f"session {s.id}'s pipeline failed ({s.failed})",
                len(data),
            )
            return
        if s.closed:  # the server is shutting down (sessions close first)
            self._dropped(
                ErrorCode.SESSION_ENDED, f"session {s.id} ended (server shutdown)", len(data)
            )
            return
        samples = decode_audio(data, self.start)
        s.feed(samples, arrival)

    def _started(self) -> None:
        self._flush_drops()  # the last word on the old session comes before the new one
        self.ended = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _start(self, start: StartMessage) -> None:
        if self.session is not None and self.session.failed is not None and not self.listening:
            self.hub.end_session(self.session, "pipeline error")  # a failed session ends here
            self.session = None
        if self.session is not None or self.listening:
            raise ProtocolError(
                ErrorCode.ALREADY_STARTED, "this connection already started; send stop first"
            )
        hub = self.hub
        self.outbox.batch = start.batch
        s = hub.sessions.get(start.session) if start.session else None
        worker = hub.config.worker
        instance = hub.config.instance
        if s is None and start.session and instance is not None:
            from .config import split_instance

            # another instance's id (behind one proxy, each server has a name): routed wrong
            owner_name, _ = split_instance(start.session)
            if owner_name is not None and owner_name != instance:
                raise ProtocolError(
                    ErrorCode.WRONG_PROCESS,
                    f"start: session {start.session} lives on instance {owner_name} of this "
                    "deployment; reconnect with ?session=<id> in the WebSocket URL so the "
                    "proxy routes you there",
                )
        if s is None and start.session and worker is not None:
            from .supervisor import worker_of

            # an id that names another live worker is that worker's session: routed wrong, so
            # name the fix; an id that names no worker of this server is merely unknown and,
            # as documented, starts a new session
            owner = worker_of(start.session, hub.config.workers)
            if owner is not None and owner != worker:
                raise ProtocolError(
                    ErrorCode.WRONG_PROCESS,
                    f"start: session {start.session} lives in another process of this server; "
                    "resume on the resume_url its started message gave",
                )
        resumed = (
            s is not None
            and not s.closed
            and s.failed is None
            and s is not hub.shared
            and start.resume_token is not None
            and hmac.compare_digest(
                start.resume_token.encode("utf-8", "surrogateescape"), s.resume_token.encode()
            )
            and (s.sample_rate, s.channels) == (start.sample_rate, start.channels)
        )
        if resumed:
            assert s is not None
            if start.ack is not None and not s.ack(start.ack):
                raise ProtocolError(
                    ErrorCode.BAD_MESSAGE,
                    f"start: ack {start.ack} is beyond the last event sent ({s.seq})",
                )
            if start.options:
                s.configure(start.options)
            old = s.owner
            if old is not None and old is not self:
                # the client came back before we noticed its old connection died (a half-open
                # TCP connection): the new connection takes the session over
                old.session = None
                s.detach(old.outbox)
                task = asyncio.ensure_future(
                    old.close(Close.TAKEN_OVER, "session resumed elsewhere", 1.0)
                )
                hub.tasks.add(task)
                task.add_done_callback(hub.tasks.discard)
            hub.resumed(s)
        else:
            # an unknown or expired id, or no/the wrong resume_token: a new session
            now = hub.loop.time()
            if hub.config.out_dir is not None and hub.budget.full:
                hub.limit_reached(Limit.OUT_BYTES)
                raise ProtocolError(
                    ErrorCode.STORAGE_FULL,
                    "the server's output folder reached its limit (--max-out-bytes); "
                    "no new sessions until space is freed",
                )
            if not self.starts.take(now):
                hub.limit_reached(Limit.SESSIONS_PER_MINUTE)
                raise ProtocolError(
                    ErrorCode.TOO_MANY_SESSIONS,
                    f"more than {hub.config.sessions_per_minute} sessions started on this "
                    "connection in a minute (--sessions-per-minute); wait, or resume one",
                )
            s = hub.new_session(start)
        self._started()
        self.session, self.start = s, start
        s.owner = self
        s.attach(self.outbox)
        resume_at = None
        if hub.config.resume_port is not None:  # one of several processes: resume on its port
            from .supervisor import resume_url

            req = self.request
            resume_at = resume_url(req.scheme, req.host, hub.config.resume_port, s.id)
        started = self._started_event(s, resumed, start.format, resume_at, s.resume_token)
        self.send(started)
        if resumed:
            after = start.ack if start.ack is not None else s.acked
            lost = s.replay_to(self.outbox, after)
            if lost:
                self.send(
                    error_event(
                        ErrorCode.EVENTS_LOST,
                        f"{lost} speech events after seq {after} were not kept for replay "
                        "(too many unacknowledged); they are in the session's events.jsonl",
                    )
                )

    def _config(self, msg: dict[str, Any]) -> None:
        if self.session is None:
            raise ProtocolError(
                ErrorCode.NOT_STARTED, "config before start; send a start message first"
            )
        if self.listening:
            raise ProtocolError(ErrorCode.BAD_CONFIG, "listeners cannot retune the shared pipeline")
        settings = parse_options(msg.get("options"), context="config")
        merged = self.session.configure(settings)
        self.send(config_event(merged))

    def _ack(self, seq: int) -> None:
        s = self.session
        if s is None:
            raise ProtocolError(ErrorCode.NOT_STARTED, "ack before start")
        if self.listening:
            return  # listeners do not resume; nothing is kept for them
        if not s.ack(seq):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE, f"ack: seq {seq} is beyond the last event sent ({s.seq})"
            )

    def _stop(self) -> None:
        s = self.session
        if s is None:
            raise ProtocolError(ErrorCode.NOT_STARTED, "stop before start")
        if self.listening:
            s.detach(self.outbox)
        else:
            self.hub.end_session(s, "client stop")
            s.detach(self.outbox)
        self.send(Stopped(s.id, s.received).encode())
        self.session, self.start, self.listening = None, None, False
        self._arm_idle()

    def _listen(self, batch: bool) -> None:
        if self.session is not None:
            raise ProtocolError(ErrorCode.ALREADY_STARTED, "this connection already started")
        self.outbox.batch = batch
        shared = self.hub.shared
        if shared is None or shared.closed:
            raise ProtocolError(
                ErrorCode.NO_SERVER_SOURCE, "this server has no shared source; start with --source"
            )
        self._started()
        self.session, self.listening = shared, True
        shared.attach(self.outbox)
        self.send(self._started_event(shared, False, None, None, None, listen=True))

    @staticmethod
    def _started_event(
        s: Session,
        resumed: bool,
        fmt: str | None,
        resume_at: str | None,
        token: str | None,
        *,
        listen: bool = False,
    ) -> dict[str, Any]:
        return Started(
            session=s.id,
            received=s.received,
            seq=s.seq,
            sample_rate=s.sample_rate,
            channels=s.channels,
            pipeline_rate=PIPELINE_RATE,
            settings=s.settings.value,
            events=s.options.events,
            resumed=resumed,
            resume_token=token,
            format=fmt,
            listen=listen,
            resume_url=resume_at,
        ).encode()

    def disconnected(self) -> None:
        """The socket is gone: keep a client session for its grace period, then close it."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._drop_timer is not None:
            self._drop_timer.cancel()
            self._drop_timer = None
        s = self.session
        self.outbox.close()
        if s is None:
            return
        s.detach(self.outbox)
        if self.listening or s.closed:
            return
        s.owner = None
        if self.hub.stopping:
            return
        self.hub.hold(s)
