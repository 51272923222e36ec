"""The server on its own thread and event loop, beside an app that owns the main thread.

``rxaudio run`` records its live source in the main thread and also serves the page: it taps the
source's frames into :meth:`BackgroundServer.feed`, which makes them the server's shared source
(viewers ``listen`` to it), while browsers can still stream their own microphones.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from ..errors import RxAudioError
from ..frames import AudioFrame
from .config import ServerConfig
from .hub import Hub
from .loops import loop_factory
from .options import PIPELINE_RATE
from .routes import HUB, create_app, guard


class BackgroundServer:
    """Run ``rxaudio serve``'s application in a daemon thread.

    Parameters
    ----------
    config
        The server's configuration (``config.source`` should be ``None``: the shared source is
        what :meth:`feed` receives).
    host, port
        Where to listen; port 0 picks a free one (see :attr:`url`).
    any_port
        When ``port`` is taken, listen on a free port instead of failing (:attr:`moved` says so).
    shared_format
        ``(rate, channels)`` at which the shared session opens before the first frame, so a
        viewer can ``listen`` at once (reopened at the source's own format if it differs).
    """

    def __init__(
        self,
        config: ServerConfig,
        host: str = "127.0.0.1",
        port: int = 8765,
        *,
        any_port: bool = False,
        shared_format: tuple[int, int] = (PIPELINE_RATE, 1),
    ) -> None:
        self.shared_format = shared_format
        self.config, self.host, self.port, self.any_port = config, host, port, any_port
        self.moved = False
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub: Hub | None = None
        self._runner: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="rxaudio-server", daemon=True)

    def start(self, timeout: float = 30.0) -> str:
        """Start listening; return the page's URL (raises what prevented it)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RxAudioError(f"the server did not start within {timeout} s")
        if self._error is not None:
            raise RxAudioError(f"the server could not start: {self._error}") from self._error
        return self.url

    def feed(self, frame: AudioFrame) -> None:
        """Hand one frame of the shared source to the server (from any thread)."""
        loop, hub = self._loop, self._hub
        if loop is None or hub is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            loop.call_soon_threadsafe(hub.feed_external, frame.samples, frame.sample_rate)

    def wait(self, seconds: float | None = None) -> str:
        """Block the (main) thread until Ctrl-C, SIGTERM or ``seconds``; return which ended it.

        Returns ``"SIGINT"``, ``"SIGTERM"`` or ``"seconds"``. The server keeps serving meanwhile.
        Both signals only record a stop request, seen within a short timed wait whichever
        thread the signal was delivered to (the handler sets no Event: ``Event.set`` from a
        handler can deadlock against this thread's own wait on it), so SIGINT stops the wait
        even when the parent left it ignored, and never raises into the caller.
        """
        import signal
        import time

        got: list[str] = []

        def on_signal(signum: int, frame: Any) -> None:
            got.append(signal.Signals(signum).name)

        main = threading.current_thread() is threading.main_thread()
        sigs = (signal.SIGINT, signal.SIGTERM)
        old = {s: signal.signal(s, on_signal) for s in sigs} if main else {}
        end = None if seconds is None else time.monotonic() + max(0.0, seconds)
        idle = threading.Event()  # never set: a timed sleep that a signal's handler can end
        try:
            while not got:
                left = 0.1 if end is None else min(0.1, end - time.monotonic())
                if left <= 0:
                    return "seconds"
                idle.wait(left)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return got[0]

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully (every session flushed, sockets closed) and join the thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            try:
                fut.result(timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)

    def _main(self) -> None:
        from aiohttp import web

        loop = loop_factory(self.config.loop)()
        self._loop = loop
        try:
            self.config.host = self.host  # Host headers are checked against it
            app = create_app(self.config)
            self._hub = app[HUB]
            self._runner = web.AppRunner(
                app, handle_signals=False, shutdown_timeout=self.config.shutdown_timeout_s
            )
            loop.run_until_complete(self._runner.setup())
            guard(self._runner)
            site = web.TCPSite(self._runner, self.host, self.port)
            try:
                loop.run_until_complete(site.start())
            except OSError:
                if not self.any_port or self.port == 0:
                    raise
                site = web.TCPSite(self._runner, self.host, 0)
                loop.run_until_complete(site.start())
                self.moved = True
            server = getattr(site, "_server", None)
            port = server.sockets[0].getsockname()[1] if server and server.sockets else self.port
            self._hub.open_external(*self.shared_format)
            token = f"?token={self.config.token}" if self.config.token else ""
            self.url = f"http://{self.host}:{port}/{token}"
        except BaseException as exc:  # reported by start() in the caller's thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()
