"""``rxaudio serve --processes 2`` under two probes of its supervisor (issue 22).

Run: ``python -m benchmarks.bench_supervisor [--silent 400 1000] [--queued 200]``. Not part of
``make test``.

* **Idle half-open connections.** For each count in ``--silent``: that many TCP connections
  are opened to the main port and send nothing; the supervisor's CPU time (``/proc/PID/stat``,
  user + system) is read over ``--window`` seconds from the first connection on, and printed
  as a share of one core.
* **A stopped worker.** One worker is stopped (SIGSTOP, standing in for a long pause);
  ``--queued`` connections each send an HTTP request and wait; then ``--sessions`` new
  WebSocket sessions are started at once, each given ``--timeout`` seconds. Printed: how many
  started, and the slowest time to ``started``. The worker is continued (SIGCONT) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmd:
            out.append(int(d.name))
    return sorted(out)


def _open(port: int, n: int, request: bytes = b"") -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if request:
            s.sendall(request)
        socks.append(s)
    return socks


async def _session(base: str, timeout: float) -> float | None:
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(timeout):
                ws = await http.ws_connect(base + "/ws")
                await ws.receive_json()  # hello
                await ws.send_json({"type": "start", "version": 2, "sample_rate": 16000})
                while (await ws.receive_json())["type"] != "started":
                    pass
                await ws.close()
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--silent", type=int, nargs="+", default=[400, 1000])
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--queued", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="bench-supervisor-")
    cmd = [sys.executable, "-m", "rxaudio.apps.cli", "serve", "--processes", "2", "--port", "0"]
    cmd += ["--out", out, "--backend", "energy", "--max-connections", "4000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stopped = None
    try:
        assert proc.stdout is not None
        m = re.search(r"https?://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        assert m, "the server did not say where it listens"
        port = int(m.group(1))
        base = f"http://127.0.0.1:{port}"
        while len(_workers(proc.pid)) < 2:
            time.sleep(0.1)
        asyncio.run(_session(base, 30.0))  # both workers up (the first session loads)
        asyncio.run(_session(base, 30.0))
        for n in a.silent:
            c0, t0 = _cpu_s(proc.pid), time.monotonic()
            socks = _open(port, n)
            time.sleep(max(0.0, a.window - (time.monotonic() - t0)))
            used, wall = _cpu_s(proc.pid) - c0, time.monotonic() - t0
            for s in socks:
                s.close()
            print(
                f"silent {n:5d}: supervisor CPU {used:.2f} s in {wall:.1f} s "
                f"= {100 * used / wall:.0f} % of a core",
                flush=True,
            )
            time.sleep(1.0)
        stopped = _workers(proc.pid)[1]
        os.kill(stopped, signal.SIGSTOP)
        req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        queued = _open(port, a.queued, req)

        async def many() -> list[float | None]:
            return list(
                await asyncio.gather(*(_session(base, a.timeout) for _ in range(a.sessions)))
            )

        took = asyncio.run(many())
        ok = [t for t in took if t is not None]
        slowest = f"{max(ok):.2f} s" if ok else "-"
        print(
            f"one worker stopped, {a.queued} requests queued: {len(ok)}/{a.sessions} new "
            f"sessions started within {a.timeout:.0f} s (slowest {slowest})",
            flush=True,
        )
        for s in queued:
            s.close()
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
