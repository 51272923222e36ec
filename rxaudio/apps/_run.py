"""``rxaudio run`` (what ``make run`` starts): a live chain with a level meter, into a WAV,
and the live server's page (``rxaudio serve``) on the same source.

On the default microphone when there is one (until Ctrl-C); otherwise on the bundled speech
sample played in real time (the recording ends after one pass, the page is served until Ctrl-C
or ``--seconds``). It says which in one line, and prints the page's URL.
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

HELP = "live chain: microphone (or the bundled sample) -> level meter -> WAV under out/; live page"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio run``."""
    p.add_argument("--out", default="out", help="directory for the WAV file (default: out)")
    p.add_argument(
        "--sample",
        action="store_true",
        help="use the bundled speech sample even when a microphone exists",
    )
    p.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    p.add_argument(
        "--port", type=int, default=8765, help="port of the live page (a free one if taken)"
    )
    from ._flags import add_flags

    add_flags(p, "wav", ("subtype",))


def has_microphone() -> bool:
    """Whether PortAudio has a default input device that can capture as ``mic`` defaults to."""
    from ..core.props import info_of
    from ..errors import DeviceError
    from ..sources import from_microphone
    from ..sources._microphone import check_device

    mic = info_of(from_microphone)
    try:
        check_device(None, mic.prop("sample_rate").default, mic.prop("channels").default)
    except DeviceError:
        return False
    return True


def pick_source(use_sample: bool) -> tuple[Observable[AudioFrame], str]:
    """The live source (the ``mic`` element, else ``file``, its blocks the mic's) and a line
    saying which it is."""
    from ..data import speech_sample
    from ..pipeline import registry

    if not use_sample and has_microphone():
        return registry.make("mic"), "live on the default microphone (Ctrl-C to stop)"
    why = "as asked" if use_sample else "no input device found"
    block = registry.get("mic").prop("block_size").default
    src = registry.make("file", path=speech_sample(), block_size=block, realtime=True)
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
    # the live server (issue 6) serves the page beside the recording: the source's frames are
    # its shared source; its files go to OUT/serve
    from reactivex import operators as ops

    from ..server import ServerConfig
    from ..server.background import BackgroundServer

    server = BackgroundServer(
        ServerConfig(out_dir=os.path.join(args.out, "serve")), port=args.port, any_port=True
    )
    url = server.start()
    source = source.pipe(ops.do_action(server.feed))

    def announce() -> None:
        print(f"rxaudio run: {line}", file=sys.stderr, flush=True)
        print(f"rxaudio run: page at {url}", flush=True)

    t0 = time.monotonic()
    try:
        result = record_live(
            source,
            path,
            seconds=args.seconds,
            subtype=args.subtype,
            meter=LevelMeter(sys.stderr),
            on_start=announce,
        )
        print(f"rxaudio run: {describe(result)}", flush=True)
        by_limit = args.seconds is not None and result.seconds >= args.seconds - 0.1
        if result.stopped_by == "completed" and result.error is None and not by_limit:
            # the sample's one pass ended: the page stays up until Ctrl-C (or --seconds)
            print(
                "rxaudio run: the sample ended; the page is still served (Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            left = None if args.seconds is None else args.seconds - (time.monotonic() - t0)
            server.wait(left)
    finally:
        server.stop()
    if result.error is not None:
        raise result.error  # after saying what was kept; the CLI prints it as one line
    return 0
