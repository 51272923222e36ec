"""Utterance files written on a thread of their own: the event loop never waits for a disk.

A loaded server ends many utterances at once (every client that streams the same kind of
speech pauses at about the same time), and each WAV is a file created, written and renamed:
system calls that, done on the event loop, held every session's ``vad`` events back for the
whole burst. :class:`FileWriter` runs those writes in order on one thread, at a lower CPU
priority than the loop on Linux (``nice`` +10, that thread only): when the core is busy the
loop's real-time work goes first and the files follow in its gaps.

What waits for a file is said by its :class:`FileJob`: the session holds its ``utterance``
event (and every numbered speech event, ``stopped`` and errors after it) in its outboxes until
the file is in place (:meth:`~rxaudio.server.sessions.Outbox.hold`), and its log lines and
Redis entries after it likewise (:meth:`~rxaudio.server.sessions.Session`'s ``_later``), so a
client or a worker told about a file finds it complete. ``vad``, ``level`` and
``spectrogram`` events, the display stream, are not held. A write that fails fails its session
with the error, as a write on the loop did, and its ``utterance`` event is never sent.

Completions come back to the loop in submission order, in one call per batch of finished jobs
(``call_soon_threadsafe``). Memory is bounded: past ``max_bytes`` of audio waiting to be
written, :meth:`FileWriter.submit` waits for the thread (the loop then waits for the disk, as
it did before; a disk that slow is a server past its capacity). :meth:`FileWriter.drain`
awaits every submitted job (shutdown calls it after closing the sessions, so no utterance is
lost); :meth:`FileWriter.close` ends the thread.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["NICE", "FileJob", "FileWriter"]

NICE = 10  # the writer thread's niceness above the loop's (Linux; elsewhere it runs as is)
MAX_BYTES = 64 << 20  # audio bytes waiting to be written before submit waits for the thread


class FileJob:
    """One write: done (on the loop, in submission order) with or without :attr:`error`."""

    __slots__ = ("_callbacks", "done", "error", "nbytes", "work")

    def __init__(self, work: Callable[[], object] | None, nbytes: int) -> None:
        self.work: Callable[[], object] | None = work
        self.nbytes = nbytes
        self.done = False
        self.error: BaseException | None = None
        self._callbacks: list[Callable[[FileJob], None]] = []

    def then(self, callback: Callable[[FileJob], None]) -> None:
        """Call ``callback(self)`` on the loop once done (at once when already done)."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def settle(self, error: BaseException | None = None) -> None:
        """Mark a job made by hand (``FileJob(None, 0)``, never submitted) done, on the loop:
        a promise that something else completes (a session's log closed on the thread)."""
        self.error = error
        for cb in self._finish():
            cb(self)

    def _finish(self) -> list[Callable[[FileJob], None]]:
        self.done = True
        callbacks, self._callbacks = self._callbacks, []
        return callbacks


class FileWriter:
    """One thread that runs :class:`FileJob` s in order; completions delivered on ``loop``."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, nice: int = NICE, max_bytes: int = MAX_BYTES
    ) -> None:
        self.loop = loop
        self.nice = nice
        self.max_bytes = max_bytes
        self._cv = threading.Condition()
        self._todo: deque[FileJob] = deque()  # submitted, not yet run (guarded by _cv)
        self._finished: deque[FileJob] = deque()  # run, completion not yet delivered (_cv)
        self._waiting_bytes = 0  # audio bytes submitted and not yet written (_cv)
        self._scheduled = False  # a delivery call is on its way to the loop (_cv)
        self._closing = False
        self.in_flight = 0  # submitted and not yet completed on the loop (loop thread only)
        self._idle: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="rxaudio-files", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], object], nbytes: int = 0) -> FileJob:
        """Queue ``work()`` (``nbytes``: the audio it holds) and return its job."""
        job = FileJob(work, nbytes)
        if self._closing:  # after close (a session ending late in shutdown): here, at once
            job.work = None
            try:
                work()
            except Exception as exc:
                job.error = exc
            job._finish()
            return job
        with self._cv:
            while self._waiting_bytes > 0 and self._waiting_bytes + nbytes > self.max_bytes:
                self._cv.wait()  # back-pressure: the disk is slower than the speech
            self._todo.append(job)
            self._waiting_bytes += nbytes
            self._cv.notify_all()
        self.in_flight += 1
        return job

    async def drain(self) -> None:
        """Wait until every job submitted so far is done (its callbacks run)."""
        while self.in_flight:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

    def close(self) -> None:
        """End the thread after the jobs already queued (their completions still come back
        if the loop runs); idempotent."""
        self._closing = True
        with self._cv:
            self._cv.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    # ---- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        if self.nice and sys.platform.startswith("linux"):
            try:  # this thread only: on Linux a thread's id names it for setpriority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass  # not allowed here: it runs at the loop's priority, which is correct too
        while True:
            with self._cv:
                while not self._todo and not self._closing:
                    self._cv.wait()
                if not self._todo:
                    return
                job = self._todo.popleft()
            work, job.work = job.work, None
            try:
                if work is not None:
                    work()
            except BaseException as exc:  # given to the job's owner on the loop
                job.error = exc
            with self._cv:
                self._waiting_bytes -= job.nbytes
                self._finished.append(job)
                schedule = not self._scheduled
                self._scheduled = True
                self._cv.notify_all()
            if schedule:
                try:
                    self.loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits for completions
                    with self._cv:
                        self._scheduled = False

    # ---- the loop ----------------------------------------------------------------------------
    def _deliver(self) -> None:
        with self._cv:
            done = list(self._finished)
            self._finished.clear()
            self._scheduled = False
        for job in done:
            self.in_flight -= 1
            for cb in job._finish():
                try:
                    cb(job)
                except Exception as exc:  # one owner's failure: the others still hear
                    self.loop.call_exception_handler(
                        {"message": "a file job's completion failed", "exception": exc}
                    )
        if not self.in_flight and self._idle is not None:
            self._idle.set()
            self._idle = None
