"""Speech segment labels: RTTM, JSON Lines and Audacity label files (no Rx).

A segment is ``(start, end)`` in seconds. Formats are chosen by extension:

* ``.rttm`` -- NIST RTTM: ``SPEAKER <uri> 1 <start> <duration> <NA> <NA> speech <NA> <NA>``;
* ``.jsonl`` -- one JSON object per line with at least ``start`` and ``end`` (seconds); other
  keys (``type``, ``duration``, ``audio_start``, ``audio_end``, ``wav``, ``reason``) are kept:
  the writers put an event's one dict form (``docs/events.md``) on each line;
* ``.txt`` -- Audacity labels: ``start<TAB>end<TAB>label`` (the record's ``label``, else its
  ``text`` (a transcript), else ``speech``);
* ``.json`` -- an object with a ``segments`` list of ``{start, end}`` (the bundled sample's truth).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import FormatError, SourceError
from .atomic import atomic_path

FORMATS = {".rttm": "rttm", ".jsonl": "jsonl", ".txt": "audacity", ".json": "json"}

Record = dict[str, Any]


def label_format(path: str, fmt: str | None = None) -> str:
    """The format named by ``fmt`` or the file's extension."""
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise FormatError(f"labels: unknown format {fmt!r}; use rttm, jsonl, audacity or json")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise FormatError(
            f"{path}: unknown label file extension {ext or '(none)'}; use .rttm, .jsonl, "
            ".txt (Audacity) or .json"
        )
    return FORMATS[ext]


def _segment(rec: Mapping[str, Any], where: str) -> Record:
    try:
        start, end = float(rec["start"]), float(rec["end"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{where}: needs numeric start and end (seconds): {exc}") from exc
    if not (math.isfinite(start) and math.isfinite(end)) or end < start or start < 0:
        raise FormatError(f"{where}: bad segment start={start} end={end}")
    out = dict(rec)
    out["start"], out["end"] = start, end
    return out


def label_duration(path: str) -> float | None:
    """The audio length (seconds) a ``.json`` label file states in its ``duration`` field;
    ``None`` for other formats or without one. Raises :class:`FormatError` for a bad value."""
    if label_format(path) != "json" or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except ValueError as exc:
            raise FormatError(f"{path}: not JSON ({exc})") from exc
    d = data.get("duration") if isinstance(data, dict) else None
    if d is None:
        return None
    if isinstance(d, bool) or not isinstance(d, int | float) or not math.isfinite(d) or d < 0:
        raise FormatError(f"{path}: duration must be a number of seconds >= 0, got {d!r}")
    return float(d)


def read_labels(path: str, fmt: str | None = None) -> list[Record]:
    """Read segments (sorted by start); raises :class:`FormatError` naming the bad line."""
    kind = label_format(path, fmt)
    if not os.path.isfile(path):
        raise SourceError(f"{path}: no such label file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out: list[Record] = []
    if kind == "json":
        try:
            data = json.loads(text)
            items = data["segments"] if isinstance(data, dict) else data
        except (ValueError, KeyError) as exc:
            raise FormatError(f"{path}: expected JSON with a 'segments' list ({exc})") from exc
        out = [_segment(r, f"{path}: segment {i}") for i, r in enumerate(items)]
    for n, line in enumerate(text.splitlines(), 1):
        if kind == "json" or not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        where = f"{path}:{n}"
        if kind == "jsonl":
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise FormatError(f"{where}: not JSON ({exc})") from exc
            if not isinstance(rec, dict):
                raise FormatError(f"{where}: expected a JSON object")
            out.append(_segment(rec, where))
        elif kind == "rttm":
            parts = line.split()
            if len(parts) < 5 or parts[0] != "SPEAKER":
                raise FormatError(f"{where}: expected 'SPEAKER uri chan start dur ...'")
            try:
                s, d = float(parts[3]), float(parts[4])
            except ValueError as exc:
                raise FormatError(f"{where}: start/duration not numbers") from exc
            out.append(_segment({"start": s, "end": s + d}, where))
        else:
            parts = line.split("\t")
            if len(parts) < 2:
                raise FormatError(f"{where}: expected 'start<TAB>end<TAB>label'")
            out.append(_segment({"start": parts[0], "end": parts[1]}, where))
    out.sort(key=lambda r: r["start"])
    return out


def format_line(kind: str, rec: Mapping[str, Any], uri: str = "audio") -> str:
    """One line (without newline) of a label file for a segment record."""
    s, e = float(rec["start"]), float(rec["end"])
    if kind == "rttm":
        return f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> speech <NA> <NA>"
    if kind == "audacity":
        label = rec.get("label") or " ".join(str(rec.get("text") or "").split()) or "speech"
        return f"{s:.6f}\t{e:.6f}\t{label}"
    if kind == "jsonl":
        return json.dumps(dict(rec), separators=(",", ":"), allow_nan=False)
    raise FormatError(f"labels: cannot write format {kind!r}; use rttm, jsonl or audacity")


def write_labels(
    path: str, records: Iterable[Mapping[str, Any]], *, fmt: str | None = None, uri: str = "audio"
) -> str:
    """Write segments (temporary name, then rename); return the path."""
    kind = label_format(path, fmt)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(format_line(kind, rec, uri) + "\n")
    return path
