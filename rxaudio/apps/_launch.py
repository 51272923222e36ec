"""``rxaudio launch "..."`` / ``rxaudio launch -f FILE``: run a pipeline given as a launch string.

The string is parsed and every link negotiated before anything opens
(:func:`~rxaudio.pipeline.launch.parse_launch`); a mistake is one error with a caret under it
and exit 2. It then runs until the source ends, or Ctrl-C/SIGTERM, which stops the source and
finalizes every sink's file. On a terminal one status line on stderr is rewritten in place
(audio seconds, items per sink, what each ``queue`` dropped); otherwise only the final summary
is printed (on stdout), with each queue's drops and each ``null``'s counts. ``--graph FILE``
draws the pipeline as built before it runs (:meth:`~rxaudio.pipeline.launch.Pipeline.draw`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

from ._signals import Stopped, stop_signals

if TYPE_CHECKING:  # the subcommand module stays light: `rxaudio --help` imports it
    from ..pipeline.launch import Pipeline

HELP = (
    'run a pipeline given as a launch string ("file location=a.wav ! vad ! jsonl location=v.jsonl")'
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio launch``."""
    p.add_argument(
        "pipeline",
        nargs="*",
        metavar="ELEMENT",
        help="the launch string, best as one quoted argument (several are joined with spaces)",
    )
    p.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        default=None,
        help="read the launch string from FILE (newlines are spaces, # starts a comment)",
    )
    p.add_argument(
        "--graph",
        metavar="FILE",
        default=None,
        help="draw the pipeline as built (elements, properties, every link's caps, inserted "
        "conversions) to FILE before it runs: .svg/.png/.pdf through Graphviz's dot, .dot as text",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the negotiated caps of every link and the conversions inserted",
    )


class Status:
    """The live status line: audio seconds and items per branch end, rewritten in place."""

    def __init__(self, pipeline: Pipeline, stream: TextIO, *, tty: bool | None = None) -> None:
        self.pipeline, self.stream = pipeline, stream
        self.tty = stream.isatty() if tty is None else tty

    def line(self) -> str:
        """The status text."""
        st = self.pipeline.stats
        counts = "  ".join(f"{end}: {st.items.get(end, 0)}" for end in self.pipeline.ends)
        drops = "".join(
            f"  {label} dropped {q.stats.dropped}" for label, q in self.pipeline.queues.items()
        )
        return f"{st.audio_seconds:8.2f} s  {counts}{drops}"

    def tick(self) -> None:
        """Redraw (on a terminal only)."""
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the in-place line (on a terminal only)."""
        if self.tty:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


def _text(args: argparse.Namespace) -> str:
    from ..errors import ConfigError

    if args.file is not None:
        if args.pipeline:
            raise ConfigError("give the launch string or -f FILE, not both")
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError(f"-f {args.file}: cannot read it ({exc.strerror})") from exc
    if not args.pipeline:
        raise ConfigError('no pipeline: rxaudio launch "file location=a.wav ! level ! ..."')
    return " ".join(args.pipeline)


def summary(pipeline: Pipeline, stopped_by: str) -> list[str]:
    """The final lines: audio seconds, how it stopped, and each branch end's count and file
    (or, for a stream sink, the entries it wrote)."""
    from ..frames import CountReceipt, StreamReceipt

    st = pipeline.stats
    how = "" if stopped_by == "completed" else f" (stopped by {stopped_by})"
    lines = [f"rxaudio launch: {st.audio_seconds:.2f} s of audio{how}"]
    for label, q in pipeline.queues.items():  # drops are never silent
        qs = q.stats
        lines.append(
            f"  {label}: {qs.passed} items passed, {qs.dropped} dropped (leaky={q.leaky}), "
            f"at most {qs.max_level} buffered"
        )
    for b in pipeline.branches:
        if b.tee is not None:
            continue
        r = st.receipts.get(b.end)
        if isinstance(r, CountReceipt):  # null: counted and discarded
            lines.append(
                f"  {b.end}: {r.items} items, {r.samples} samples ({r.seconds:.2f} s), discarded"
            )
            continue
        if isinstance(r, StreamReceipt):  # a stream sink: entries, not a file
            lines.append(
                f"  {b.end}: {st.items.get(b.end, 0)} items, wrote {r.written} entries to "
                f"{r.stream} at {r.url}"
                + (f" ({r.not_written} not written)" if r.not_written else "")
            )
            continue
        # a sink stopped by a signal or by another branch's error finalizes without a receipt
        path = r.path if r is not None else b.location
        # a file, or a device or FIFO written in place (it existed before: only a receipt says)
        special = path is not None and os.path.exists(path) and not os.path.isdir(path)
        done = special and r is not None and r.reason != "empty"
        wrote = f", wrote {path}" if path is not None and (os.path.isfile(path) or done) else ""
        lines.append(f"  {b.end}: {st.items.get(b.end, 0)} items{wrote}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Parse, negotiate and run the pipeline; 0 when it ends or is stopped cleanly."""
    from ..pipeline.launch import parse_launch

    # SIGINT/SIGTERM only record a stop request from here on (before anything is built, so
    # no signal falls between the chain's start and the code that stops it); the wait loop
    # raises it at its next poll, inside ``Pipeline.run``, which disposes the chain (every
    # file final) before it goes on. A second signal while the files are finalized is a no-op.
    with stop_signals() as stop:
        pipeline = parse_launch(_text(args))
        if args.verbose:
            print(pipeline.caps_report(), file=sys.stderr, flush=True)
        if args.graph is not None:
            pipeline.draw(args.graph)
            print(f"rxaudio launch: drew the pipeline to {args.graph}", file=sys.stderr, flush=True)
        status = Status(pipeline, sys.stderr)
        stopped_by, error = "completed", None

        def poll() -> None:
            status.tick()
            stop.check()

        try:
            stop.check()  # stopped while the pipeline was built: nothing is started
            pipeline.run(on_poll=poll)
        except Stopped as s:
            stopped_by = s.signal
        except Exception as exc:  # the files are final; say what was kept, then report it
            stopped_by, error = "an error", exc
        finally:
            status.close()
        print("\n".join(summary(pipeline, stopped_by)), flush=True)
    if error is not None:
        raise error
    return 0
