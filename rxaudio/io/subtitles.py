"""Subtitle files: SubRip (``.srt``) and WebVTT (``.vtt``) cues from timed text (no Rx).

A cue is ``(start, end, text)`` in seconds. Text is wrapped at :data:`LINE_CHARS` characters per
line (the usual subtitle width); a cue without text is not written.
"""

from __future__ import annotations

import os
import textwrap

from ..errors import FormatError

FORMATS = {".srt": "srt", ".vtt": "vtt"}
LINE_CHARS = 42


def subtitle_format(path: str, fmt: str | None = None) -> str:
    """The format named by ``fmt`` or the file's extension."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise FormatError(f"subtitles: unknown format {fmt!r}; use srt or vtt")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise FormatError(
            f"{path}: unknown subtitle file extension {ext or '(none)'}; use .srt or .vtt"
        )
    return FORMATS[ext]


def timestamp(seconds: float, kind: str) -> str:
    """``HH:MM:SS,mmm`` (SubRip) or ``HH:MM:SS.mmm`` (WebVTT), rounded to the millisecond."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if kind == 'srt' else '.'}{ms:03d}"


def header(kind: str) -> str:
    """What the file starts with (WebVTT's signature line; nothing for SubRip)."""
    return "WEBVTT\n\n" if kind == "vtt" else ""


def cue(kind: str, number: int, start: float, end: float, text: str) -> str:
    """One cue, numbered from 1, with the blank line that ends it."""
    if end < start:
        raise FormatError(f"subtitles: cue {number} ends ({end}) before it starts ({start})")
    body = "\n".join(textwrap.wrap(" ".join(text.split()), LINE_CHARS)) or "..."
    times = f"{timestamp(start, kind)} --> {timestamp(end, kind)}"
    return f"{number}\n{times}\n{body}\n\n"
