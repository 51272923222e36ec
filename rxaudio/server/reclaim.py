"""Give an ended session's memory back soon after it ends, not minutes later.

A session is a web of reference cycles (the Rx chain's subjects, observers and disposables,
closures holding the operators' state, the connection and its session pointing at each
other), so reference counting alone never frees it: Python's cyclic collector must. A
session that lived for minutes has been promoted to the oldest generation by then, and the
collector examines that generation only when the objects promoted since its last pass reach a
quarter of those it holds. In a server that is dozens of ended sessions later, so every ended
session, with its state (a few hundred kB: the recent audio kept for an utterance's start, the
replay buffer of speech events, the connection's buffers), stayed in memory while the next
ones grew: the resident memory stepped up at the first turnovers of sessions, by the ended
ones' worth, until Python's own full collection came round, and stayed at that level after
(docs/benchmarks.md, "Memory over an hour").

:class:`Reclaimer` runs one full collection a moment after sessions or connections end (at
most one every ``interval_s``), then, on glibc, ``malloc_trim(0)`` to hand the freed pages
back to the system. :func:`freeze_startup` (called by ``rxaudio serve`` once the server is
up) moves everything alive at startup (modules, the model, the application) out of the
collector's sight, so that each of those collections examines only what sessions and
connections made since. Measured with 20 live sessions (server and clients in one process,
docs/benchmarks.md): a full collection took about 55 ms over 65,000 objects, and 8-12 ms
with startup's 59,000 frozen; ``malloc_trim(0)`` took under 0.5 ms.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
import time
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
    """Collect cyclic garbage and trim the heap soon after something ends, rate-limited.

    :meth:`soon` (called when a session ends or a connection closes) schedules one run
    ``delay_s`` later, or ``interval_s`` after the previous run when that is later; calls
    while one is scheduled add nothing. A run is ``collect()`` (a full ``gc.collect``), then
    ``trim()`` (:func:`malloc_trim`). Everything runs on the loop's thread.
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
    ) -> None:
        self.loop = loop
        self.delay_s = delay_s
        self.interval_s = interval_s
        self._collect = collect
        self._trim = trim
        self._observe = observe  # told each run's duration (the loop's pause), in seconds
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")  # loop time of the last run
        self.runs = 0

    def soon(self) -> None:
        """Something ended: schedule a run (unless one is scheduled)."""
        if self._handle is not None or self.loop.is_closed():
            return
        when = max(self.loop.time() + self.delay_s, self._last + self.interval_s)
        self._handle = self.loop.call_at(when, self.run)

    def run(self) -> None:
        """Collect and trim now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        t0 = time.perf_counter()
        self._collect()
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
