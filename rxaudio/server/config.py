"""Everything ``rxaudio serve`` can set, checked once: :class:`ServerConfig`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..io.streams import DEFAULT_RETRY_S, DEFAULT_STREAM, results_stream
from .options import ChainOptions

GIB = 1 << 30


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
    host
        The address the server is bound to; with ``allowed_hosts`` it decides which ``Host``
        headers are accepted (DNS-rebinding protection). Set by whoever binds the socket.
    allowed_hosts
        More names the server answers to (``--allowed-host``), e.g. its DNS name behind a
        proxy; ``"*"`` accepts any.
    max_connections
        TCP connections held at once (HTTP and WebSocket); more are closed on accept.
    request_timeout_s
        Seconds a new connection has to send its first HTTP request head.
    start_timeout_s
        Seconds a WebSocket has to send ``start`` or ``listen`` (0: no limit).
    control_rate, control_burst
        Text messages per second a connection may send on average, and in a burst; past it
        the connection gets ``error`` ``rate_limited`` and is closed (1008). 0: no limit.
    sessions_per_minute
        Sessions one connection may start in any 60 s.
    max_grace_sessions
        Disconnected sessions kept for resuming; past it the one waiting longest ends.
    max_session_bytes
        Bytes of files one session may write; past it: ``error`` ``session_storage_limit`` and
        the session ends cleanly (files closed).
    max_out_bytes
        Bytes under ``out_dir`` in total (files already there counted at start); past it:
        ``error`` ``storage_full``, the writing session ends, new sessions are refused.
    shutdown_timeout_s
        How long shutdown waits for clients to read their last events and the close frame
        before their connections are cut (the files are complete before this wait).
    options
        Default chain options for every session.
    worker
        This process's index among the workers of ``rxaudio serve --processes N`` (set by the
        supervisor; ``None`` for a single process). It is the first character of every session
        id made here, and a resume of another worker's session is refused (``wrong_process``).
    workers
        How many workers that server runs (set by the supervisor with ``worker``). An id whose
        first character names none of them was never made by this server: like any unknown
        id, it starts a new session.
    resume_port
        This worker's own port (set by the supervisor): ``started`` carries ``resume_url`` on
        it, where the client resumes and reaches this process (``None``: no such field).
    page_port
        The server's main port (set by the supervisor with ``resume_port``): the page served
        there resumes on ``resume_port``, so its ``Origin`` (that port) is this server's own.
    redis_url
        ``rxaudio serve --redis``: publish every session's speech events and utterances to
        ``redis_stream`` and relay workers' results from ``redis_results`` (``None``: no Redis).
    redis_stream, redis_results
        The deployment's stream, and the stream workers write results to (``None``:
        ``<redis_stream>:results``, where ``rxaudio worker`` writes by default; ``""``: none).
    redis_audio
        How an utterance's audio goes with its entry: ``int16``, ``flac``, ``file`` (a WAV
        path: the utterance WAV the session wrote is not reused; the writer writes its own
        under ``<out_dir>/redis-audio``) or ``none``.
    redis_retry_s
        How long a Redis outage may last before the entries waiting are counted as lost.
    loop
        The event loop: ``auto`` (uvloop where it is installed, else asyncio's), ``uvloop`` or
        ``asyncio`` (see :mod:`rxaudio.server.loops`).
    certfile, keyfile
        ``rxaudio serve --certfile F --keyfile F``: serve HTTPS with this PEM certificate
        (chain) and its key (:func:`~rxaudio.server.tls.server_context` checks them at start-up;
        ``None``: plain HTTP, e.g. behind a proxy that terminates TLS).
    trusted_proxies
        ``--trusted-proxy``: addresses or networks (``10.0.0.5``, ``10.0.0.0/24``) of reverse
        proxies whose ``Forwarded`` / ``X-Forwarded-Proto``, ``-Host`` and ``-For`` headers
        give the public scheme, name and client address (the Host and Origin checks then use
        them). From any other address those headers are ignored.
    instance
        ``--instance NAME``: this server's name among several behind one proxy; every session
        id made here starts with ``NAME-`` (the proxy routes a resume by it), and a resume of a
        session of another instance is refused (``wrong_process``).
    metrics_dir
        The directory where every worker process of ``rxaudio serve --processes N`` keeps its
        metrics (prometheus-client's multiprocess mode), so that ``/metrics``, whichever worker
        answers, reports them all; ``None`` for one process (metrics in memory).
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
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    max_connections: int = 1000
    request_timeout_s: float = 10.0
    start_timeout_s: float = 60.0
    control_rate: float = 20.0
    control_burst: float = 100.0
    sessions_per_minute: int = 60
    max_grace_sessions: int = 256
    max_session_bytes: int = 1 * GIB
    max_out_bytes: int | None = 20 * GIB
    shutdown_timeout_s: float = 2.0
    options: ChainOptions = field(default_factory=ChainOptions)
    device: int | str | None = None
    worker: int | None = None
    workers: int = 1
    resume_port: int | None = None
    page_port: int | None = None
    metrics_dir: str | None = None
    redis_url: str | None = None
    redis_stream: str = DEFAULT_STREAM
    redis_results: str | None = None
    redis_audio: str = "int16"
    redis_retry_s: float = DEFAULT_RETRY_S
    loop: str = "auto"
    certfile: str | None = None
    keyfile: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    instance: str | None = None

    def __post_init__(self) -> None:
        from .loops import resolve

        resolve(self.loop)  # an unknown loop, or uvloop asked for and missing: said now
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
        checks: list[tuple[str, float, float]] = [
            ("--max-connections", self.max_connections, 1),
            ("--request-timeout", self.request_timeout_s, 0.1),
            ("--start-timeout", self.start_timeout_s, 0),
            ("--control-rate", self.control_rate, 0),
            ("--control-burst", self.control_burst, 1),
            ("--sessions-per-minute", self.sessions_per_minute, 1),
            ("--max-grace-sessions", self.max_grace_sessions, 0),
            ("--max-session-bytes", self.max_session_bytes, 4096),
            ("--shutdown-timeout", self.shutdown_timeout_s, 0.1),
        ]
        if self.max_out_bytes is not None:
            checks.append(("--max-out-bytes", self.max_out_bytes, 4096))
        for flag, value, low in checks:
            if not value >= low:  # NaN fails too
                raise ConfigError(f"serve: {flag} must be >= {low}, got {value}")
        self.allowed_hosts = tuple(self.allowed_hosts)
        self._check_deploy()
        if self.out_dir is not None:
            try:
                os.makedirs(self.out_dir, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"serve: --out {self.out_dir}: cannot create the folder "
                    f"({exc.strerror or exc}); choose a folder you can write to"
                ) from None
            if not os.access(self.out_dir, os.W_OK):
                raise ConfigError(f"serve: --out {self.out_dir} is not writable")
        if self.redis_url is not None:
            from ..io.streams import AUDIO_MODES, check_url

            check_url(self.redis_url, "serve: --redis")
            if not self.redis_stream:
                raise ConfigError("serve: --redis-stream must name a stream")
            if self.redis_results is None:
                self.redis_results = results_stream(self.redis_stream)
            if self.redis_audio not in AUDIO_MODES:
                raise ConfigError(
                    f"serve: --redis-audio must be one of {', '.join(AUDIO_MODES)}, got "
                    f"{self.redis_audio!r}"
                )
            if self.redis_audio == "file" and self.out_dir is None:
                raise ConfigError("serve: --redis-audio file writes WAVs under --out; give --out")
            if not self.redis_retry_s >= 0:
                raise ConfigError(f"serve: --redis-retry must be >= 0, got {self.redis_retry_s}")
        if self.source not in (None, "mic") and not os.path.isfile(self.source):
            raise ConfigError(
                f"serve: --source {self.source}: no such file; give an audio file or 'mic'"
            )

    def _check_deploy(self) -> None:
        """TLS files, proxies and the instance name (``docs/deploy.md``)."""
        if (self.certfile is None) != (self.keyfile is None):
            given, missing = (
                ("--certfile", "--keyfile") if self.keyfile is None else ("--keyfile", "--certfile")
            )
            raise ConfigError(
                f"serve: {given} without {missing}; HTTPS needs both the certificate "
                "(--certfile) and its private key (--keyfile)"
            )
        if self.certfile is not None and self.keyfile is not None:
            from .tls import server_context

            server_context(self.certfile, self.keyfile)  # every problem said now, in one line
        from .limits import proxy_networks

        self.trusted_proxies = tuple(self.trusted_proxies)
        proxy_networks(self.trusted_proxies)  # raises for a bad address
        if self.instance is not None and not INSTANCE_RE.match(self.instance):
            raise ConfigError(
                f"serve: --instance must be 1-16 letters or digits (it starts every session "
                f"id, before a '-'), got {self.instance!r}"
            )


INSTANCE_RE = re.compile(r"^[A-Za-z0-9]{1,16}$")
ID_LEN = 16  # a session id made by new_session_id, without an instance prefix
_PREFIXED = re.compile(rf"^([A-Za-z0-9]{{1,16}})-(.{{{ID_LEN}}})$")


def split_instance(session_id: str) -> tuple[str | None, str]:
    """A session id's instance (``serve --instance``) and the id within that instance.

    Ids are :data:`ID_LEN` characters, or ``NAME-`` and that many: the two cannot be
    confused. ``("a1", "Bxyz...")`` for ``"a1-Bxyz..."``; ``(None, id)`` without a prefix.
    """
    m = _PREFIXED.match(session_id)
    return (m.group(1), m.group(2)) if m else (None, session_id)


# The limits' command-line flags: (field, flag, type, unit/help). Defaults come from the
# dataclass fields above, so `rxaudio serve --help` and ServerConfig never disagree.
LIMIT_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("max_connections", "--max-connections", int, "TCP connections held at once"),
    ("request_timeout_s", "--request-timeout", float, "seconds to send the first HTTP request"),
    ("start_timeout_s", "--start-timeout", float, "seconds a WebSocket has to send start (0: off)"),
    ("control_rate", "--control-rate", float, "text messages per second per connection (0: off)"),
    ("control_burst", "--control-burst", float, "text messages in a burst per connection"),
    ("sessions_per_minute", "--sessions-per-minute", int, "sessions one connection may start"),
    ("max_grace_sessions", "--max-grace-sessions", int, "disconnected sessions kept for resume"),
    ("max_session_bytes", "--max-session-bytes", int, "bytes of files per session"),
    ("max_out_bytes", "--max-out-bytes", int, "bytes under --out in total"),
    ("shutdown_timeout_s", "--shutdown-timeout", float, "seconds shutdown waits per step"),
)


def limit_defaults() -> dict[str, object]:
    """Every limit's default, by field name."""
    from dataclasses import fields

    return {f.name: f.default for f in fields(ServerConfig) if f.name in _LIMIT_NAMES}


_LIMIT_NAMES = frozenset(name for name, *_ in LIMIT_FLAGS)
