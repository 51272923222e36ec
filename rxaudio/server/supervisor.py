"""``rxaudio serve --processes N``: N server processes behind one port.

One process (the supervisor) owns the listening socket and nothing else. It accepts each TCP
connection, reads its HTTP request line without consuming it (``MSG_PEEK``) and hands the
socket to a worker process over a Unix socket (``SCM_RIGHTS``), where aiohttp serves it as if
it had accepted it itself (``loop.connect_accepted_socket``). Each worker is a whole server:
its own event loop, batched Silero scorer, sessions and limits.

Why not ``SO_REUSEPORT``: the kernel spreads connections by a hash of their addresses, so the
reconnect of a session (whose pipeline, model state and files live in one process) would land
on any process. Here a session's id names its worker (its first character), and a WebSocket
URL that carries ``?session=ID`` (the page adds it when it resumes) goes to that worker. A
resume that reaches another worker anyway (a client that does not put the id in the URL) is
refused with ``wrong_process``, naming the fix; it never silently starts a new session.
Connections without a session id go to the workers in turn.

Metrics: every worker keeps its series in a shared directory (prometheus-client's
multiprocess mode), so ``/metrics``, whichever worker answers it, reports the sum over all of
them. A worker that dies is restarted (its sessions are lost, its clients reconnect and start
new ones) and its live gauges are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import string
import sys
import tempfile
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

# a session id's first character names its worker (so at most this many workers)
WORKER_MARKS = string.ascii_letters + string.digits
PEEK_BYTES = 4096
QUICK_S = 10.0  # a worker that dies this soon after starting ...
QUICK_DEATHS = 3  # ... this many times in a row is not started again: the server stops


def worker_mark(index: int) -> str:
    """The first character of the session ids that worker ``index`` creates."""
    return WORKER_MARKS[index]


def worker_of(session_id: str, workers: int) -> int | None:
    """The worker a session id belongs to, or ``None`` when it names none of ``workers``.

    An instance prefix (``NAME-``, ``serve --instance``) is skipped: the mark follows it.
    """
    from .config import split_instance

    session_id = split_instance(session_id)[1]
    i = WORKER_MARKS.find(session_id[:1]) if session_id else -1
    return i if 0 <= i < workers else None


def session_in_request(head: bytes) -> str | None:
    """The ``session`` query parameter of an HTTP request's first line, if any."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3:
        return None
    values = parse_qs(urlsplit(parts[1]).query).get("session")
    return values[0] if values else None


# ---- worker process ---------------------------------------------------------------------------


