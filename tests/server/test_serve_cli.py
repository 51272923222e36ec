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
        (["--grace", "-1"], "grace must be >= 0"),
        (["--queue", "2"], "at least 8"),
        (["--threshold", "0.3", "--min-silence-ms", "-5"], "min_silence_ms"),
        (["--max-connections", "0"], "--max-connections must be >= 1"),
        (["--control-rate", "nan"], "--control-rate must be >= 0"),
        (["--max-session-bytes", "10"], "--max-session-bytes must be >= 4096"),
        (["--shutdown-timeout", "0"], "--shutdown-timeout must be >= 0.1"),
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
