"""Helpers for the CLI tests (imported as ``rxaudio_tests_cli``; see conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def rxaudio(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess (as the console script would) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def rxaudio_on_tty(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (as a person sees it); return
    ``(returncode, stdout, stderr)``, stderr with the terminal's ``\r\n`` turned into ``\n``."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rxaudio.apps.cli", *args],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        stdout, _ = proc.communicate(timeout=timeout)
        os.close(follower)
        follower = -1
        err = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            err += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    return proc.returncode, stdout, err.decode().replace("\r\n", "\n")


def chirp(seconds: float, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    """A 200 Hz -> 3 kHz linear chirp, float32: every lag looks different."""
    t = np.arange(round(seconds * rate)) / rate
    f0, f1 = 200.0, 3000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, rate: int = 16000) -> Path:
    """Write float samples as 16-bit PCM (what record writes back)."""
    import soundfile as sf

    sf.write(str(path), x, rate, subtype="PCM_16")
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """int16 samples (exact comparison) and the rate of a WAV file."""
    import soundfile as sf

    x, rate = sf.read(str(path), dtype="int16", always_2d=True)
    return x, int(rate)


def spawn_rxaudio(*args: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """Start the CLI with stdout/stderr piped. ``sigint_ignored``: start it the way a shell
    script's background job (``rxaudio ... &``) is started, with SIGINT ignored by the parent
    (a tiny Python sets SIG_IGN, then ``exec``\\ s the CLI, which inherits it; same pid)."""
    cli = [sys.executable, "-m", "rxaudio.apps.cli", *args]
    if sigint_ignored:
        exec_it = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.executable, sys.argv[1:])"
        )
        cli = [sys.executable, "-c", exec_it, *cli]
    return subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class BusyLoops:
    """``n`` processes that spin on a core each while the ``with`` block runs (a loaded
    machine); killed on the way out, whatever happens. Each also ends itself after
    ``max_s`` seconds, should this process die without its ``finally``."""

    def __init__(self, n: int = 2, max_s: float = 300.0) -> None:
        self.n, self.max_s = n, max_s
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> BusyLoops:
        spin = (
            f"import time\nend = time.monotonic() + {self.max_s}\n"
            "while time.monotonic() < end: pass"
        )
        self.procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
