"""Atomic file writes: a file is written under a temporary name and renamed when complete.

The final name only ever holds a finished file. The streaming sinks
(:mod:`rxaudio.sinks`) keep their temporary file open across items and rename it when the
stream ends; a file written in one go (a label file, a figure) uses :func:`atomic_path`.

Where the bytes go follows GStreamer's ``filesink`` (:func:`target`): a regular file (or a name
not yet taken) is written under a temporary name beside it and renamed over it; a symlink is
followed and its target replaced that way (the link stays a link); a character or block
device or a FIFO (``/dev/null``, a named pipe) is written in place, with no temporary file and
no rename. Nothing that is not a regular file is ever renamed over; a directory, a socket or a
symlink loop is refused with a :class:`~rxaudio.errors.SinkError` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SinkError


def partial_name(path: str) -> str:
    """The temporary name a file is written under before it is complete."""
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.partial")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a file's bytes go, decided by :func:`target` when the file is opened."""

    path: str
    """The name as given."""
    final: str
    """The file that ends up holding the bytes: ``path``, or the end of its symlink chain."""
    direct: bool
    """A device or FIFO: written in place (:attr:`tmp` is :attr:`final`), never renamed over."""

    @property
    def tmp(self) -> str:
        """The name to write to: a temporary name beside :attr:`final`, or :attr:`final`
        itself when :attr:`direct`."""
        return self.final if self.direct else partial_name(self.final)

    def commit(self) -> None:
        """Put the written file in place (rename the temporary name; nothing when direct)."""
        if not self.direct:
            os.replace(self.tmp, self.final)

    def discard(self) -> None:
        """Remove what was written under the temporary name (nothing when direct)."""
        if not self.direct:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.tmp)


def target(path: str | os.PathLike[str]) -> Target:
    """Decide where ``path``'s bytes go (see the module's docs); :class:`SinkError` when no
    file can be written there."""
    p = os.fspath(path)
    try:
        st: os.stat_result | None = os.stat(p)  # follows symlinks
    except FileNotFoundError:
        st = None  # a new file, or a dangling symlink: created at the end of the link
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SinkError(
                f"{p}: symlink loop (the link leads back to itself); point it at a file or "
                "remove it"
            ) from None
        raise SinkError(f"{p}: cannot write here ({exc.strerror or exc})") from None
    final = os.path.realpath(p) if os.path.islink(p) or st is not None else p
    if st is None:
        d = os.path.dirname(os.path.abspath(final))
        if final != p and not os.path.isdir(d):
            raise SinkError(
                f"{p}: a symlink to {final}, whose directory {d} does not exist; create it "
                "or point the link elsewhere"
            )
        return Target(p, final, False)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Target(p, final, False)
    if stat.S_ISDIR(mode):
        raise SinkError(f"{p} is a directory; give a file name")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return Target(p, final, True)
    what = "a socket" if stat.S_ISSOCK(mode) else "not a regular file, device or FIFO"
    raise SinkError(f"{p} is {what}; a sink writes regular files, devices and FIFOs")


class Appended(io.RawIOBase):
    """A device or FIFO opened to be written front to back, never seeking.

    A FIFO cannot seek, and a device may pretend to (``/dev/null`` answers every seek and
    ``tell`` with 0), so a writer that would seek back to patch a header or an index gets a
    stream it cannot seek (``seekable()`` is false) and writes its streamed form instead; ``tell``
    is the bytes written so far, which writers such as ``zipfile`` and pyarrow ask for.
    Opening a FIFO waits for a reader, as any writer of a FIFO does.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._f = open(path, "wb")
        self._n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = self._f.write(bytes(b))
        self._n += n
        return n

    def tell(self) -> int:
        return self._n

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        if not self.closed:
            try:
                super().close()  # flushes
            finally:
                self._f.close()


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield the name to write ``path`` under; put it in place on success.

    The name is a temporary one renamed over ``path`` (or over a symlink's target) when the
    block succeeds; a device or FIFO is written in place (:func:`target`). If the block raises,
    the temporary file is removed and ``path`` is left as it was.
    """
    t = target(path)
    try:
        yield t.tmp
        t.commit()
    except BaseException:
        t.discard()
        raise
