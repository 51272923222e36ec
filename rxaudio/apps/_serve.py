"""``rxaudio serve``: the live server (browser page, WebSocket protocol, files, metrics).

Prints ``rxaudio serve: page at http://HOST:PORT/`` (``https://`` with ``--certfile``) once
listening (with ``--port 0`` the port the system chose). Ctrl-C or SIGTERM shuts down
gracefully: every pipeline is flushed, every open utterance written, every WebSocket closed
with 1001 (going away).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

HELP = "live server: browser page, WebSocket audio in, VAD/level/spectrogram events out, files"


def _processes(text: str) -> int:
    """``--processes``: a count from 1, or ``auto`` (the cores this process may run on)."""
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    from ..server.config import WORKER_MARKS  # a session id's first character names its worker

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count or auto, got {text!r}") from None
    if not 1 <= n <= len(WORKER_MARKS):
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {len(WORKER_MARKS)} (or auto), got {n}"
        )
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio serve``."""
    p.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one")
    p.add_argument(
        "--processes",
        type=_processes,
        default=1,
        metavar="N",
        help="server processes behind the one port, each with its own event loop and batched "
        "scorer (auto: one per core; default 1). Each also listens on a port of its own "
        "(--port + 1 to --port + N) where its sessions resume: started's resume_url names it",
    )
    p.add_argument(
        "--source",
        default="none",
        help="server-side input for 'listen' clients: none (default), mic, auto (mic if one "
        "exists, else the bundled sample), sample, or an audio FILE played in real time, looped",
    )
    p.add_argument("--device", default=None, help="input device for --source mic")
    p.add_argument(
        "--backend",
        default=None,
        help="VAD backend: silero (batched, the default), webrtc or energy",
    )
    p.add_argument(
        "--pipeline",
        default=None,
        metavar="CHAIN",
        help="every session's chain as a launch string: vad ! hysteresis ! buffer_utterance, "
        "each with its properties (e.g. 'vad backend=webrtc mode=2 ! hysteresis threshold=0.6 "
        "! buffer_utterance pre_roll_ms=500'); rxaudio inspect ELEMENT lists them",
    )
    p.add_argument(
        "--transcribe",
        action="store_true",
        help="recognise each utterance (PocketSphinx, offline, in a process per session) and "
        "send a transcript event; or end --pipeline with '! transcribe' and its properties",
    )
    from ..server.options import HYSTERESIS_KEYS, UTTERANCE_KEYS
    from ._flags import add_flags

    # every session's initial live settings; not given: the operators' own defaults
    add_flags(p, "hysteresis", HYSTERESIS_KEYS, unset=True)
    add_flags(p, "buffer_utterance", UTTERANCE_KEYS, unset=True)
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    add_config_flags(p)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the ServerConfig fields declared with a :class:`~rxaudio.server.config.Flag`:
    names, defaults, ranges and help from the declaration; values checked by ServerConfig."""
    from ..server.config import config_props, metavar
    from ._flags import flag_type, show

    groups: dict[str, Any] = {"": p}
    for name, (prop, flag) in config_props().items():
        if flag is None:
            continue
        if flag.group not in groups:
            groups[flag.group] = p.add_argument_group(flag.group)
        group = groups[flag.group]
        if flag.action in ("store_true", "negate"):
            group.add_argument(flag.name, dest=name, action="store_true", help=flag.help)
            continue
        if flag.action == "append":
            group.add_argument(
                flag.name,
                dest=name,
                action="append",
                default=[],
                metavar=flag.metavar,
                help=flag.help.replace("%", "%%"),
            )
            continue
        what = f"{prop.describe()}; " if prop.range or prop.choices else ""
        suffix = f" ({what}default {show(prop.default)})" if what or prop.default else ""
        group.add_argument(
            flag.name,
            dest=name,
            type=flag_type("serve", prop) if prop.type in (int, float) else str,
            default=prop.default,
            metavar=metavar(prop, flag),
            help=(flag.help + suffix).replace("%", "%%"),
        )


def resolve_source(source: str) -> tuple[str | None, str]:
    """``--source`` to a ServerConfig source, and a phrase saying what it is."""
    from ..data import speech_sample

    if source == "none":
        return None, "clients only"
    if source == "auto":
        from ._run import has_microphone

        if has_microphone():
            return "mic", "shared source: the default microphone"
        return speech_sample(), "shared source: no input device, the bundled sample, looped"
    if source == "sample":
        return speech_sample(), "shared source: the bundled sample, looped"
    if source == "mic":
        return "mic", "shared source: microphone"
    return source, f"shared source: {source}, looped"


def chain_options(args: argparse.Namespace, settings: dict[str, float]) -> Any:
    """Every session's chain: from ``--pipeline`` (plus the setting flags), or the flags alone."""
    import dataclasses

    from ..errors import ConfigError
    from ..server.options import ChainOptions

    if args.pipeline is None:
        return ChainOptions(
            backend=args.backend or "silero",
            settings=settings,
            transcribe={} if getattr(args, "transcribe", False) else None,
        )
    opts = ChainOptions.from_pipeline(args.pipeline, settings=settings)
    if getattr(args, "transcribe", False) and opts.transcribe is None:
        opts = dataclasses.replace(opts, transcribe={})
    if args.backend is not None and args.backend != opts.backend:
        raise ConfigError(
            f"serve: --backend {args.backend} and --pipeline's vad backend={opts.backend} "
            "disagree; set the backend in --pipeline only"
        )
    return opts


