"""``rxaudio serve --processes N``: N server processes behind one port.

One process (the supervisor) owns the listening sockets and nothing else; each worker process
is a whole server (its own event loop, batched Silero scorer, sessions and limits).

**Two kinds of port.** The *main port* (``--port``) takes every new connection: the
supervisor accepts it and, without reading a byte of it, hands the socket to a worker over a
Unix socket (``SCM_RIGHTS``), where aiohttp serves it as if it had accepted it itself
(``loop.connect_accepted_socket``, with the TLS handshake there when the server has
``--certfile``). Each worker also has a *port of its own* (``--port`` + 1 + its index; any
free port with ``--port 0``), bound by the supervisor before the worker starts and kept open
across its restarts, where the worker accepts directly. ``started`` carries ``resume_url``, a
URL on that port: a client resumes there and reaches the process holding its session, over
TLS too, since nothing is routed by what the connection says.

Why this design. The one before read each connection's request line without consuming it
(``MSG_PEEK``) for ``?session=ID`` and routed by it. That cannot work once the connection is
encrypted (the supervisor would have to terminate TLS, and then proxy every byte), it had to
wait for the request line of every silent connection (polling each one every 5 ms: 400 idle
sockets cost half a core), and its blocking hand-over stalled every connection behind a
stopped worker. With a port per worker the supervisor never reads a connection: it costs one
``accept`` and one non-blocking ``sendmsg`` per connection, whatever the connection then does.
``SO_REUSEPORT`` alone would spread connections by a hash of their addresses, so a resume
would land on any process; a port per worker is what lets the client choose.

**A stuck worker never delays the others.** Each worker acknowledges the sockets it took
(its running count, written back on the same Unix socket; the supervisor reads it when it
arrives, never polls). A worker holding more than :data:`SOFT_IN_FLIGHT` unacknowledged
sockets, or whose oldest one has waited more than :data:`STALL_S`, is skipped for new
connections (a SIGSTOPped worker, one whose loop is blocked, one still loading its model);
a worker whose channel is full (``sendmsg`` would block) is skipped at once. When every
worker is skipped (a burst of hundreds of connections at once), the one whose oldest socket
in flight has waited least takes the connection: a busy worker keeps taking its sockets, so
its oldest stays young, while a stopped one's only ages. When every channel is full the
connection is closed (the client retries). Connections otherwise go to the workers in
turn.

**Sessions live in one process.** A session id names its worker (its first character, after
an instance prefix ``NAME-`` if there is one: :func:`worker_of`). A resume that reaches
another worker anyway (a client that resumes on the main port) is refused with
``wrong_process``, naming the fix; it never silently starts a new session. Behind a reverse
proxy, the workers' ports must be reachable under the same numbers (``docs/apps/serve.md``).

**Idle connections cost no polling.** A connection that sends nothing is the worker's, like
any other: its ``--request-timeout`` (a timer, not a poll) closes it, and the TLS handshake is
bounded by the same timeout.

Metrics: every worker keeps its series in a shared directory (prometheus-client's
multiprocess mode), so ``/metrics``, whichever worker answers it, reports the sum over all of
them. A worker that dies is restarted (its sessions are lost, its clients reconnect and start
new ones) and its live gauges are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .config import WORKER_MARKS

SOFT_IN_FLIGHT = 64  # sockets handed to a worker and not yet taken: past this, skip it ...
STALL_S = 1.0  # ... and when the oldest of them has waited this long
ACK = 8  # bytes of a worker's acknowledgement: the count of sockets it has taken so far
QUICK_S = 10.0  # a worker that dies this soon after starting ...
QUICK_DEATHS = 3  # ... this many times in a row is not started again: the server stops

if TYPE_CHECKING:
    import ssl

# makes each worker's TLS context (a context cannot be sent to another process; this can)
TlsFactory = Callable[[], "ssl.SSLContext"]


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


def resume_url(scheme: str, host: str, port: int, session_id: str) -> str:
    """Where a client resumes a session held by the worker whose own port is ``port``.

    ``scheme`` is the request's (``http``/``https``), ``host`` its ``Host`` header (the name
    the client used, kept; its port replaced). The URL carries ``?session=ID`` (never the
    resume token, which goes only in ``start``); the client adds its ``token`` if it has one.
    """
    from .limits import without_port

    ws = "wss" if scheme == "https" else "ws"
    return f"{ws}://{without_port(host)}:{port}/ws?session={quote(session_id, safe='')}"


# ---- worker process ---------------------------------------------------------------------------


def _worker_main(
    config: Any, chan: socket.socket, own: socket.socket, tls: TlsFactory | None
) -> None:
    """A worker: a whole server fed with sockets through ``chan`` and accepting on ``own``
    until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, who stops us
    from .loops import run

    run(_worker(config, chan, own, tls), config.loop)


