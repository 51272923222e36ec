"""SIGINT/SIGTERM as a stop request: the one signal path of the CLI's blocking commands.

Two ways a Ctrl-C used to be lost, and what this module does about each:

* **Inherited "ignore".** A shell script that starts a command in the background
  (``rxaudio launch ... &``; also what some CI runners and ``make`` recipes do) leaves SIGINT
  ignored in the child, and CPython then installs no ``KeyboardInterrupt`` handler at all: a
  later ``kill -INT`` (what a test or a supervisor sends) is dropped and the whole input plays.
  :func:`honour_sigint` gives SIGINT its default meaning back at the first line the CLI runs.
* **An exception raised anywhere.** Python's default handler raises ``KeyboardInterrupt`` at
  whatever bytecode the main thread is on: half-way through subscribing a chain (before the
  code that would dispose it is reached), inside a ``__del__`` or weakref callback (where it is
  printed as "Exception ignored" and dropped), or in the middle of the dispose that finalizes
  the files (a second Ctrl-C). :class:`StopSignals` installs handlers that only *record* the
  signal: no exception, no lock taken (``Event.set`` from a handler can deadlock against the
  main thread's own ``Event.wait`` on the same event), so the command sees the request at its
  next poll, in a place it chose, and every later signal is a no-op while it stops.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def honour_sigint() -> None:
    """Make SIGINT raise ``KeyboardInterrupt`` again when the parent left it ignored.

    A no-op off the main thread and when the process has any other SIGINT handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Stopped(BaseException):
    """Raised by :meth:`StopSignals.check` once a stop signal has arrived; ``signal`` names it.

    A ``BaseException`` so that no ``except Exception`` on the way out mistakes it for an error.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.signal = name


class StopSignals:
    """SIGINT and SIGTERM recorded as a stop request while installed (main thread only).

    ``name`` is the first signal received (``"SIGINT"``/``"SIGTERM"``), or ``None``. Poll it
    (or call :meth:`check`) from the main thread's wait loop: a timed wait returns within its
    timeout whichever thread the signal was delivered to.
    """

    def __init__(self) -> None:
        self._got: list[str] = []  # list.append is atomic under the GIL: safe in a handler
        self._old: dict[int, Any] = {}

    @property
    def name(self) -> str | None:
        """The first stop signal received, or ``None``."""
        return self._got[0] if self._got else None

    def check(self) -> None:
        """Raise :class:`Stopped` if a stop signal has arrived."""
        if self._got:
            raise Stopped(self._got[0])

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        self._got.append(signal.Signals(signum).name)

    def install(self) -> bool:
        """Install the handlers; ``False`` (and nothing done) off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for s in STOP_SIGNALS:
            self._old[s] = signal.signal(s, self._handler)
        return True

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        while self._old:
            s, h = self._old.popitem()
            signal.signal(s, h)


@contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """:class:`StopSignals` installed for the ``with`` block (a no-op off the main thread)."""
    stop = StopSignals()
    stop.install()
    try:
        yield stop
    finally:
        stop.restore()
