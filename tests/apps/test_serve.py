"""``rxaudio serve`` on the command line: bad options fail fast with one clear line."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from rxaudio.apps.cli import main


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--source", "no/such/file.wav"], "no such file"),
        (["--backend", "nope"], "backend must be one of"),
        (["--grace", "-1"], "--grace must be a finite number >= 0 s, got -1"),
        (["--queue", "2"], "--queue must be an int >= 8, got 2"),
        (["--threshold", "0.3", "--min-silence-ms", "-5"], "min_silence_ms"),
        (["--max-connections", "0"], "--max-connections must be an int >= 1, got 0"),
        (["--control-rate", "nan"], "--control-rate must be a finite number >= 0 /s, got nan"),
        (["--max-session-bytes", "10"], "--max-session-bytes must be an int >= 4096 bytes, got 10"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout must be a finite number >= 0.1 s, got 0"),
    ],
)
def test_bad_options_exit_2_with_the_reason(
    args: list[str], fragment: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--out", str(tmp_path), "--port", "0", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("rxaudio serve: error:") and fragment in err, err


def test_serve_prints_the_url_and_stops_by_itself(tmp_path: Any) -> None:
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--port", "0"]
    cmd += ["--out", str(tmp_path), "--source", "sample", "--seconds", "1.5", "--token", "t0k"]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("rxaudio serve: page at http://127.0.0.1:")
    assert out.stdout.strip().endswith("/?token=t0k")
    assert "the bundled sample, looped" in out.stderr and "stopped" in out.stderr
    (shared,) = list(tmp_path.iterdir())  # the shared source's session, flushed at the end
    assert shared.name.startswith("shared-")
    assert (shared / "events.jsonl").read_text().splitlines()[-1].startswith('{"type":"closed"')


def test_the_file_descriptor_limit_is_raised_for_the_connection_limit() -> None:
    code = (
        "import resource\n"
        "from rxaudio.apps._serve import raise_fd_limit\n"
        "from rxaudio.server import ServerConfig\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "print(raise_fd_limit(ServerConfig(max_connections=100)))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
        "print(raise_fd_limit(ServerConfig(max_connections=5000)))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    # 100 connections: 2 x 100 + 256 in grace + 256 spare = 712, within the hard limit
    assert out[:2] == ["None", "712"]
    # 5000 need 10512: raised as far as the hard limit allows, and a warning says what to do
    assert out[2].startswith("the file-descriptor limit (4096)") and "ulimit -n" in out[2]
    assert out[3] == "4096"