async def _worker(
    config: Any, chan: socket.socket, own: socket.socket, tls: TlsFactory | None
) -> None:
    from aiohttp import web

    from . import create_app, guard
    from .reclaim import freeze_startup

    ctx = tls() if tls is not None else None
    # a connection that never finishes its TLS handshake is closed as a silent one is
    handshake = float(config.request_timeout_s) if config.request_timeout_s else 60.0
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
    own.setblocking(False)
    listener = await loop.create_server(
        server,
        sock=own,
        ssl=ctx,
        ssl_handshake_timeout=handshake if ctx is not None else None,
        backlog=1024,
    )
    chan.setblocking(False)
    pending: set[asyncio.Task[Any]] = set()
    taken = 0

    def adopt(fd: int) -> None:
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        task = loop.create_task(
            loop.connect_accepted_socket(
                server,
                sock,
                ssl=ctx,
                ssl_handshake_timeout=handshake if ctx is not None else None,
            )
        )
        pending.add(task)
        task.add_done_callback(_adopted)

    def _adopted(task: asyncio.Task[Any]) -> None:
        pending.discard(task)
        if not task.cancelled():
            task.exception()  # a failed handshake or a peer that left: nothing to serve

    def on_readable() -> None:
        nonlocal taken
        got = 0
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(chan, 64, 64)
            except BlockingIOError:
                break
            except OSError:
                msg, fds = b"", []
            if not msg:  # the supervisor is gone
                for fd in fds:
                    os.close(fd)
                stop.set()
                return
            for fd in fds:
                adopt(fd)
            got += len(fds)
        if got:
            taken += got
            # the running count, so a lost (would-block) acknowledgement is made good by the next
            with contextlib.suppress(OSError):
                chan.send(taken.to_bytes(ACK, "big"))

    loop.add_reader(chan.fileno(), on_readable)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(chan.fileno())
        listener.close()
        await runner.cleanup()


# ---- supervisor -------------------------------------------------------------------------------


class _Channel:
    """The supervisor's end of one worker's Unix socket, and the sockets in flight on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = 0  # sockets handed over
        self.taken = 0  # sockets the worker said it took
        self.times: collections.deque[float] = collections.deque()  # when each in flight went

    @property
    def in_flight(self) -> int:
        return self.sent - self.taken

    def stalled(self, now: float) -> bool:
        """Too many sockets waiting, or the oldest waiting too long: skip this worker."""
        return self.in_flight > SOFT_IN_FLIGHT or self.waited(now) > STALL_S

    def waited(self, now: float) -> float:
        """How long the oldest socket in flight has waited (0: none in flight). A worker
        that is slow but taking them has a young oldest; a stopped one, an ever older one."""
        return now - self.times[0] if self.times else 0.0

    def took(self, count: int) -> None:
        """The worker's acknowledgement: it has taken ``count`` sockets so far."""
        count = min(count, self.sent)
        while self.taken < count:
            self.taken += 1
            if self.times:
                self.times.popleft()


