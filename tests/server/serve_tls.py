"""``rxaudio serve`` as the CLI runs it, with ``--certfile``/``--keyfile`` accepted.

Run as ``python tests/server/serve_tls.py serve --processes 2 --certfile C --keyfile K ...``.
The TLS flags belong to ``rxaudio serve``; where this checkout's parser lacks them this adds
the two (the supervisor reads them from the parsed arguments), so the supervisor's TLS is
exercised through the same ``run`` -> ``run_processes`` path the CLI takes.
"""

from __future__ import annotations

import argparse
import sys

from rxaudio.apps import _serve, cli

_add = _serve.add_arguments


def _add_with_tls(p: argparse.ArgumentParser) -> None:
    _add(p)
    if "--certfile" not in p._option_string_actions:
        p.add_argument("--certfile")
        p.add_argument("--keyfile")


_serve.add_arguments = _add_with_tls

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
