"""Where a recogniser runs: on the calling thread, or in a child process of its own.

A recogniser whose C code keeps Python's GIL while it decodes (PocketSphinx does: a
``process_raw`` call of a few seconds of speech holds it for about a second on this machine)
stalls every other Python thread meanwhile, the capture callback and the server's event loop
included, whichever thread calls it. Such a backend says so (``holds_gil = True``) and runs in a
child process (:class:`ProcessRunner`): the calling thread then only waits on a pipe, which
releases the GIL. Backends that release it, and test fakes, run inline (:class:`InlineRunner`).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
import time
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..errors import StreamError
from .base import Recognition, Recognizer

ISOLATIONS = ("auto", "process", "thread")


class Runner(Protocol):
    """A started recogniser."""

    def recognize(self, samples: NDArray[np.float32]) -> tuple[Recognition, float]:
        """The recognition and the CPU seconds it took."""
        ...

    def close(self) -> None:
        """Release the recogniser (no waiting for one in progress)."""
        ...


def timed(rec: Recognizer, samples: NDArray[np.float32]) -> tuple[Recognition, float]:
    """``rec.recognize(samples)`` and the CPU seconds of this thread it took."""
    c0 = time.thread_time()
    out = rec.recognize(samples)
    return out, time.thread_time() - c0


class InlineRunner:
    """The recogniser on the calling thread."""

    def __init__(self, cls: type[Recognizer], options: dict[str, Any]) -> None:
        self._rec: Recognizer = cls(**options)

    def recognize(self, samples: NDArray[np.float32]) -> tuple[Recognition, float]:
        """Recognise on this thread."""
        return timed(self._rec, samples)

    def close(self) -> None:
        """Nothing to release."""


def _serve(conn: Any, cls: type[Recognizer], options: dict[str, Any]) -> None:
    """The child process: build the recogniser, then answer requests until told to stop."""
    try:
        rec = cls(**options)
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            samples = conn.recv()
        except (EOFError, OSError):
            return
        if samples is None:
            return
        try:
            if isinstance(samples, str):  # "reset": a new stream begins on this recogniser
                reset = getattr(rec, "reset", None)
                if reset is not None:
                    reset()
                conn.send(("ok", None))
                continue
            conn.send(("ok", timed(rec, samples)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ProcessRunner:
    """The recogniser in a child process (spawned, one per stream), reached through a pipe."""

    def __init__(self, cls: type[Recognizer], options: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process that holds threads and models
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, cls, options), name=f"rxaudio-asr-{cls.name}", daemon=True
        )
        self._proc.start()
        child.close()
        self._closed = False
        status, detail = self._answer()
        if status != "ready":
            self.close()
            raise StreamError("transcribe", f"the {cls.name} recogniser failed to start: {detail}")

    def _answer(self) -> tuple[str, Any]:
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(1.0)
            raise StreamError(
                "transcribe",
                f"the recogniser process ended (exit code {self._proc.exitcode}); see its "
                "messages above",
            ) from None
        return str(status), payload

    def recognize(self, samples: NDArray[np.float32]) -> tuple[Recognition, float]:
        """Recognise in the child; this thread waits without holding the GIL."""
        if self._closed:
            raise StreamError("transcribe", "the recogniser was closed")
        self._conn.send(np.ascontiguousarray(samples, dtype=np.float32))
        status, payload = self._answer()
        if status != "ok":
            raise StreamError("transcribe", f"the recogniser failed: {payload}")
        rec, cpu = payload
        return rec, float(cpu)

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._proc.pid

    def reset(self) -> None:
        """Make the recogniser forget earlier streams (its ``reset``, when it has one)."""
        self._conn.send("reset")
        status, payload = self._answer()
        if status != "ok":
            raise StreamError("transcribe", f"the recogniser failed to reset: {payload}")

    @property
    def alive(self) -> bool:
        """Whether the child still runs and was not closed."""
        return not self._closed and self._proc.is_alive()

    def close(self) -> None:
        """Ask the child to end; stop it at once when it is still busy (no waiting)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._proc.join(0.05)
        if self._proc.is_alive():
            self._proc.terminate()
        self._conn.close()


IDLE_MAX = 2
"""Idle recogniser processes kept warm per backend and options."""
_idle: dict[tuple[type[Recognizer], str], list[ProcessRunner]] = {}
_idle_lock = threading.Lock()


@atexit.register
def close_idle() -> None:
    """End every warm recogniser process (at exit; tests call it too)."""
    with _idle_lock:
        runners = [r for rs in _idle.values() for r in rs]
        _idle.clear()
    for r in runners:
        r.close()


class PooledRunner:
    """A :class:`ProcessRunner` borrowed from the warm pool, given back on :meth:`close`.

    Starting a recogniser process costs most of a second (PocketSphinx loads its model), and a
    worker builds its pipeline afresh for every entry, a server for every session: a process
    that ends its use idle goes back to the pool (at most :data:`IDLE_MAX` per backend and
    options) for the next stream, instead of being stopped. One closed while it decodes is
    stopped, as before. A warm process keeps its recogniser's adaptive state (PocketSphinx's
    cepstral mean) only until it is lent again: :func:`start` resets it (the recogniser's
    ``reset``), so a warm process decodes as a fresh one.
    """

    def __init__(self, runner: ProcessRunner, key: tuple[type[Recognizer], str]) -> None:
        self._runner, self._key = runner, key
        self._busy = False
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self._runner.pid

    def recognize(self, samples: NDArray[np.float32]) -> tuple[Recognition, float]:
        """Recognise in the child (see :meth:`ProcessRunner.recognize`)."""
        if self._closed:
            raise StreamError("transcribe", "the recogniser was closed")
        self._busy = True
        try:
            return self._runner.recognize(samples)
        finally:
            self._busy = False

    def close(self) -> None:
        """Give the process back to the pool when it is idle and alive; stop it otherwise."""
        if self._closed:
            return
        self._closed = True
        r = self._runner
        if not self._busy and r.alive:
            with _idle_lock:
                pool = _idle.setdefault(self._key, [])
                if len(pool) < IDLE_MAX:
                    pool.append(r)
                    return
        r.close()


def start(cls: type[Recognizer], options: dict[str, Any], isolation: str = "auto") -> Runner:
    """Start ``cls`` with ``options``: in a child process when ``isolation`` is ``process``, or
    ``auto`` and the backend holds the GIL (``holds_gil``), taken warm from the pool when one
    is idle (:class:`PooledRunner`); inline otherwise."""
    if isolation == "process" or (isolation == "auto" and getattr(cls, "holds_gil", False)):
        key = (cls, repr(sorted(options.items())))
        while True:
            with _idle_lock:
                pool = _idle.get(key)
                r = pool.pop() if pool else None
            if r is None:
                break
            try:
                if r.alive:
                    r.reset()  # as fresh as a new one: no state from the streams before
                    return PooledRunner(r, key)
            except StreamError:
                pass
            r.close()
        return PooledRunner(ProcessRunner(cls, options), key)
    return InlineRunner(cls, options)