class Supervisor:
    """Owns the listening sockets and the workers; hands each new connection to one of them."""

    def __init__(
        self,
        config: Any,
        workers: int,
        sock: socket.socket,
        own: list[socket.socket] | None = None,
        *,
        tls: TlsFactory | None = None,
    ) -> None:
        if not 2 <= workers <= len(WORKER_MARKS):
            raise ValueError(f"workers must be 2..{len(WORKER_MARKS)}, got {workers}")
        self.config = config
        self.n = workers
        self.sock = sock
        # each worker's own port (resumes): bound here, so it outlives the worker's restarts
        if own is None:
            own = [listen_socket(config.host, 0) for _ in range(workers)]
        self.own = own
        if len(self.own) != workers:
            raise ValueError(f"{workers} workers need {workers} ports of their own")
        self.tls = tls
        self.metrics_dir = tempfile.mkdtemp(prefix="rxaudio-metrics-")
        self.ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads
        self.procs: list[Any] = [None] * workers
        self.chans: list[_Channel | None] = [None] * workers
        self.turn = 0
        self.stopping = False
        self.restarts = 0
        self.failed = False  # stopped because a worker could not start
        self.started_at = [0.0] * workers
        self.quick = [0] * workers  # deaths in a row right after starting, per worker

    def ports(self) -> list[int]:
        """Each worker's own port, where its sessions resume."""
        return [int(s.getsockname()[1]) for s in self.own]

    def worker_config(self, index: int) -> Any:
        """The config of worker ``index``: its mark, its ports, the shared metrics, its share of
        the server-wide limits (connections and the output budget are split evenly)."""
        c = self.config
        share = {
            "worker": index,
            "workers": self.n,
            "metrics_dir": self.metrics_dir,
            "max_connections": -(-c.max_connections // self.n) if c.max_connections else 0,
            "resume_port": self.ports()[index],
            "page_port": int(self.sock.getsockname()[1]),
        }
        if c.max_out_bytes:
            share["max_out_bytes"] = c.max_out_bytes // self.n
        return dataclasses.replace(c, **share)

    def start_worker(self, index: int) -> None:
        # datagrams in order: a hand-over or an acknowledgement is one message, whole or not sent
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setblocking(False)
        p = self.ctx.Process(
            target=_worker_main,
            args=(self.worker_config(index), theirs, self.own[index], self.tls),
            name=f"rxaudio-serve-{index}",
            daemon=False,
        )
        p.start()
        theirs.close()
        self.started_at[index] = time.monotonic()
        self.procs[index] = p
        chan = _Channel(mine)
        self.chans[index] = chan
        with contextlib.suppress(RuntimeError):  # no running loop: nothing reads the acks
            asyncio.get_running_loop().add_reader(mine.fileno(), self._acks, index, chan)

    def _acks(self, index: int, chan: _Channel) -> None:
        """Read a worker's acknowledgements as they arrive (its channel is readable)."""
        while True:
            try:
                msg = chan.sock.recv(ACK)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if len(msg) != ACK:  # closed (the worker died: watch() replaces it) or garbage
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(chan.sock.fileno())
                return
            chan.took(int.from_bytes(msg, "big"))

    def order(self, now: float) -> list[int]:
        """The workers to try for the next connection: the next in turn first, skipping
        stalled ones; when every live worker is stalled (a burst), the one whose oldest socket
        in flight is youngest first (it is taking them; a stopped worker is not)."""
        live: list[tuple[int, _Channel]] = []
        for k in range(self.n):
            i = (self.turn + k) % self.n
            chan = self.chans[i]
            if chan is not None:
                live.append((i, chan))
        self.turn += 1
        fresh = [i for i, chan in live if not chan.stalled(now)]
        if fresh:
            return fresh
        return [i for i, _ in sorted(live, key=lambda ic: ic[1].waited(now))]

    def hand_over(self, conn: socket.socket) -> int | None:
        """Give ``conn`` to a worker without reading it or waiting; the worker's index, or
        ``None`` when no channel had room (the connection is then closed)."""
        now = time.monotonic()
        try:
            for i in self.order(now):
                chan = self.chans[i]
                assert chan is not None
                try:
                    socket.send_fds(chan.sock, [b"c"], [conn.fileno()])
                except BlockingIOError:  # its channel is full: the next one
                    continue
                except OSError:  # the worker died; watch() replaces it
                    continue
                chan.sent += 1
                chan.times.append(now)
                return i
            return None
        finally:
            conn.close()  # the worker holds its own copy now

    async def serve(self, seconds: float | None) -> None:
        """Start the workers, hand connections over until SIGINT/SIGTERM or ``seconds``."""
        loop = asyncio.get_running_loop()
        # the handlers before any worker starts: a signal while they start is a stop request
        # (every worker is then stopped below), not a KeyboardInterrupt that leaves them running
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for i in range(self.n):
            self.start_worker(i)
        self.sock.setblocking(False)

        def accept() -> None:
            while True:  # everything waiting, then back to the loop
                try:
                    conn, _ = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # out of descriptors, ...: the next readiness retries
                    print(f"rxaudio serve: accept failed ({exc})", file=sys.stderr, flush=True)
                    return
                self.hand_over(conn)

        async def watch() -> None:
            while not self.stopping:
                await asyncio.sleep(0.5)
                for i, p in enumerate(self.procs):
                    if p is not None and not p.is_alive() and not self.stopping:
                        if not self._lost(i, p):
                            stop.set()  # a worker that cannot start: stop, do not spin
                            return

        loop.add_reader(self.sock.fileno(), accept)
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
            loop.remove_reader(self.sock.fileno())
            for chan in self.chans:
                if chan is not None:
                    loop.remove_reader(chan.sock.fileno())
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
            with contextlib.suppress(RuntimeError, ValueError):  # no loop / already closed
                asyncio.get_running_loop().remove_reader(chan.sock.fileno())
            chan.sock.close()
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
                chan.sock.close()
        for own in self.own:
            own.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket of the supervisor's (IPv4 or IPv6 by ``host``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def own_ports(host: str, port: int, workers: int) -> list[socket.socket]:
    """Each worker's own listening socket: ports ``port + 1`` to ``port + workers`` (any free
    ones when ``port`` is 0). Raises ``OSError`` naming the port that cannot be bound."""
    socks: list[socket.socket] = []
    try:
        for i in range(workers):
            want = port + 1 + i if port else 0
            try:
                socks.append(listen_socket(host, want))
            except OSError as exc:
                raise OSError(exc.errno, f"port {want}: {exc.strerror}") from exc
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks
