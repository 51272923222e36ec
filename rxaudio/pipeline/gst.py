"""GStreamer's element names and their rxaudio equivalents: one table.

A launch string written with a GStreamer name gets, instead of "no element called X", one line
naming the rxaudio element and how to write it (:func:`hint`); ``rxaudio inspect --gst`` prints
the table. Two names are *aliases*: ``audiotestsrc`` is ``testsrc`` and ``fakesink`` is
``null``, with the same properties (``wave``, ``freq``, ``num-buffers``, ``samplesperbuffer``,
``is-live``...), so GStreamer's own lines for them run unchanged. The other equivalents differ
in how they are written (``audioresample`` needs its rate on the element, not in a caps filter
after it), so they are hints rather than aliases that would accept a line and then do another
thing than GStreamer would.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GST_NAMES", "GstName", "alias", "hint"]


@dataclass(frozen=True, slots=True)
class GstName:
    """One GStreamer element name and what rxaudio has for it."""

    gst: str
    """GStreamer's name."""
    rxaudio: str
    """The rxaudio element(s), or what takes its place."""
    write: str
    """How to write it in an rxaudio launch string."""
    alias: bool = False
    """Accepted as a name of the rxaudio element itself (same properties)."""


GST_NAMES: tuple[GstName, ...] = (
    GstName("audiotestsrc", "testsrc", "testsrc wave=sine freq=440 num-buffers=100", alias=True),
    GstName("fakesink", "null", "... ! null", alias=True),
    GstName("filesrc", "file", "file location=a.wav (it decodes too: no wavparse/decodebin)"),
    GstName("autoaudiosrc", "mic", "mic (device=NAME to choose one; rxaudio devices lists them)"),
    GstName("pulsesrc", "mic", "mic device=NAME (rxaudio devices lists them)"),
    GstName("alsasrc", "mic", "mic device=NAME (rxaudio devices lists them)"),
    GstName(
        "audioconvert",
        "none needed",
        "nothing: the conversions a link needs are inserted (rxaudio launch -v shows them); "
        "channels count=2 or to_mono to choose the channels",
    ),
    GstName("audioresample", "resample", "resample rate=16000"),
    GstName("volume", "gain", "gain db=-6 (decibels, not a factor)"),
    GstName("wavparse", "file", "file location=a.wav (decodes WAV itself)"),
    GstName("decodebin", "file", "file location=a.flac (decodes WAV, FLAC, OGG, MP3 itself)"),
    GstName("uridecodebin", "file", "file location=a.wav (local files only)"),
    GstName("wavenc", "wav", "wav location=out.wav (encodes and writes: no filesink)"),
    GstName(
        "filesink",
        "wav, jsonl",
        "wav location=out.wav after audio (wavenc ! filesink), jsonl location=out.jsonl "
        "after events",
    ),
    GstName("autoaudiosink", "wav, null", "wav location=out.wav, or null (no playback)"),
    GstName("queue2", "queue", "queue max-size-buffers=200 max-size-time=1000000000"),
    GstName("multiqueue", "queue", "one queue on each branch"),
)

_BY_NAME = {g.gst: g for g in GST_NAMES}


def alias(name: str) -> str | None:
    """The rxaudio element that GStreamer's ``name`` is an alias of, or None."""
    g = _BY_NAME.get(name)
    return g.rxaudio if g is not None and g.alias else None


def hint(name: str) -> str | None:
    """One line for GStreamer's ``name`` used in a launch string: the rxaudio equivalent and
    how to write it; None when the name is not GStreamer's (or is an rxaudio name too)."""
    g = _BY_NAME.get(name)
    if g is None or g.alias or g.rxaudio == name:
        return None
    return f"{name!r} is GStreamer's name; in rxaudio it is {g.rxaudio}: write {g.write}"
