"""to_labels: write detected speech segments as RTTM, JSON Lines or Audacity labels."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Annotated, Any

from reactivex import Observable

from ..core.caps import Caps
from ..core.props import Choices, element
from ..frames import FileReceipt, SpeechEnd, Utterance
from ..io.atomic import target
from ..io.labels import FORMATS, format_line, label_format
from ._filesink import check_target, file_sink


class _LabelFile:
    def __init__(self, path: str, kind: str, uri: str) -> None:
        self.path, self.kind, self.uri = path, kind, uri
        self.target = target(path)  # a symlink's target, or a device or FIFO in place
        self.tmp = self.target.tmp
        self.f: IO[str] | None = None
        self.count = 0

    def write(self, item: Any) -> None:
        if not isinstance(item, Utterance | SpeechEnd):
            return  # frames and other events pass by
        rec = item.to_dict()  # the one dict form: JSONL labels are the JSONL sink's records
        if self.f is None:
            self.f = open(self.tmp, "w", encoding="utf-8")
        self.f.write(format_line(self.kind, rec, self.uri) + "\n")
        self.f.flush()
        self.count += 1

    def finish(self, reason: str) -> FileReceipt | None:
        if self.f is None:
            self.f = open(self.tmp, "w", encoding="utf-8")  # no speech: a valid empty file
        self.f.close()
        self.target.commit()
        return FileReceipt(self.path, self.count, 0, reason=reason)


@element(
    "labels",
    kind="sink",
    accepts=Caps(frame=(SpeechEnd, Utterance, object)),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path",),
)
def to_labels(
    path: str | os.PathLike[str],
    *,
    fmt: Annotated[str | None, Choices(tuple(dict.fromkeys(FORMATS.values())))] = None,
    uri: str | None = None,
) -> Callable[[Observable[Any]], Observable[FileReceipt]]:
    """Write one label per :class:`Utterance` (or :class:`SpeechEnd`) as it arrives.

    The format follows the extension (``.rttm``, ``.jsonl``, ``.txt`` for Audacity) or ``fmt``
    (``"rttm"``, ``"jsonl"``, ``"audacity"``). Times are seconds of the stream; other items are
    ignored, so the sink can sit after ``hysteresis`` or ``buffer_utterance``. Lines are flushed
    as they come; the file is renamed from its temporary name on completion, error or dispose,
    and a :class:`FileReceipt` (``frames`` = labels written) is emitted.

    .. marble::
        -u1---u2---|
        [ to_labels("talk.rttm") ]
        -----------(R|)      R = FileReceipt(path, frames=2)

    Parameters
    ----------
    path
        Output file; its directory must exist.
    fmt
        Label format; none: from the extension (``.rttm``, ``.jsonl``, ``.txt``, ``.json``).
    uri
        The recording's name in RTTM lines (none: the file name without extension).

    Raises
    ------
    ConfigError
        Directory missing or not writable.
    FormatError
        Unknown extension or format.
    """
    p = check_target("to_labels", path)
    kind = label_format(p, fmt)
    if kind == "json":
        kind = "jsonl"
    name = uri if uri is not None else os.path.splitext(os.path.basename(p))[0]
    return file_sink("to_labels", lambda: _LabelFile(p, kind, name))
