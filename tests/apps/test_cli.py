"""``--help`` on every command, and no command."""

from __future__ import annotations

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
