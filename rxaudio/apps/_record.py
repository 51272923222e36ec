"""``rxaudio record OUT.wav``: capture a device (or play a file in real time) into a WAV file.

A live level meter goes to stderr (one updating line on a terminal, a plain line a second
otherwise). Ctrl-C or SIGTERM stops the recording cleanly: the WAV is finalized and valid.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..core.props import Range

if TYPE_CHECKING:  # the subcommand module stays light: `rxaudio --help` imports it
    from reactivex import Observable

    from ..frames import AudioFrame

HELP = "record a device (or a file played in real time) into a WAV file, with a level meter"


# the microphone's options offered as flags (doc, default and range from the element); a
# recorder narrows two ranges and keeps its established ``--rate``
MIC_FLAGS = ("sample_rate", "channels")
MIC_RANGES = {"sample_rate": Range(1000, 10_000_000), "block_size": Range(16, 1 << 20)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio record``."""
    from ._flags import add_flags
    from ._segment import add_vad_arguments

    p.add_argument("out", metavar="OUT.wav", help="WAV file to write (its directory must exist)")
    p.add_argument(
        "--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)"
    )
    where = p.add_mutually_exclusive_group()
    add_flags(where, "mic", ("device",))
    where.add_argument(
        "--source",
        metavar="FILE",
        default=None,
        help="play this audio file in real time instead of capturing a device",
    )
    # not given: the microphone's own default, or the --source file's own format
    add_flags(
        p,
        "mic",
        MIC_FLAGS,
        unset=True,
        names={"sample_rate": "rate"},
        ranges=MIC_RANGES,
        strict=True,
    )
    add_flags(p, "mic", ("block_size",), ranges=MIC_RANGES, strict=True)
    add_flags(p, "wav", ("subtype",))
    p.add_argument("--quiet", action="store_true", help="no level meter")
    p.add_argument("--segment", metavar="DIR", default=None, help="also write utterances live")
    add_vad_arguments(p)


def capture_warning(source: object) -> str | None:
    """A line about audio lost at capture (dropped blocks, PortAudio overruns), if any."""
    stats = getattr(source, "stats", None)
    if stats is None or not (stats.dropped_blocks or stats.overruns):
        return None
    return (
        f"warning: {stats.dropped_blocks} block(s) dropped (processing too slow) and "
        f"{stats.overruns} PortAudio overrun(s); the file holds silence where audio was lost"
    )


def build_source(args: argparse.Namespace) -> tuple[Observable[AudioFrame], str]:
    """The source the options ask for, and a phrase saying what it is."""
    from ..pipeline import registry

    if args.source is not None:
        from ..pipeline.caps import Caps, conform

        src = registry.make("file", path=args.source, block_size=args.block_size, realtime=True)
        info = src.info
        what = f"file {info.path} ({info.sample_rate} Hz, {info.channels} ch) in real time"
        if args.sample_rate is not None or args.channels is not None:
            return src.pipe(conform(Caps(args.sample_rate, args.channels))), what
        return src, what

    given = {k: getattr(args, k) for k in MIC_FLAGS if getattr(args, k) is not None}
    device = args.device if args.device != "" else None
    mic = registry.make("mic", device=device, block_size=args.block_size, **given)
    name = "the default input device" if device is None else f"device {device!r}"
    return mic, f"{name} at {mic.sample_rate} Hz, {mic.channels} ch"


def run(args: argparse.Namespace) -> int:
    """Record until ``--seconds`` of audio, the end of ``--source``, or Ctrl-C/SIGTERM."""
    from ._live import LevelMeter, describe, limit_seconds, record_live

    limit_seconds(args.seconds)  # refuse a bad --seconds before opening anything
    source, what = build_source(args)
    mic = source
    seg = None
    if args.segment is not None:  # utterance WAVs and labels while recording
        from ._segment import LiveSegmenter

        stem = os.path.splitext(os.path.basename(args.out))[0]
        seg = LiveSegmenter(args.segment, stem, args)
        source = source.pipe(seg.tap)
    stop_hint = "" if args.seconds is not None else "; Ctrl-C to stop"
    meter = None if args.quiet else LevelMeter(sys.stderr)

    def announce() -> None:
        print(f"rxaudio record: {what} -> {args.out}{stop_hint}", file=sys.stderr, flush=True)

    result = record_live(
        source, args.out, seconds=args.seconds, subtype=args.subtype, meter=meter, on_start=announce
    )
    print(f"rxaudio record: {describe(result)}")
    lost = capture_warning(mic)
    if lost:
        print(f"rxaudio record: {lost}", file=sys.stderr)
    if seg is not None:
        print(f"rxaudio record: {seg.finish()} utterances -> {args.segment}")
    if result.error is not None:
        raise result.error  # after saying what was kept; the CLI prints it as one line
    return 0
