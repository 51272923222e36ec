"""Which event loop the server runs on: uvloop where it is installed, asyncio's otherwise.

A loaded server spends a tenth of its CPU in the event loop itself (waking up for sockets,
running callbacks, writing to transports). uvloop runs the same asyncio programs on libuv, in
C: measured on the server at 60 real-time streams it cut the server's CPU by 10-13 % and the
``vad`` event latency by a third (``docs/benchmarks.md``). It is a drop-in loop, so nothing else
changes; ``--loop asyncio`` keeps the standard one (for debugging, or where uvloop has no wheel).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import ConfigError
from .config import check

T = TypeVar("T")


def uvloop_installed() -> bool:
    """Whether ``import uvloop`` would work here (without importing it)."""
    try:
        return importlib.util.find_spec("uvloop") is not None
    except (ImportError, ValueError):  # a broken or shadowed module counts as missing
        return False


def resolve(kind: str) -> str:
    """The loop ``kind`` (``auto``, ``uvloop``, ``asyncio``) means here: ``uvloop`` or ``asyncio``.

    Raises :class:`~rxaudio.errors.ConfigError` for an unknown kind, and for ``uvloop`` when it
    is not installed (``auto`` then falls back to asyncio's loop instead).
    """
    check("loop", kind)  # one of LOOPS, said as every flag's check says it
    if kind == "asyncio":
        return "asyncio"
    if uvloop_installed():
        return "uvloop"
    if kind == "uvloop":
        raise ConfigError(
            "serve: --loop uvloop: uvloop is not installed; pip install 'rxaudio[server]' "
            "(or pip install uvloop), or use --loop asyncio"
        )
    return "asyncio"


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new event loop of ``kind`` (resolved as :func:`resolve` does)."""
    if resolve(kind) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: str) -> T:
    """``asyncio.run(main)`` on a new loop of ``kind``."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
