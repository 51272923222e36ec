"""``rxaudio record OUT.wav``: capture a device (or play a file in real time) into a WAV file.

A live level meter goes to stderr (one updating line on a terminal, a plain line a second
otherwise). Ctrl-C or SIGTERM stops the recording cleanly: the WAV is finalized and valid.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the subcommand module stays light: `rxaudio --help` imports it
    from reactivex import Observable

    from ..frames import AudioFrame

HELP = "record a device (or a file played in real time) into a WAV file, with a level meter"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio record``."""
    p.add_argument("out", metavar="OUT.wav", help="WAV file to write (its directory must exist)")
    p.add_argument(
        "--seconds", type=float, default=None, help="stop after N seconds (default: until Ctrl-C)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--device",
        default=None,
        help="input device index or name, as `rxaudio devices` lists (default: system default)",
    )
    p.add_argument(
        "--rate",
        type=bounded_int("--rate", 1000, 10_000_000),
        default=None,
        help="sample rate in Hz (default 16000)",
    )
    p.add_argument(
        "--channels",
        type=bounded_int("--channels", 1, 64),
        default=None,
        help="channel count, 1 to 64 (default 1)",
    )
    p.add_argument(
        "--block-size",
        type=bounded_int("--block-size", 16, 1 << 20),
        default=512,
        help="samples per block (default 512)",
    )
    where.add_argument(
        "--source",
        metavar="FILE",
        default=None,
        help="play this audio file in real time instead of capturing a device",
    )
    p.add_argument("--quiet", action="store_true", help="no level meter")
    p.add_argument("--segment", metavar="DIR", default=None, help="also write utterances live")
    from ._segment import add_vad_arguments

    add_vad_arguments(p)


def bounded_int(name: str, lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an int in [lo, hi], refused with one line naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in [{lo}, {hi}], got {value}")
        return value

    return parse


def capture_warning(source: object) -> str | None:
    """A line about audio lost at capture (dropped blocks, PortAudio overruns), if any."""
    stats = getattr(source, "stats", None)
    if stats is None or not (stats.dropped_blocks or stats.overruns):
        return None
    return (
        f"warning: {stats.dropped_blocks} block(s) dropped (processing too slow) and "
        f"{stats.overruns} PortAudio overrun(s); the file holds silence where audio was lost"
    )


def parse_device(device: str | None) -> int | str | None:
    """A device given on the command line: an index when it is all digits, else a name."""
    if device is None or device == "":
        return None
    return int(device) if device.isdigit() else device


def build_source(args: argparse.Namespace) -> tuple[Observable[AudioFrame], str]:
    """The source the options ask for, and a phrase saying what it is."""
    if args.source is not None:
        from ..operators import conform
        from ..pipeline.caps import Caps
        from ..sources import from_file

        src = from_file(args.source, block_size=args.block_size, realtime=True)
        info = src.info
        what = f"file {info.path} ({info.sample_rate} Hz, {info.channels} ch) in real time"
        if args.rate is not None or args.channels is not None:
            return src.pipe(conform(Caps(args.rate, args.channels))), what
        return src, what

    from ..sources import from_microphone

    rate = 16000 if args.rate is None else args.rate
    channels = 1 if args.channels is None else args.channels
    device = parse_device(args.device)
    mic = from_microphone(device, sample_rate=rate, channels=channels, block_size=args.block_size)
    name = "the default input device" if device is None else f"device {device!r}"
    return mic, f"{name} at {rate} Hz, {channels} ch"


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

    result = record_live(source, args.out, seconds=args.seconds, meter=meter, on_start=announce)
    print(f"rxaudio record: {describe(result)}")
    lost = capture_warning(mic)
    if lost:
        print(f"rxaudio record: {lost}", file=sys.stderr)
    if seg is not None:
        print(f"rxaudio record: {seg.finish()} utterances -> {args.segment}")
    if result.error is not None:
        raise result.error  # after saying what was kept; the CLI prints it as one line
    return 0
