"""``--help`` on every command, and no command."""

from __future__ import annotations

import argparse
import re

import pytest
import rxaudio_tests_cli as h

from rxaudio.apps.cli import COMMANDS, main

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_on_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rxaudio {command}")


def test_top_level_help_in_a_subprocess_lists_the_commands() -> None:
    res = h.rxaudio("--help")
    assert res.returncode == 0, res.stderr
    for command in COMMANDS:
        assert f"    {command}" in res.stdout
    assert res.stderr == ""


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: rxaudio" in capsys.readouterr().out


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "rxaudio.apps.cli", "inspect", "--markdown"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # like `| head -0`: the reader is gone before the first write
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from rxaudio.apps.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_two_flags_of_a_command_share_their_help(command: str) -> None:
    """A help text copied onto a second flag (serve --post-roll-ms read as the pre-roll) is a
    doc bug wherever it comes from: the app, the server's tunables or an element's docstring."""
    seen: dict[str, str] = {}
    for action in _subcommands()[command]._actions:
        if not action.help or action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        # what the flag is, without what differs between copies: its default and allowed values
        # (generated help ends "(a finite number in [0, 2000] ms; default 300)")
        text = re.sub(r"\s*\([^()]*\)\s*$", "", action.help.replace("%%", "%")).strip().lower()
        flag = action.option_strings[-1]
        assert text not in seen, f"{command} {flag} repeats the help of {seen[text]}: {text!r}"
        seen[text] = flag
