"""to_jsonl: one JSON object per stream item."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Any

import orjson
from reactivex import Observable

from ..core.caps import Caps
from ..core.props import element
from ..frames import FileReceipt
from ..io.atomic import target
from ._filesink import check_target, file_sink
from ._serialize import to_record


def to_json(record: dict[str, Any]) -> str:
    """The one JSON text of a record: compact, never NaN or infinity (the dict forms hold none;
    a stray one is written ``null``, as the dict forms do). The JSONL files, the session logs
    and the server's protocol messages all use it.

    orjson, not the standard library: the live server encodes every event of every stream
    (thousands a second), and orjson does it several times faster, with the same JSON. A value
    it cannot encode raises ``TypeError``."""
    return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")


class JsonlLog:
    """An append-only JSON-lines log written line by line, each line flushed as it comes.

    For a log that is read while it grows (a live session's ``events.jsonl``), so it is not
    written under a temporary name like :func:`to_jsonl`'s files: each line is complete when it
    is flushed, and reopening appends. ``write`` takes a ``charge`` callback that may refuse a
    line by its size in bytes (a storage budget); a refused line is not written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.f: IO[str] | None = open(self.path, "a", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any], charge: Callable[[int], bool] | None = None) -> bool:
        """Append ``record``; return whether it was written (``charge`` may refuse it)."""
        if self.f is None:
            raise ValueError(f"{self.path}: the log is closed")
        line = self.line(record, charge)
        if line is None:
            return False
        self.append(line)
        return True

    def line(
        self, record: dict[str, Any], charge: Callable[[int], bool] | None = None
    ) -> str | None:
        """``record``'s line, charged (``None``: refused); :meth:`append` writes it, anywhere
        (a writer thread), :meth:`write` does both."""
        line = to_json(record) + "\n"
        if charge is not None and not charge(len(line.encode("utf-8"))):
            return None
        return line

    def append(self, line: str) -> None:
        """Write and flush one line made by :meth:`line`."""
        if self.f is None:
            raise ValueError(f"{self.path}: the log is closed")
        self.f.write(line)
        self.f.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.f is not None:
            self.f.close()
            self.f = None


class _JsonlFile:
    def __init__(self, path: str, serialize: Callable[[Any], dict[str, Any]]) -> None:
        self.path, self.serialize = path, serialize
        self.target = target(path)  # a symlink's target, or a device or FIFO in place
        self.tmp = self.target.tmp
        self.f: IO[str] | None = None
        self.count = 0

    def write(self, item: Any) -> None:
        line = to_json(self.serialize(item))
        if self.f is None:
            self.f = open(self.tmp, "w", encoding="utf-8")
        self.f.write(line + "\n")
        self.f.flush()
        self.count += 1

    def finish(self, reason: str) -> FileReceipt | None:
        if self.f is None:
            # an empty log is still a valid (empty) JSONL file
            self.f = open(self.tmp, "w", encoding="utf-8")
        self.f.close()
        self.target.commit()
        return FileReceipt(self.path, self.count, 0, reason=reason)


@element(
    "jsonl",
    kind="sink",
    accepts=Caps(frame=object),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path",),
)
def to_jsonl(
    path: str | os.PathLike[str], *, serialize: Callable[[Any], dict[str, Any]] = to_record
) -> Callable[[Observable[Any]], Observable[FileReceipt]]:
    """Write each item as one JSON line; emit a :class:`FileReceipt` when the file is final.

    Items are converted by ``serialize`` (default: ``to_dict()`` when the item has one,
    dataclass fields otherwise, with large arrays summarised). Lines are flushed as they come;
    the file is renamed from its temporary name on completion, error or dispose. An item that
    cannot be serialised ends the stream with an error; the lines before it stay valid.

    .. marble::
        -e1--e2--e3--|
        [ to_jsonl("events.jsonl") ]
        -------------(R|)      R = FileReceipt(path, frames=3)

    Parameters
    ----------
    path
        Output file; its directory must exist.
    serialize
        Item to JSON object (set from Python; default: the item's one dict form).
    """
    p = check_target("to_jsonl", path)
    return file_sink("to_jsonl", lambda: _JsonlFile(p, serialize))
