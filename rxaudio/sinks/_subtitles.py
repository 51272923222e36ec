"""to_subtitles (``subtitles``): transcripts as a SubRip or WebVTT subtitle file."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO, Annotated, Any

from reactivex import Observable

from ..core.caps import Caps
from ..core.props import Choices, element
from ..frames import FileReceipt, Transcript
from ..io.atomic import target
from ..io.subtitles import FORMATS, cue, header, subtitle_format
from ._filesink import check_target, file_sink


class _SubtitleFile:
    def __init__(self, path: str, kind: str) -> None:
        self.path, self.kind = path, kind
        self.target = target(path)  # a symlink's target, or a device or FIFO in place
        self.tmp = self.target.tmp
        self.f: IO[str] | None = None
        self.count = 0

    def _open(self) -> IO[str]:
        if self.f is None:
            self.f = open(self.tmp, "w", encoding="utf-8")
            self.f.write(header(self.kind))
        return self.f

    def write(self, item: Any) -> None:
        if not isinstance(item, Transcript) or not item.text:
            return  # other items, skipped and empty utterances: no cue
        d = item.to_dict()  # the one dict form: the cue's times are the transcript's
        f = self._open()
        f.write(cue(self.kind, self.count + 1, d["start"], d["end"], d["text"]))
        f.flush()
        self.count += 1

    def finish(self, reason: str) -> FileReceipt | None:
        self._open().close()  # no speech: a valid empty file
        self.target.commit()
        return FileReceipt(self.path, self.count, 0, reason=reason)


@element(
    "subtitles",
    kind="sink",
    accepts=Caps(frame=(Transcript, object)),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path",),
)
def to_subtitles(
    path: str | os.PathLike[str],
    *,
    fmt: Annotated[str | None, Choices(tuple(FORMATS.values()))] = None,
) -> Callable[[Observable[Any]], Observable[FileReceipt]]:
    """Write one subtitle cue per :class:`Transcript` with text, as it arrives.

    The format follows the extension (``.srt`` SubRip, ``.vtt`` WebVTT) or ``fmt``. A cue spans
    the utterance's detected speech (seconds of the stream) and holds its text, wrapped at 42
    characters a line; transcripts without text (empty or skipped utterances) and other items
    are passed by. The file is written under a temporary name and renamed on completion, error
    or dispose; a :class:`FileReceipt` (``frames`` = cues written) is emitted.

    .. marble::
        -T1---T2---|
        [ to_subtitles("talk.srt") ]
        -----------(R|)      R = FileReceipt(path, frames=2)

    Parameters
    ----------
    path
        Output file; its directory must exist.
    fmt
        Subtitle format; none: from the extension (``.srt``, ``.vtt``).

    Raises
    ------
    ConfigError
        Directory missing or not writable.
    FormatError
        Unknown extension or format.
    """
    p = check_target("to_subtitles", path)
    kind = subtitle_format(p, fmt)
    return file_sink("to_subtitles", lambda: _SubtitleFile(p, kind))
