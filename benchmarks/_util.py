"""Small timing helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Minimum wall time of ``repeat`` runs (the least noisy estimate on a busy machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def median_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median wall time of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_server(
    serve_args: list[str],
    *,
    runner: list[str] | None = None,
    server_cpu: int = 0,
    client_cpu: int = 1,
    module: str = "rxaudio.apps.cli serve",
    pin: bool = True,
    tree: str | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """``rxaudio serve --port 0 SERVE_ARGS`` pinned to CPU ``server_cpu`` (this process moves
    to ``client_cpu``) when ``taskset`` exists and ``pin``; return the process and its ``ws://``
    URL, once it listens.

    ``runner`` goes between the interpreter and ``-m rxaudio.apps.cli`` (e.g. cProfile's
    ``-m cProfile -o FILE``); ``module`` is what ``-m`` runs (``"benchmarks.floor_server"``: the
    reference server of ``bench_server --floor``); ``tree`` is a source tree whose ``rxaudio``
    the server imports (first on its ``PYTHONPATH``; default: as this process)."""
    cmd = [sys.executable, *(runner or []), "-m", *module.split(), "--port", "0"]
    cmd += serve_args
    if pin and shutil.which("taskset"):
        n = os.cpu_count() or 1
        cmd = ["taskset", "-c", str(server_cpu % n), *cmd]
        os.sched_setaffinity(0, {client_cpu % n})
    env, cwd = None, None
    if tree is not None:  # ``-m`` puts the working directory first on sys.path: run it there
        cwd = os.path.abspath(tree)
        env = dict(os.environ)
        env["PYTHONPATH"] = cwd
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd
    )
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "server did not start"
    return proc, f"http://127.0.0.1:{m.group(1)}/ws"
