"""The common shape of file sinks: write per item, finalize on completion, error or dispose.

The sink emits one :class:`~rxaudio.frames.FileReceipt` when its file is final. On an upstream
error the file is finalized first (so everything received so far is on disk, valid) and then
the error is forwarded. A bad item (wrong format, NaN) is refused with an error; what was
written before it stays valid. Disposing (Ctrl-C) finalizes the file too.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from ..errors import ConfigError, SinkError
from ..frames import FileReceipt
from ..operators._stage import wrap_error

# Files still being written. A script stopped by Ctrl-C (KeyboardInterrupt in ``.run()``)
# never disposes its chain: finalize these at interpreter exit so no ``.partial`` is left.
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
    """Validate a sink's output path at construction."""
    p = os.fspath(path)
    d = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(d):
        raise ConfigError(f"{op}: directory {d} does not exist; create it first")
    if os.path.isdir(p):
        raise ConfigError(f"{op}: {p} is a directory; give a file name")
    if not os.access(d, os.W_OK):
        raise ConfigError(f"{op}: directory {d} is not writable")
    return p


def file_sink(
    name: str, make_writer: Callable[[], Writer]
) -> Callable[[Observable[Any]], Observable[FileReceipt]]:
    """Build a pipeable sink from a writer factory (one writer per subscription)."""

    def _sink(source: Observable[Any]) -> Observable[FileReceipt]:
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

        return Observable(subscribe)

    return _sink
