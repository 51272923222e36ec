"""Cost of the Rx plumbing, and from_file throughput and memory.

1. Per-frame overhead of a 5-operator chain (gain, channels, gain, reframe, level) on 32 ms
   frames, against the same numpy work done in a plain loop (the reference), same run.
2. from_file on a long file: real-time factor against soundfile.blocks reading the same file
   (the reference), and peak traced memory for a 10-minute vs a 60-minute file.

Run: python -m benchmarks.bench_core [--minutes 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile as sf
from reactivex import from_iterable

from rxaudio.dsp.level import rms_peak_db
from rxaudio.frames import AudioFrame
from rxaudio.operators import channels, gain, level, reframe
from rxaudio.sources import from_file

from ._util import best_of

RATE = 16000
FRAME = 512  # 32 ms


def plumbing(n_frames: int = 3000) -> dict[str, float]:
    rng = np.random.default_rng(0)
    frames = [
        AudioFrame((0.1 * rng.standard_normal((FRAME, 2))).astype(np.float32), RATE, i * FRAME)
        for i in range(n_frames)
    ]
    g1 = np.float32(10 ** (1 / 20))
    g2 = np.float32(10 ** (-3 / 20))

    def plain() -> None:
        for f in frames:
            x = f.samples * g1
            x = x.mean(axis=1, dtype=np.float32, keepdims=True)
            x = x * g2
            rms_peak_db(x)

    chain = [gain(1.0), channels(1), gain(-3.0), reframe(FRAME), level()]

    def rx() -> None:
        out: list[object] = []
        from_iterable(frames).pipe(*chain).subscribe(out.append)
        assert len(out) == n_frames

    def rx_empty() -> None:
        out: list[object] = []
        from_iterable(frames).subscribe(out.append)

    t_plain = best_of(plain)
    t_rx = best_of(rx)
    t_src = best_of(rx_empty)
    per_frame_overhead = (t_rx - t_plain - t_src) / n_frames
    return {
        "plain_us_per_frame": 1e6 * t_plain / n_frames,
        "rx_us_per_frame": 1e6 * t_rx / n_frames,
        "ratio_rx_over_plain": t_rx / t_plain,
        "overhead_us_per_frame_5_ops": 1e6 * per_frame_overhead,
        "overhead_us_per_op": 1e6 * per_frame_overhead / 5,
    }


def per_operator(n_frames: int = 3000) -> list[tuple[str, float, float, float]]:
    """Each operator alone vs the numpy it wraps, in a plain loop: (name, plain us, rx us, ratio).

    The Rx figure subtracts the bare source's own emission cost, so it is the operator's share.
    """
    rng = np.random.default_rng(0)
    frames = [
        AudioFrame((0.1 * rng.standard_normal((FRAME, 2))).astype(np.float32), RATE, i * FRAME)
        for i in range(n_frames)
    ]
    g = np.float32(10 ** (-3 / 20))
    cases: list[tuple[str, Any, Callable[[AudioFrame], object]]] = [
        ("gain", gain(-3.0), lambda f: f.samples * g),
        (
            "channels(1)",
            channels(1),
            lambda f: f.samples.mean(axis=1, dtype=np.float32, keepdims=True),
        ),
        ("level", level(), lambda f: rms_peak_db(f.samples)),
        ("reframe(512)", reframe(FRAME), lambda f: np.array(f.samples, copy=True)),
    ]

    def bare() -> None:
        from_iterable(frames).subscribe(lambda _: None)

    t_src = best_of(bare)
    rows = []
    for name, op, fn in cases:

        def plain(fn: Callable[[AudioFrame], object] = fn) -> None:
            for f in frames:
                fn(f)

        def rx(op: Any = op) -> None:
            from_iterable(frames).pipe(op).subscribe(lambda _: None)

        t_plain = best_of(plain)
        t_rx = best_of(rx) - t_src
        rows.append((name, 1e6 * t_plain / n_frames, 1e6 * t_rx / n_frames, t_rx / t_plain))
    return rows


def _write_long(path: str, minutes: float) -> None:
    rng = np.random.default_rng(1)
    block = (0.1 * rng.standard_normal(RATE * 60)).astype(np.float32)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for _ in range(int(minutes)):
            f.write(block)


def file_stream(path: str) -> tuple[float, float, int]:
    """(seconds for from_file, seconds for soundfile.blocks, peak traced bytes of from_file)."""
    n = [0]

    def ours() -> None:
        from_file(path, block_size=4096).subscribe(lambda f: n.__setitem__(0, n[0] + f.n))

    def ref() -> None:
        for b in sf.blocks(path, blocksize=4096, dtype="float32", always_2d=True):
            n[0] += b.shape[0]

    t_ours = best_of(ours, repeat=3)
    t_ref = best_of(ref, repeat=3)
    # memory in a fresh process, so nothing left from the timing runs can blur it
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_core", "--trace", path],
        check=True,
        capture_output=True,
        text=True,
    )
    return t_ours, t_ref, int(out.stdout.strip())


def trace(path: str) -> int:
    """Peak traced bytes while streaming the whole file through from_file."""
    src = from_file(path, block_size=4096)
    tracemalloc.start()
    src.subscribe(lambda f: None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--trace", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trace:
        print(trace(args.trace))
        return
    p = plumbing()
    print("## Rx plumbing, 32 ms frames (16 kHz, 512 samples, stereo in)")
    for k, v in p.items():
        print(f"  {k}: {v:.2f}")
    print("## Each operator alone: plain numpy loop vs operator (us per frame, ratio)")
    for name, t_plain, t_rx, ratio in per_operator():
        print(f"  {name}: plain {t_plain:.2f}, operator {t_rx:.2f}, ratio {ratio:.2f}")
    with tempfile.TemporaryDirectory() as d:
        rows = []
        for minutes in (10, args.minutes):
            path = os.path.join(d, f"long{minutes}.wav")
            _write_long(path, minutes)
            t_ours, t_ref, peak = file_stream(path)
            audio_s = minutes * 60
            rows.append((minutes, audio_s / t_ours, t_ours / t_ref, peak))
            os.remove(path)
    print("## from_file (block 4096, PCM_16 WAV)")
    for minutes, rtf_x, ratio, peak in rows:
        print(
            f"  {minutes} min: {rtf_x:.0f}x faster than real time, "
            f"{ratio:.2f}x the time of soundfile.blocks, peak traced memory {peak / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