def _worker_main(config: Any, chan: socket.socket) -> None:
    """A worker: a whole server fed with sockets through ``chan`` until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, who stops us
    from .loops import run

    run(_worker(config, chan), config.loop)


async def _worker(config: Any, chan: socket.socket) -> None:
    from aiohttp import web

    from . import create_app, guard
    from .reclaim import freeze_startup

    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=config.shutdown_timeout_s)
    await runner.setup()
    guard(runner)
    freeze_startup()  # this process is a server: later collections skip startup's objects
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    chan.setblocking(False)
    pending: set[asyncio.Task[Any]] = set()

    def adopt(fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        task = loop.create_task(loop.connect_accepted_socket(server, sock))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_readable() -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(chan, 16, 64)
            except BlockingIOError:
                return
            except OSError:
                msg, fds = b"", []
            if not msg:  # the supervisor is gone
                for fd in fds:
                    os.close(fd)
                stop.set()
                return
            for fd in fds:
                adopt(fd)

    loop.add_reader(chan.fileno(), on_readable)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(chan.fileno())
        await runner.cleanup()


# ---- supervisor -------------------------------------------------------------------------------


class Supervisor:
    """Owns the listening socket and the workers; routes each connection to one of them."""

    def __init__(self, config: Any, workers: int, sock: socket.socket) -> None:
        if not 2 <= workers <= len(WORKER_MARKS):
            raise ValueError(f"workers must be 2..{len(WORKER_MARKS)}, got {workers}")
        self.config = config
        self.n = workers
        self.sock = sock
        self.metrics_dir = tempfile.mkdtemp(prefix="rxaudio-metrics-")
        self.ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        self.procs: list[Any] = [None] * workers
        self.chans: list[socket.socket | None] = [None] * workers
        self.turn = 0
        self.peeking = 0  # connections whose request line is awaited (at most max_connections)
        self.stopping = False
        self.restarts = 0
        self.failed = False  # stopped because a worker could not start
        self.started_at = [0.0] * workers
        self.quick = [0] * workers  # deaths in a row right after starting, per worker

    def worker_config(self, index: int) -> Any:
        """The config of worker ``index``: its mark, the shared metrics, its share of the
        server-wide limits (connections and the output budget are split evenly)."""
        c = self.config
        share = {
            "worker": index,
            "workers": self.n,
            "metrics_dir": self.metrics_dir,
            "max_connections": -(-c.max_connections // self.n) if c.max_connections else 0,
        }
        if c.max_out_bytes:
            share["max_out_bytes"] = c.max_out_bytes // self.n
        return dataclasses.replace(c, **share)

    def start_worker(self, index: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # a worker too busy to take sockets for this long loses the connection, rather than
        # stalling the routing of every other one
        mine.settimeout(2.0)
        p = self.ctx.Process(
            target=_worker_main,
            args=(self.worker_config(index), theirs),
            name=f"rxaudio-serve-{index}",
            daemon=False,
        )
        p.start()
        theirs.close()
        self.started_at[index] = time.monotonic()
        self.procs[index] = p
        self.chans[index] = mine

    def pick(self, head: bytes) -> int:
        """The worker for a connection whose request starts with ``head``."""
        sid = session_in_request(head)
        if sid is not None:
            owner = worker_of(sid, self.n)
            if owner is not None:
                return owner
        i = self.turn % self.n
        self.turn += 1
        return i

    async def _peek(self, conn: socket.socket) -> bytes:
        """The request's first line (or what came of it), left unread for the worker."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(1.0, float(self.config.request_timeout_s or 10.0))
        head = b""
        while loop.time() < end:
            try:
                head = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
            except BlockingIOError:
                head = b""
            except OSError:
                return b""
            else:
                if not head or b"\r\n" in head or len(head) >= PEEK_BYTES:
                    return head
            await asyncio.sleep(0.005)
        return head

    async def _route(self, conn: socket.socket) -> None:
        cap = self.config.max_connections
        if cap and self.peeking >= cap:  # a flood of silent connections: refused at once
            conn.close()
            return
        self.peeking += 1
        try:
            try:
                head = await self._peek(conn)
            finally:
                self.peeking -= 1
            if not head:  # closed, or silent past --request-timeout: nothing to serve
                return
            i = self.pick(head)
            chan = self.chans[i]
            if chan is None:
                return
            try:
                socket.send_fds(chan, [b"c"], [conn.fileno()])
            except (
                OSError
            ):  # the worker died (or is stuck) between pick and send: the client retries
                pass
        finally:
            conn.close()

    async def serve(self, seconds: float | None) -> None:
        """Start the workers, route connections until SIGINT/SIGTERM or ``seconds``."""
        loop = asyncio.get_running_loop()
        # the handlers before any worker starts: a signal while they start is a stop request
        # (every worker is then stopped below), not a KeyboardInterrupt that leaves them running
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for i in range(self.n):
            self.start_worker(i)
        self.sock.setblocking(False)
        tasks: set[asyncio.Task[Any]] = set()

        async def accept() -> None:
            while True:
                conn, _ = await loop.sock_accept(self.sock)
                conn.setblocking(False)
                t = loop.create_task(self._route(conn))
                tasks.add(t)
                t.add_done_callback(tasks.discard)

        async def watch() -> None:
            while not self.stopping:
                await asyncio.sleep(0.5)
                for i, p in enumerate(self.procs):
                    if p is not None and not p.is_alive() and not self.stopping:
                        if not self._lost(i, p):
                            stop.set()  # a worker that cannot start: stop, do not spin
                            return

        acceptor = loop.create_task(accept())
        watcher = loop.create_task(watch())
        try:
            if seconds is None:
                await stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds)
        finally:
            self.stopping = True
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            acceptor.cancel()
            watcher.cancel()
            self.sock.close()
            await loop.run_in_executor(None, self.stop_workers)

    def _lost(self, index: int, proc: Any) -> bool:
        """A worker exited: replace it; ``False`` (and no replacement) when it keeps dying
        right after starting (:data:`QUICK_DEATHS` in a row within :data:`QUICK_S`)."""
        from .metrics import mark_process_dead

        mark_process_dead(proc.pid, self.metrics_dir)
        chan = self.chans[index]
        if chan is not None:
            chan.close()
            self.chans[index] = None
        lived = time.monotonic() - self.started_at[index]
        self.quick[index] = self.quick[index] + 1 if lived < QUICK_S else 0
        if self.quick[index] >= QUICK_DEATHS:
            print(
                f"rxaudio serve: error: worker {index} exited {QUICK_DEATHS} times within "
                f"{QUICK_S:.0f} s of starting (last code {proc.exitcode}); its error is above. "
                "Stopping the server",
                file=sys.stderr,
                flush=True,
            )
            self.failed = True
            return False
        print(
            f"rxaudio serve: worker {index} (pid {proc.pid}) exited with code {proc.exitcode}; "
            "starting a new one (its sessions are lost; their clients start new ones)",
            file=sys.stderr,
            flush=True,
        )
        self.restarts += 1
        self.start_worker(index)
        return True

    def stop_workers(self) -> None:
        """SIGTERM every worker (each flushes its sessions), wait, then kill what is left."""
        for p in self.procs:
            if p is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        # a worker's own shutdown is bounded by about twice --shutdown-timeout plus the flush
        deadline = time.monotonic() + 2 * float(self.config.shutdown_timeout_s) + 10.0
        for p in self.procs:
            if p is not None:
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join(5)
        for chan in self.chans:
            if chan is not None:
                chan.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def listen_socket(host: str, port: int) -> socket.socket:
    """The supervisor's listening socket (IPv4 or IPv6 by ``host``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)