def config_from_args(args: argparse.Namespace) -> Any:
    """The ServerConfig the options describe (raises ConfigError for bad ones)."""
    from ..server import ServerConfig
    from ..server.options import HYSTERESIS_KEYS, UTTERANCE_KEYS

    settings = {
        k: float(v)
        for k in (*HYSTERESIS_KEYS, *UTTERANCE_KEYS)
        if (v := getattr(args, k, None)) is not None
    }
    source, _ = resolve_source(args.source)
    device = args.device
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    from ..server.config import config_props

    given: dict[str, Any] = {}
    for name, (_, flag) in config_props().items():
        if flag is None:
            continue
        value = getattr(args, name)
        if flag.action == "negate":
            value = not value
        elif flag.action == "append":
            value = tuple(value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and flag.scale != 1:
            value = value / flag.scale
        given[name] = value
    if given["redis_results"] == "none":  # relay nothing (None: derived from the stream)
        given["redis_results"] = ""
    return ServerConfig(
        **given,
        source=source,
        device=device,
        options=chain_options(args, settings),
    )


async def serve(
    config: Any, host: str, port: int, seconds: float | None, announce: str = ""
) -> None:
    """Run the server until SIGINT/SIGTERM or ``seconds``; shut down gracefully."""
    import asyncio

    from aiohttp import web

    from ..server import create_app, guard
    from ..server.reclaim import freeze_startup

    # the handlers first: a signal while the server starts (or just after "page at" is printed)
    # is a stop request seen below, not a KeyboardInterrupt that skips the graceful shutdown
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = None
    try:
        app = create_app(config)
        runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=config.shutdown_timeout_s
        )
        try:
            await runner.setup()
        except BaseException:
            runner = None  # nothing to clean up
            raise
        guard(runner)
        freeze_startup()  # this process is the server: later collections skip startup's objects
        tls = None
        if config.certfile is not None and config.keyfile is not None:
            from ..server.tls import server_context

            tls = server_context(config.certfile, config.keyfile)
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        await site.start()
        server = getattr(site, "_server", None)
        bound = port
        if server is not None and server.sockets:
            bound = server.sockets[0].getsockname()[1]
        token = f"?token={config.token}" if config.token else ""
        scheme = "https" if tls is not None else "http"
        print(f"rxaudio serve: page at {scheme}://{host}:{bound}/{token}", flush=True)
        if announce:
            print(f"rxaudio serve: {announce}", file=sys.stderr, flush=True)
        if seconds is None:
            await stop.wait()
        else:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except TimeoutError:
                pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
            print("rxaudio serve: stopped; every session flushed", file=sys.stderr, flush=True)


