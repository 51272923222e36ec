"""The ``rxaudio`` command line.

Each subcommand lives in its own module ``rxaudio.apps._<name>`` with ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules keep heavy imports (torch,
onnxruntime, librosa, aiohttp) inside ``run`` so ``rxaudio --help`` stays fast.
User errors (:class:`~rxaudio.errors.RxAudioError`) print one line and exit 2, no traceback.
SIGINT stops a command even when the parent left it ignored (a script's background job); the
blocking commands turn SIGINT/SIGTERM into a stop request (:mod:`rxaudio.apps._signals`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

# name -> module; add a line here for a new subcommand
COMMANDS: dict[str, str] = {
    "run": "rxaudio.apps._run",
    "devices": "rxaudio.apps._devices",
    "record": "rxaudio.apps._record",
    "segment": "rxaudio.apps._segment",
    "eval": "rxaudio.apps._eval",
    "features": "rxaudio.apps._features",
    "plot": "rxaudio.apps._plot",
    "serve": "rxaudio.apps._serve",
    "inspect": "rxaudio.apps._inspect",
    "launch": "rxaudio.apps._launch",
    "worker": "rxaudio.apps._worker",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (plus where to look), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand's options, or only ``command``'s.

    Each subcommand module is imported for its one-line ``HELP``; its ``add_arguments`` (which
    may import the elements whose options become flags) runs for ``command`` only when given,
    so ``rxaudio --help`` and ``rxaudio segment ...`` do not build the other commands' flags.
    """
    from .. import __version__

    parser = _Parser(
        prog="rxaudio",
        description="Real-time audio dataflow: capture, VAD, features, files and a live server.",
    )
    parser.add_argument("--version", action="version", version=f"rxaudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = _module(name)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        if command is None or name == command:
            mod.add_arguments(p)
    return parser


def _command(argv: Sequence[str]) -> str:
    """The subcommand ``argv`` names ("" when none: the top level's own options and help).

    The top level has only options without values (``--help``, ``--version``), so the first
    word that is not an option is the subcommand, as argparse reads it."""
    for word in argv:
        if word == "--":
            break
        if not word.startswith("-"):
            return word if word in COMMANDS else ""
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rxaudio`` console script."""
    from ..errors import RxAudioError
    from ._signals import honour_sigint

    honour_sigint()  # started in the background by a script: SIGINT still stops us
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        code: int = _module(args.command).run(args)
    except RxAudioError as exc:
        print(f"rxaudio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rxaudio {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rxaudio inspect | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
