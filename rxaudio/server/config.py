"""Everything ``rxaudio serve`` can set, declared once and checked once: :class:`ServerConfig`.

Each field is declared as an element's option is (:mod:`rxaudio.core.props`): its type,
default, :class:`~rxaudio.core.props.Range` or :class:`~rxaudio.core.props.Choices`,
:class:`~rxaudio.core.props.Unit` and doc, plus a :class:`Flag` where ``rxaudio serve`` sets it.
The command's flags (their defaults, ranges and help), the checks and their messages, the
limits a ``hello`` carries, the limit names ``/metrics`` counts and the option table of
``docs/apps/serve.md`` are all generated from these declarations (:func:`config_props`).
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from ..core.props import REQUIRED, Choices, Prop, Range, Unit, field_props
from ..errors import ConfigError
from ..io.streams import AUDIO_MODES, DEFAULT_RETRY_S, DEFAULT_STREAM, results_stream
from .options import ChainOptions

GIB = 1 << 30
LOOPS = ("auto", "uvloop", "asyncio")  # ``--loop`` (see :mod:`rxaudio.server.loops`)
# a session id's first character names its worker (so at most this many workers)
WORKER_MARKS = string.ascii_letters + string.digits


class Limit(StrEnum):
    """Every limit that can be reached, as ``rxaudio_limit_reached_total{limit=...}`` names it;
    each is a :class:`ServerConfig` field's (its :class:`Flag`'s ``limit``)."""

    CONNECTIONS = "connections"
    REQUEST_TIMEOUT = "request_timeout"
    START_TIMEOUT = "start_timeout"
    CONTROL_RATE = "control_rate"
    SESSIONS_PER_MINUTE = "sessions_per_minute"
    GRACE_SESSIONS = "grace_sessions"
    SESSION_BYTES = "session_bytes"
    OUT_BYTES = "out_bytes"


# the argparse groups of ``rxaudio serve --help`` ("": the command's own)
DEPLOY_GROUP = "deployment (HTTPS, reverse proxies, several machines: docs/deploy.md)"
REDIS_GROUP = "Redis Streams (workers: rxaudio worker; see docs/apps/worker.md)"
LIMITS_GROUP = "limits (each reached limit counts in /metrics)"


@dataclass(frozen=True, slots=True)
class Flag:
    """How ``rxaudio serve`` sets a :class:`ServerConfig` field: the field's flag.

    ``help`` is the flag's one line (its range and default are added to it). ``scale``: the
    flag's value is the field's times it, in ``unit`` (``--batch-wait-ms``: 1000, ms).
    ``cli``: the command's default where it differs from the field's (``--out``).
    ``action``: ``store``, ``store_true``, ``negate`` (``--no-batch`` sets the field false) or
    ``append`` (repeatable; a tuple field). ``limit``: the name a reached limit counts under
    in ``rxaudio_limit_reached_total{limit=...}``. ``hello``: the ``hello`` message's
    ``limits`` carries the field.
    """

    name: str
    help: str
    group: str = ""
    metavar: str | None = None
    scale: float = 1.0
    unit: str | None = None
    cli: Any = REQUIRED
    action: str = "store"
    limit: Limit | None = None
    hello: bool = False


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

    out_dir: Annotated[
        str | None,
        Flag(
            "--out", "directory for utterance WAVs and JSONL logs", metavar="DIR", cli="out/serve"
        ),
    ] = None
    token: Annotated[
        str | None, Flag("--token", "require ?token=TOKEN on /ws and /files", metavar="T")
    ] = None
    source: str | None = None
    grace_s: Annotated[
        float, Range(0), Unit("s"), Flag("--grace", "seconds a dropped session waits", metavar="S")
    ] = 30.0
    queue_max: Annotated[int, Range(8), Flag("--queue", "events per client before dropping")] = 256
    heartbeat_s: Annotated[
        float,
        Range(0, lo_open=True),
        Unit("s"),
        Flag("--heartbeat", "WebSocket ping interval", metavar="S"),
    ] = 20.0
    socket_buffer: Annotated[int, Range(4096), Unit("bytes")] = 16384
    batch: Annotated[
        bool,
        Flag(
            "--no-batch",
            "one Silero scorer per session instead of one batched call for all",
            action="negate",
        ),
    ] = True
    batch_wait_s: Annotated[
        float,
        Range(0, 0.1),
        Unit("s"),
        Flag(
            "--batch-wait-ms",
            "how long a window waits for other sessions' before scoring",
            scale=1000,
            unit="ms",
            metavar="MS",
        ),
    ] = 0.005
    any_origin: Annotated[
        bool,
        Flag(
            "--any-origin",
            "accept WebSockets from pages served by other sites (default: this server's page)",
            action="store_true",
        ),
    ] = False
    host: Annotated[str, Flag("--host", "address to bind")] = "127.0.0.1"
    allowed_hosts: Annotated[
        tuple[str, ...],
        Flag(
            "--allowed-host",
            "another name this server answers to in Host (repeatable; '*' accepts any); the bind "
            "address and localhost always work",
            action="append",
            metavar="NAME",
        ),
    ] = ()
    max_connections: Annotated[
        int,
        Range(1),
        Flag(
            "--max-connections",
            "TCP connections held at once",
            group=LIMITS_GROUP,
            limit=Limit.CONNECTIONS,
        ),
    ] = 1000
    request_timeout_s: Annotated[
        float,
        Range(0.1),
        Unit("s"),
        Flag(
            "--request-timeout",
            "seconds to send the first HTTP request",
            group=LIMITS_GROUP,
            limit=Limit.REQUEST_TIMEOUT,
            metavar="S",
        ),
    ] = 10.0
    start_timeout_s: Annotated[
        float,
        Range(0),
        Unit("s"),
        Flag(
            "--start-timeout",
            "seconds a WebSocket has to send start (0: off)",
            group=LIMITS_GROUP,
            limit=Limit.START_TIMEOUT,
            hello=True,
            metavar="S",
        ),
    ] = 60.0
    control_rate: Annotated[
        float,
        Range(0),
        Unit("/s"),
        Flag(
            "--control-rate",
            "text messages per second per connection (0: off)",
            group=LIMITS_GROUP,
            limit=Limit.CONTROL_RATE,
            hello=True,
            metavar="R",
        ),
    ] = 20.0
    control_burst: Annotated[
        float,
        Range(1),
        Flag(
            "--control-burst",
            "text messages in a burst per connection",
            group=LIMITS_GROUP,
            hello=True,
            metavar="B",
        ),
    ] = 100.0
    sessions_per_minute: Annotated[
        int,
        Range(1),
        Flag(
            "--sessions-per-minute",
            "sessions one connection may start",
            group=LIMITS_GROUP,
            limit=Limit.SESSIONS_PER_MINUTE,
            hello=True,
        ),
    ] = 60
    max_grace_sessions: Annotated[
        int,
        Range(0),
        Flag(
            "--max-grace-sessions",
            "disconnected sessions kept for resume",
            group=LIMITS_GROUP,
            limit=Limit.GRACE_SESSIONS,
        ),
    ] = 256
    max_session_bytes: Annotated[
        int,
        Range(4096),
        Unit("bytes"),
        Flag(
            "--max-session-bytes",
            "bytes of files per session",
            group=LIMITS_GROUP,
            limit=Limit.SESSION_BYTES,
            hello=True,
        ),
    ] = 1 * GIB
    max_out_bytes: Annotated[
        int | None,
        Range(4096),
        Unit("bytes"),
        Flag(
            "--max-out-bytes",
            "bytes under --out in total (none: no limit)",
            group=LIMITS_GROUP,
            limit=Limit.OUT_BYTES,
        ),
    ] = 20 * GIB
    shutdown_timeout_s: Annotated[
        float,
        Range(0.1),
        Unit("s"),
        Flag(
            "--shutdown-timeout", "seconds shutdown waits per step", group=LIMITS_GROUP, metavar="S"
        ),
    ] = 2.0
    options: ChainOptions = field(default_factory=ChainOptions)
    device: int | str | None = None
    worker: int | None = None
    workers: Annotated[int, Range(1, len(WORKER_MARKS))] = 1
    resume_port: int | None = None
    page_port: int | None = None
    metrics_dir: str | None = None
    redis_url: Annotated[
        str | None,
        Flag(
            "--redis",
            "publish every session's speech events and utterances to a Redis stream, and relay "
            "workers' results back to the session's clients (e.g. redis://127.0.0.1:6379/0)",
            group=REDIS_GROUP,
            metavar="URL",
        ),
    ] = None
    redis_stream: Annotated[str, Flag("--redis-stream", "the stream", group=REDIS_GROUP)] = (
        DEFAULT_STREAM
    )
    redis_results: Annotated[
        str | None,
        Flag(
            "--redis-results",
            "the stream workers write results to ('none': relay nothing; default: STREAM:results, "
            "where rxaudio worker writes by default)",
            group=REDIS_GROUP,
            metavar="STREAM",
        ),
    ] = None
    redis_audio: Annotated[
        str,
        Choices(AUDIO_MODES),
        Flag("--redis-audio", "how an utterance's audio goes with its entry", group=REDIS_GROUP),
    ] = "int16"
    redis_retry_s: Annotated[
        float,
        Range(0),
        Unit("s"),
        Flag(
            "--redis-retry",
            "seconds an outage may last before waiting entries count as lost",
            group=REDIS_GROUP,
            metavar="S",
        ),
    ] = DEFAULT_RETRY_S
    loop: Annotated[
        str,
        Choices(LOOPS),
        Flag(
            "--loop",
            "event loop: auto (uvloop where installed: less CPU per stream), uvloop or asyncio",
        ),
    ] = "auto"
    certfile: Annotated[
        str | None,
        Flag(
            "--certfile",
            "serve HTTPS with this certificate (chain, PEM; e.g. certbot's fullchain.pem): "
            "browsers give the microphone only to https pages (or localhost)",
            group=DEPLOY_GROUP,
            metavar="PEM",
        ),
    ] = None
    keyfile: Annotated[
        str | None,
        Flag("--keyfile", "the certificate's private key (PEM)", group=DEPLOY_GROUP, metavar="PEM"),
    ] = None
    trusted_proxies: Annotated[
        tuple[str, ...],
        Flag(
            "--trusted-proxy",
            "a reverse proxy's address or network (repeatable): its Forwarded / "
            "X-Forwarded-Proto, -Host and -For headers give the public scheme, name and client "
            "(ignored from anyone else)",
            group=DEPLOY_GROUP,
            action="append",
            metavar="ADDR",
        ),
    ] = ()
    instance: Annotated[
        str | None,
        Flag(
            "--instance",
            "this server's name among several behind one proxy (letters, digits): session ids "
            "start with NAME- so the proxy routes resumes to it",
            group=DEPLOY_GROUP,
            metavar="NAME",
        ),
    ] = None

    def __post_init__(self) -> None:
        for name, (prop, _) in config_props().items():
            if prop.range is not None or prop.choices is not None:
                check(name, getattr(self, name))
        from .loops import resolve

        resolve(self.loop)  # uvloop asked for and missing: said now
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
            from ..io.streams import check_url

            check_url(self.redis_url, "serve: --redis")
            if not self.redis_stream:
                raise ConfigError("serve: --redis-stream must name a stream")
            if self.redis_results is None:
                self.redis_results = results_stream(self.redis_stream)
            if self.redis_audio == "file" and self.out_dir is None:
                raise ConfigError("serve: --redis-audio file writes WAVs under --out; give --out")
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


def config_props() -> dict[str, tuple[Prop, Flag | None]]:
    """Every :class:`ServerConfig` field as a :class:`~rxaudio.core.props.Prop` (in the words
    of its flag where it has one: the flag's name, range and unit), and its :class:`Flag`."""
    global _PROPS
    if _PROPS is None:
        out: dict[str, tuple[Prop, Flag | None]] = {}
        for name, (prop, meta) in field_props(ServerConfig).items():
            flag = next((m for m in meta if isinstance(m, Flag)), None)
            out[name] = (prop if flag is None else flag_prop(prop, flag), flag)
        _PROPS = out
    return _PROPS


_PROPS: dict[str, tuple[Prop, Flag | None]] | None = None


def flag_prop(prop: Prop, flag: Flag) -> Prop:
    """``prop`` as its flag takes it: named by the flag, its range and default scaled."""
    import dataclasses

    rng = prop.range
    if rng is not None and flag.scale != 1:
        rng = Range(
            None if rng.lo is None else rng.lo * flag.scale,
            None if rng.hi is None else rng.hi * flag.scale,
            rng.lo_open,
            rng.hi_open,
        )
    default = prop.default
    if flag.scale != 1 and isinstance(default, int | float):
        default *= flag.scale
    return dataclasses.replace(
        prop,
        name=flag.name,
        range=rng,
        unit=flag.unit or prop.unit,
        default=default if flag.cli is REQUIRED else flag.cli,
    )


def check(name: str, value: Any) -> None:
    """Refuse a value outside field ``name``'s range or choices: one line naming its flag (or
    the field) and what it allows, ``serve: --grace must be a finite number >= 0 s, got -1``."""
    prop, flag = config_props()[name]
    if flag is not None and flag.scale != 1 and isinstance(value, int | float):
        value = value * flag.scale
    prop.check("serve", value)


def hello_limits(config: ServerConfig) -> dict[str, Any]:
    """The limits a ``hello`` tells its client (the fields declared with ``hello=True``)."""
    return {n: getattr(config, n) for n, (_, f) in config_props().items() if f and f.hello}


def limit_flags() -> dict[Limit, str]:
    """The flag that sets each :class:`Limit`."""
    return {f.limit: f.name for _, f in config_props().values() if f and f.limit}


OPTIONS_BEGIN = (
    "<!-- serve options: generated by rxaudio.server.config.options_markdown(); do not edit by"
    " hand (tests/server/test_config.py fails when stale) -->"
)
OPTIONS_END = "<!-- /serve options -->"


def _md(text: str) -> str:
    """reST markup as Markdown: ``x`` and :role:`~a.b` become `x` and `b`."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`").replace("|", "\\|")


def metavar(prop: Prop, flag: Flag) -> str | None:
    """How ``--help`` and the docs show a flag's value: ``S``, ``N``, ``{a,b}``."""
    if flag.action in ("store_true", "negate"):
        return None
    if prop.choices is not None:
        return "{" + ",".join(map(str, prop.choices)) + "}"
    return flag.metavar or ("N" if prop.type is int else None)


def _show(value: Any) -> str:
    """A default as a command line writes it: ``30`` for 30.0, ``0.005`` as is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def options_markdown() -> str:
    """The table of ``rxaudio serve``'s ServerConfig flags for ``docs/apps/serve.md``."""
    out = ["| flag | default | allowed | meaning |", "|---|---|---|---|"]
    for prop, flag in config_props().values():
        if flag is None:
            continue
        if flag.action in ("store_true", "negate"):
            allowed, default = "a switch", "off"
        elif flag.action == "append":
            allowed, default = "repeatable", "none"
        else:
            allowed = prop.describe() if prop.range or prop.choices else "text"
            default = "none" if prop.default is None else _show(prop.default)
            if isinstance(prop.default, int) and prop.default >= GIB:
                default += f" ({prop.default // GIB} GiB)"
        value = f" {meta}" if (meta := metavar(prop, flag)) else ""
        doc = _md(flag.help)
        if flag.limit:
            doc += f"; reached: `limit={flag.limit}`"
        out.append(f"| `{flag.name}{value}` | {default} | {allowed} | {doc} |")
    return "\n".join(out) + "\n"


def with_options(doc: str) -> str:
    """``doc`` (the text of ``docs/apps/serve.md``) with its generated option table renewed."""
    from .._generated import renew_block

    return renew_block(doc, OPTIONS_BEGIN, OPTIONS_END, options_markdown())


if __name__ == "__main__":  # python -m rxaudio.server.config: renew docs/apps/serve.md's table
    import sys

    path = sys.argv[1] if len(sys.argv) > 1 else "docs/apps/serve.md"
    with open(path, encoding="utf-8") as fh:
        text = with_options(fh.read())
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
