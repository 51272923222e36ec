"""Where a loaded server's CPU goes: ``rxaudio serve`` under cProfile with N real-time streams.

Run: ``python -m benchmarks.profile_server [--streams 60] [--seconds 15] [--frame 1024]``.

The server runs pinned to CPU 0 under ``cProfile`` (this process, the clients, on CPU 1),
every client streaming the bundled speech at real-time pace through the full chain. After the
load the server is stopped with SIGTERM (a clean exit writes the profile) and the report lists
the functions with the most own time, and the total by stage (files grouped by package
folder), as shares of the profiled time. cProfile slows pure-Python code more than native code,
so the shares overstate Python's part; they rank the stages, they are not absolute costs. The
loop's wait for the network (``epoll``) is idle time and left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import re
import shutil
import signal
import tempfile
import time
from collections import defaultdict

import numpy as np
import soundfile as sf

from benchmarks._util import start_server
from benchmarks.loadgen import run_load
from rxaudio.data import speech_sample

STAGES = (  # (label, pattern on the file path), first match wins
    ("onnxruntime (Silero)", r"onnxruntime|vad/silero"),
    ("aiohttp (WebSocket, HTTP)", r"aiohttp|multidict|yarl"),
    ("asyncio loop and sockets", r"asyncio|selectors|epoll|_socket"),
    ("reactivex (Rx hops)", r"reactivex"),
    ("json", r"json"),
    ("rxaudio server", r"rxaudio/server"),
    ("rxaudio operators", r"rxaudio/operators|rxaudio/core"),
    ("rxaudio dsp/vad", r"rxaudio/dsp|rxaudio/vad"),
    ("rxaudio sinks/io", r"rxaudio/sinks|rxaudio/io|soundfile"),
    ("rxaudio frames", r"rxaudio/frames"),
    ("numpy", r"numpy"),
    ("rxaudio C kernels", r"_melkernel"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--frame", type=int, default=1024, help="samples per client frame (16 kHz)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--keep", default=None, help="also save the profile to this file")
    ap.add_argument("--serve-args", default="", help="extra arguments for rxaudio serve")
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="rxaudio-prof-")
    prof = os.path.join(out, "server.prof")
    serve = ["--out", os.path.join(out, "files"), "--queue", "256", *args.serve_args.split()]
    proc, url = start_server(serve, runner=["-m", "cProfile", "-o", prof])
    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.resize(x, int(args.seconds * 16000))
    time.sleep(0.5)
    res = asyncio.run(
        run_load(
            url,
            audio,
            16000,
            clients=args.streams,
            frame=args.frame,
        )
    )
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    s = res.summary()
    print(
        f"{args.streams} streams, {args.frame}-sample frames: p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms (under the profiler)"
    )
    st = pstats.Stats(prof)
    total = 0.0
    by_stage: dict[str, float] = defaultdict(float)
    rows = []
    for (file, line, fn), (_, _, tt, _, _) in st.stats.items():  # type: ignore[attr-defined]
        if "select.epoll" in fn:  # waiting for the network: idle, not work
            continue
        total += tt
        where = file if file != "~" else fn  # built-ins: by their name
        stage = next((lab for lab, pat in STAGES if re.search(pat, where)), "other")
        by_stage[stage] += tt
        rows.append((tt, f"{os.path.basename(file)}:{line}({fn})"))
    print(f"\nown time by stage (of {total:.1f} s profiled):")
    for lab, tt in sorted(by_stage.items(), key=lambda kv: -kv[1]):
        print(f"  {100 * tt / total:5.1f} %  {lab}")
    print(f"\ntop {args.top} functions by own time:")
    for tt, name in sorted(rows, reverse=True)[: args.top]:
        print(f"  {100 * tt / total:5.1f} %  {name}")
    if args.keep:
        shutil.copy(prof, args.keep)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
