"""The common shape of file sinks: write per item, finalize on completion, error or dispose.

The sink emits one :class:`~rxaudio.frames.FileReceipt` when its file is final. On an upstream
error the file is finalized first (so everything received so far is on disk, valid) and then
the error is forwarded. A bad item (wrong format, NaN) is refused with an error; what was
written before it stays valid. Disposing finalizes the file too.

Ctrl-C: ``.run()`` on a sink's output (:class:`SinkOutput`) waits in short timed steps, so a
SIGINT is seen at once even when its C-level handler ran on another thread (then an untimed
wait on the main thread is never woken: the stream would play to its end first), and disposes
the chain before the ``KeyboardInterrupt`` goes on: the file is final when ``.run()`` raises.
Chains that never dispose (a script that subscribes and waits itself) are finalized at
interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.internal.exceptions import SequenceContainsNoElementsError
from reactivex.scheduler import NewThreadScheduler

from ..core.element import wrap_error
from ..errors import ConfigError, SinkError
from ..frames import FileReceipt
from ..io.atomic import target

# Files still being written. A script stopped by Ctrl-C that never disposes its chain (it
# subscribed and waited itself): finalize these at interpreter exit so no ``.partial`` is left.
_OPEN: set[Callable[[str], FileReceipt | None]] = set()


@atexit.register
def _finish_all_at_exit() -> None:
    for finish in list(_OPEN):
        try:
            finish("interrupted")
        except Exception:
            pass  # best effort at exit: nothing is left to report to


class Writer(Protocol):
    """One file being written."""

    def write(self, item: Any) -> None:
        """Write one item (raise to refuse it)."""
        ...

    def finish(self, reason: str) -> FileReceipt | None:
        """Close and rename; return the receipt (None if nothing was ever opened)."""
        ...


def check_target(op: str, path: str | os.PathLike[str]) -> str:
    """Validate a sink's output path at construction.

    Where the file goes follows :func:`~rxaudio.io.atomic.target` (GStreamer's filesink): a
    regular file is replaced atomically, a symlink's target likewise, a device or FIFO is
    written in place; a directory, a socket or a symlink loop is refused here.
    """
    p = os.fspath(path)
    d = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(d):
        raise ConfigError(f"{op}: directory {d} does not exist; create it first")
    try:
        t = target(p)
    except SinkError as exc:
        raise ConfigError(f"{op}: {exc}") from None
    if t.direct:
        if not os.access(t.final, os.W_OK):
            raise ConfigError(f"{op}: {p} is not writable")
        return p
    d = os.path.dirname(os.path.abspath(t.final))  # a symlink's target is replaced in its folder
    if not os.access(d, os.W_OK):
        raise ConfigError(f"{op}: directory {d} is not writable")
    return p


R = TypeVar("R")

# How long ``SinkOutput.run`` blocks at a time before it lets the main thread look for signals
_POLL_S = 0.1


class SinkOutput(Observable[R]):
    """A sink's output: its receipts (a file sink's :class:`FileReceipt`, the ``redis`` sink's
    :class:`~rxaudio.frames.StreamReceipt`). ``run()`` stops the chain cleanly on Ctrl-C."""

    def run(self, scheduler: abc.SchedulerBase | None = None) -> R:
        """Subscribe, block until the stream ends, and return the last receipt.

        As :meth:`reactivex.Observable.run` (an upstream error is raised, an empty sequence
        raises ``SequenceContainsNoElementsError``), with two differences that make Ctrl-C
        reliable: the wait is a loop of short timed waits, so the main thread handles a SIGINT
        within ``_POLL_S`` whichever thread the signal was delivered to (an untimed wait is
        only woken when the signal lands on the main thread itself, and never on Windows), and
        on ``KeyboardInterrupt`` (or any exception raised into the wait) the subscription is
        disposed, which stops the source and finalizes the file (a stream sink writes what it
        holds, when it can), before the exception goes on.
        """
        done = threading.Event()
        last: list[R] = []
        failed: list[Exception] = []

        def on_next(receipt: R) -> None:
            last[:] = [receipt]

        def on_error(exc: Exception) -> None:
            failed.append(exc)
            done.set()

        sub = self.subscribe(
            on_next, on_error, done.set, scheduler=scheduler or NewThreadScheduler()
        )
        try:
            while not done.wait(_POLL_S):
                pass
        except BaseException:
            sub.dispose()  # Ctrl-C: the file is final (renamed) before the interrupt goes on
            raise
        if failed:
            raise failed[0]
        if not last:
            raise SequenceContainsNoElementsError()
        return last[-1]


def file_sink(
    name: str, make_writer: Callable[[], Writer]
) -> Callable[[Observable[Any]], SinkOutput[FileReceipt]]:
    """Build a pipeable sink from a writer factory (one writer per subscription)."""

    def _sink(source: Observable[Any]) -> SinkOutput[FileReceipt]:
        def subscribe(
            observer: abc.ObserverBase[FileReceipt], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            writer = make_writer()
            lock = threading.Lock()
            done = False

            def finish(reason: str) -> FileReceipt | None:
                nonlocal done
                with lock:
                    if done:
                        return None
                    done = True
                    _OPEN.discard(finish)
                    return writer.finish(reason)

            _OPEN.add(finish)

            def on_next(item: Any) -> None:
                try:
                    with lock:  # dispose (another thread, Ctrl-C) must not close mid-write
                        if done:
                            return
                        writer.write(item)
                except Exception as exc:
                    err = wrap_error(name, exc, item)
                    try:
                        finish("error")
                    except Exception as exc2:  # pragma: no cover - disk failure on close
                        err = wrap_error(name, SinkError(f"{exc}; also failed to close: {exc2}"))
                    observer.on_error(err)

            def on_error(exc: Exception) -> None:
                try:
                    receipt = finish("error")
                except Exception as exc2:  # pragma: no cover
                    observer.on_error(wrap_error(name, SinkError(f"close failed: {exc2}")))
                    return
                if receipt is not None:
                    observer.on_next(receipt)
                observer.on_error(exc)

            def on_completed() -> None:
                try:
                    receipt = finish("completed")
                except Exception as exc:
                    observer.on_error(wrap_error(name, exc))
                    return
                if receipt is not None:
                    observer.on_next(receipt)
                observer.on_completed()

            def dispose() -> None:
                finish("disposed")

            sub = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)
            return CompositeDisposable(sub, Disposable(dispose))

        return SinkOutput(subscribe)

    return _sink
