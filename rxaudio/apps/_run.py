"""``rxaudio run`` (what ``make run`` starts): a live chain with a level meter, into a WAV.

On the default microphone when there is one (until Ctrl-C); otherwise on the bundled speech
sample played in real time, ending by itself after one pass. It says which in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the subcommand module stays light: `rxaudio --help` imports it
    from reactivex import Observable

    from ..frames import AudioFrame

HELP = "live chain: microphone (or the bundled sample) -> level meter -> WAV under out/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio run``."""
    p.add_argument("--out", default="out", help="directory for the WAV file (default: out)")
    p.add_argument(
        "--sample",
        action="store_true",
        help="use the bundled speech sample even when a microphone exists",
    )
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds")


def has_microphone() -> bool:
    """Whether PortAudio has a default input device that can capture 16 kHz mono."""
    from ..errors import DeviceError
    from ..sources._microphone import check_device

    try:
        check_device(None, 16000, 1)
    except DeviceError:
        return False
    return True


def pick_source(use_sample: bool) -> tuple[Observable[AudioFrame], str]:
    """The live source and one line saying which it is."""
    from ..data import speech_sample
    from ..sources import from_file, from_microphone

    if not use_sample and has_microphone():
        return from_microphone(None), "live on the default microphone (Ctrl-C to stop)"
    why = "as asked" if use_sample else "no input device found"
    src = from_file(speech_sample(), block_size=512, realtime=True)
    line = f"{why}: playing the bundled speech sample ({src.info.duration:.1f} s) in real time"
    return src, line


def output_path(folder: str) -> str:
    """``folder/run-YYYYmmdd-HHMMSS.wav``, with a suffix if that name is taken."""
    stem = os.path.join(folder, time.strftime("run-%Y%m%d-%H%M%S"))
    path, k = f"{stem}.wav", 1
    while os.path.exists(path):
        path, k = f"{stem}-{k}.wav", k + 1
    return path


def run(args: argparse.Namespace) -> int:
    """Run the live chain; return 0 when it ends or is stopped cleanly."""
    from ..errors import ConfigError
    from ._live import LevelMeter, describe, limit_seconds, record_live

    limit_seconds(args.seconds)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot create the folder ({exc.strerror})") from exc
    path = output_path(args.out)
    source, line = pick_source(args.sample)

    def announce() -> None:
        print(f"rxaudio run: {line}", file=sys.stderr, flush=True)

    result = record_live(
        source, path, seconds=args.seconds, meter=LevelMeter(sys.stderr), on_start=announce
    )
    print(f"rxaudio run: {describe(result)}")
    if result.error is not None:
        raise result.error  # after saying what was kept; the CLI prints it as one line
    return 0