def raise_fd_limit(config: Any) -> str | None:
    """Raise the soft file-descriptor limit to what the limits need; a warning if it cannot.

    Each connection holds a socket and, with a session, its log file; sessions in grace hold
    their logs too. A soft limit below that would refuse connections with EMFILE long before
    ``--max-connections`` is reached.
    """
    import resource

    want = 2 * config.max_connections + config.max_grace_sessions + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return None
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            new = soft
    if new < want:
        return (
            f"the file-descriptor limit ({new}) is below what --max-connections "
            f"{config.max_connections} needs (about {want}); raise it (ulimit -n) or lower "
            "--max-connections"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """Start the server; return 0 after a clean shutdown."""
    from ..server.loops import resolve

    config = config_from_args(args)
    warning = raise_fd_limit(config)
    if warning:
        print(f"rxaudio serve: warning: {warning}", file=sys.stderr, flush=True)
    _, what = resolve_source(args.source)
    if config.redis_url is not None:  # Redis away: one line now, not a traceback per process
        from ..server.streams import probe

        probe(config.redis_url)
        what += f"; Redis stream {config.redis_stream}"
    what += f"; event loop {resolve(config.loop)}"
    if args.processes > 1:
        return run_processes(config, args, what)
    from ..server.loops import run as run_loop

    run_loop(serve(config, args.host, args.port, args.seconds, what), config.loop)
    return 0


def run_processes(config: Any, args: argparse.Namespace, what: str) -> int:
    """``--processes N``: a supervisor routing connections to N worker servers."""
    import functools

    from ..errors import ConfigError
    from ..server.loops import run as run_loop
    from ..server.supervisor import Supervisor, listen_socket, own_ports
    from ..server.tls import server_context

    if config.source is not None:
        raise ConfigError(
            "serve: --source runs in one process (one shared capture for every listener); "
            "drop --processes or --source"
        )
    try:
        sock = listen_socket(args.host, args.port)
    except OSError as exc:
        raise ConfigError(
            f"serve: cannot listen on {args.host}:{args.port} ({exc.strerror})"
        ) from exc
    bound = sock.getsockname()[1]
    try:  # each worker's own port, where its sessions resume
        own = own_ports(args.host, args.port, args.processes)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"serve: cannot listen on {args.host}, {exc.strerror}: --processes "
            f"{args.processes} also takes ports --port + 1 to --port + {args.processes} "
            "(one per process, where its sessions resume); pick another --port"
        ) from exc
    # --certfile/--keyfile: each worker loads the pair (a context cannot cross processes);
    # ServerConfig checked it already, so a bad pair was one line before any port was taken
    tls = (
        functools.partial(server_context, config.certfile, config.keyfile)
        if config.certfile is not None and config.keyfile is not None
        else None
    )
    sup = Supervisor(config, args.processes, sock, own, tls=tls)
    token = f"?token={config.token}" if config.token else ""
    scheme = "https" if tls is not None else "http"
    print(f"rxaudio serve: page at {scheme}://{args.host}:{bound}/{token}", flush=True)
    print(
        f"rxaudio serve: {args.processes} server processes on port {bound} (sessions resume "
        f"on ports {', '.join(map(str, sup.ports()))})" + (f"; {what}" if what else ""),
        file=sys.stderr,
        flush=True,
    )
    run_loop(sup.serve(args.seconds), config.loop)
    if sup.failed:  # said why on stderr
        return 1
    print("rxaudio serve: stopped; every session flushed", file=sys.stderr, flush=True)
    return 0
