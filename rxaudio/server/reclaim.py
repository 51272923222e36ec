"""Give an ended session's memory back when it ends, not minutes later.

A session used to be a web of reference cycles (subscriptions holding its bound methods, the
fused chain's closures calling one another, a writer's callback closing over the session), so
reference counting never freed it: Python's cyclic collector had to. A session that lived for
minutes has been promoted to the oldest generation by then, which the collector examines only
when the objects promoted since its last pass reach a quarter of those it holds: dozens of
ended sessions later, each with a few hundred kB (the recent audio kept for an utterance's
start above all). Resident memory stepped up at the first turnovers of sessions
(docs/benchmarks.md, "Memory over an hour").

Sessions and connections now break those cycles when they end (``Session._finish``,
:func:`rxaudio.core.fuse.stages_operator`'s disposal), so reference counting frees them at once
(``tests/server/test_reclaim.py`` checks it with the collector off). :class:`Reclaimer` is the
safety net and the heap's trim: a moment after sessions or connections end (at most once every
``interval_s``) it checks, through weak references, whether what ended is gone; only if
something is still alive does it run a full collection (a pause of every session: about 24 ms
with 60 live sessions here), and it counts those runs (``collections``, and
``rxaudio_reclaim_collections_total`` in ``/metrics``: each one is a cycle to report). Then, on
glibc, ``malloc_trim(0)`` hands the freed pages back to the system (under 0.5 ms).
:func:`freeze_startup` (called by ``rxaudio serve`` once the server is up) moves everything
alive at startup out of the collector's sight, so that any collection examines only what
sessions and connections made since.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
import time
import weakref
from collections.abc import Callable
from functools import cache

RECLAIM_DELAY_S = 1.0  # after an end: lets the connection of a stopped session close too
RECLAIM_INTERVAL_S = 10.0  # at most one collection this often, however many sessions end


@cache
def _libc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    fn: Callable[[int], int] = trim
    return fn


def malloc_trim() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim(0)``).

    ``False`` where there is no glibc (macOS, musl, Windows): nothing is done there.
    """
    trim = _libc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def freeze_startup() -> None:
    """Collect once, then exempt every object alive now from later collections (``gc.freeze``).

    For a process that is a server from here on: what startup built lives as long as the
    process, so the collector need not examine it again. (Objects frozen here that later
    become cyclic garbage are never collected; startup's objects do not.)
    """
    gc.collect()
    gc.freeze()


class Reclaimer:
    """Trim the heap soon after something ends, collecting first if what ended is still alive.

    :meth:`soon` (called when a session ends or a connection closes, with it) schedules one run
    ``delay_s`` later, or ``interval_s`` after the previous run when that is later; calls while
    one is scheduled only add what ended to the watch list. A run calls ``collect()`` (a full
    ``gc.collect``) when anything watched is still alive, or when :meth:`soon` was called
    without saying what ended; then ``trim()`` (:func:`malloc_trim`). Everything runs on the
    loop's thread.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        delay_s: float = RECLAIM_DELAY_S,
        interval_s: float = RECLAIM_INTERVAL_S,
        collect: Callable[[], object] = gc.collect,
        trim: Callable[[], object] = malloc_trim,
        observe: Callable[[float], object] | None = None,
        collected: Callable[[], object] | None = None,
    ) -> None:
        self.loop = loop
        self.delay_s = delay_s
        self.interval_s = interval_s
        self._collect = collect
        self._trim = trim
        self._observe = observe  # told each run's duration (the loop's pause), in seconds
        self._collected = collected  # told of each full collection
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")  # loop time of the last run
        self._watch: list[weakref.ref[object]] = []  # what ended since the last run
        self._unknown = False  # something ended that we cannot watch: collect to be sure
        self.runs = 0
        self.collections = 0

    def soon(self, ended: object | None = None) -> None:
        """``ended`` (a session or connection; ``None``: unknown) ended: schedule a run."""
        if ended is None:
            self._unknown = True
        else:
            try:
                self._watch.append(weakref.ref(ended))
            except TypeError:  # not weakly referenceable: collect to be sure
                self._unknown = True
        if self._handle is not None or self.loop.is_closed():
            return
        when = max(self.loop.time() + self.delay_s, self._last + self.interval_s)
        self._handle = self.loop.call_at(when, self.run)

    def run(self) -> None:
        """Collect (when needed) and trim now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        t0 = time.perf_counter()
        alive = self._unknown or any(r() is not None for r in self._watch)
        self._watch = []
        self._unknown = False
        if alive:
            self._collect()
            self.collections += 1
            if self._collected is not None:
                self._collected()
        self._trim()
        if self._observe is not None:
            self._observe(time.perf_counter() - t0)
        self._last = self.loop.time()
        self.runs += 1

    def cancel(self) -> None:
        """Drop a scheduled run (shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
