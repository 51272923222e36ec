"""Streaming features against librosa, per second of 16 kHz audio, all in one run.

1. Our streaming ``mfcc`` (13 coefficients, 40 mels, n_fft 512, hop 160) fed in 1024-sample
   chunks through Rx, against (a) ``librosa.feature.mfcc`` on the whole signal (warm, same
   options, ``center=False``) and (b) the naive streaming approach: on every incoming chunk,
   call librosa's mfcc, delta, delta-delta and the six spectral functions on the last
   ``n_fft - hop + chunk`` samples plus enough rows of context for the 9-row delta window.
   Also the kernel alone (no Rx; the compiled one the operators use, and the numpy fallback),
   ``mfcc(deltas=2)``, ``spectral()`` and other chunk sizes.
2. First-call cost in a fresh process: import + first chunk of our mfcc, against import +
   first call of librosa's mfcc.
3. Peak traced memory of ``mfcc(deltas=2)`` streaming 10 vs 60 minutes (chunks generated on
   the fly, rows dropped as they come).
4. Peak RSS of the ``rxaudio features`` app (its own process, read with ``os.wait4``) on 1-,
   10- and 60-minute WAVs (the speech sample tiled), per output format.

Run: python -m benchmarks.bench_features [--seconds 68] [--minutes 60] [--rss-minutes 1,60]
     [--rss-minutes 1,10,60] [--only speed,first,memory,rss]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import soundfile as sf
from reactivex import Observable, from_iterable

from rxaudio.data import speech_sample
from rxaudio.dsp.features import MelSpec, MfccKernel
from rxaudio.frames import AudioFrame
from rxaudio.operators import mfcc, spectral

from ._util import best_of

RATE = 16000
N_FFT, HOP, N_MFCC, N_MELS = 512, 160, 13, 40


def _signal(seconds: float) -> np.ndarray:
    x, sr = sf.read(speech_sample(), dtype="float32")
    assert sr == RATE
    reps = int(np.ceil(seconds * RATE / len(x)))
    return np.tile(x, reps)[: int(seconds * RATE)]


def _frames(x: np.ndarray, chunk: int) -> list[AudioFrame]:
    return [AudioFrame(x[i : i + chunk].reshape(-1, 1), RATE, i) for i in range(0, len(x), chunk)]


def _rx(frames: list[AudioFrame], op: Callable[[Observable[AudioFrame]], Observable[Any]]) -> None:
    n, errors = [0], []
    op(from_iterable(frames)).subscribe(lambda f: n.__setitem__(0, n[0] + 1), errors.append)
    if errors or not n[0]:  # an error must not pass for a fast run
        raise RuntimeError(f"stream failed after {n[0]} outputs: {errors}")


def speed(seconds: float, repeat: int = 15) -> dict[str, float]:
    """Best of ``repeat`` interleaved rounds, BLAS held to one thread.

    One thread: a stream is processed on one core, so this is the work per second of audio.
    With the default thread pool, librosa's whole-file product wakes OpenBLAS threads that
    then spin for a while and slow down whichever case runs next (on 2 cores that measured
    our 1024-sample case up to 1.5x slower than alone).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _speed(seconds, repeat)


def _speed(seconds: float, repeat: int) -> dict[str, float]:
    import librosa

    x = _signal(seconds)
    lib_kw = {
        "sr": RATE,
        "n_mfcc": N_MFCC,
        "n_fft": N_FFT,
        "hop_length": HOP,
        "n_mels": N_MELS,
        "center": False,
    }
    librosa.feature.mfcc(y=x[:RATE], **lib_kw)  # warm-up outside the timing
    frames = {c: _frames(x, c) for c in (256, 1024, 4096, 16000)}

    def kernel(compiled: bool) -> None:
        mel = MelSpec(n_mels=N_MELS)
        k = MfccKernel(RATE, N_FFT, HOP, n_mfcc=N_MFCC, mel=mel, compiled=compiled)
        for f in frames[1024]:
            k.push(f.mono)

    cases: dict[str, Callable[[], object]] = {
        "librosa whole file": lambda: librosa.feature.mfcc(y=x, **lib_kw),
        "stream mfcc 1024": lambda: _rx(frames[1024], mfcc()),
        "stream mfcc 256": lambda: _rx(frames[256], mfcc()),
        "stream mfcc 4096": lambda: _rx(frames[4096], mfcc()),
        "stream mfcc 16000": lambda: _rx(frames[16000], mfcc()),
        "kernel mfcc 1024": lambda: kernel(True),
        "numpy kernel mfcc 1024": lambda: kernel(False),
        "stream mfcc+deltas 1024": lambda: _rx(frames[1024], mfcc(deltas=2)),
        "stream spectral 1024": lambda: _rx(frames[1024], spectral()),
        # what the naive loop (b) computes: mfcc, both deltas and the six descriptors
        "stream (b)'s work 1024": lambda: (
            _rx(frames[1024], mfcc(deltas=2)),
            _rx(frames[1024], spectral()),
        ),
    }
    # (b) naive: librosa on every chunk, over the samples needed for the chunk's rows + deltas
    ctx = N_FFT - HOP + 8 * HOP  # 4 rows each side for the 9-row delta window

    def naive(limit: int) -> None:
        f = librosa.feature
        kw = {"n_fft": N_FFT, "hop_length": HOP, "center": False}
        for i in range(0, min(len(x), limit), 1024):
            y = x[max(0, i - ctx) : i + 1024]
            if len(y) < N_FFT + 8 * HOP:
                continue
            m = f.mfcc(y=y, sr=RATE, n_mfcc=N_MFCC, n_mels=N_MELS, **kw)
            f.delta(m)
            f.delta(m, order=2)
            f.spectral_centroid(y=y, sr=RATE, **kw)
            f.spectral_bandwidth(y=y, sr=RATE, **kw)
            f.spectral_rolloff(y=y, sr=RATE, **kw)
            f.spectral_flatness(y=y, **kw)
            f.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP, center=False)
            f.rms(y=y, frame_length=N_FFT, hop_length=HOP, center=False)

    # in the same interleaved rounds as the rest (it moves with the machine's load more than
    # anything else: measured apart it read 22 ms/s on a quiet machine, 37 under load), over
    # the first few seconds, scaled to the whole signal
    naive_seconds = min(seconds, 5.0)
    cases["naive per chunk"] = lambda: naive(int(naive_seconds * RATE))
    scale = {"naive per chunk": seconds / naive_seconds}

    # interleaved rounds, best per case: load from other processes hits every case alike
    res: dict[str, float] = dict.fromkeys(cases, float("inf"))
    for _ in range(repeat):
        for name, fn in cases.items():
            res[name] = min(res[name], best_of(fn, repeat=1))
    for name, factor in scale.items():
        res[name] *= factor
    res["_seconds"] = seconds
    return res


FIRST_OURS = """
import time, numpy as np
t = time.perf_counter()
from rxaudio.frames import AudioFrame
from rxaudio.operators import mfcc
from reactivex import from_iterable
out = []
from_iterable([AudioFrame(np.zeros((1024, 1), np.float32), 16000)]).pipe(mfcc()).subscribe(
    out.append)
print(time.perf_counter() - t)
"""

FIRST_LIBROSA = """
import time, numpy as np
t = time.perf_counter()
import librosa
librosa.feature.mfcc(y=np.zeros(1024, np.float32), sr=16000, n_mfcc=13, n_fft=512,
                     hop_length=160, n_mels=40, center=False)
print(time.perf_counter() - t)
"""


def first_call() -> dict[str, float]:
    def run(code: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip())

    return {
        "ours": min(run(FIRST_OURS) for _ in range(3)),
        "librosa": min(run(FIRST_LIBROSA) for _ in range(3)),
    }


def _chunks(minutes: float) -> Iterator[AudioFrame]:
    block = (0.1 * np.random.default_rng(0).standard_normal(1024)).astype(np.float32)
    block = block.reshape(-1, 1)
    for k in range(int(minutes * 60 * RATE / 1024)):
        yield AudioFrame(block, RATE, k * 1024)


def memory(minutes: float) -> int:
    # warm-up, untraced: the mel bank, DCT and window caches are built once per process
    from_iterable(_chunks(0.05)).pipe(mfcc(deltas=2)).subscribe(lambda f: None)
    src: Observable[AudioFrame] = from_iterable(_chunks(minutes))
    rows = [0]
    tracemalloc.start()
    try:
        src.pipe(mfcc(deltas=2)).subscribe(lambda f: rows.__setitem__(0, rows[0] + f.n_rows))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows[0] == 1 + (int(minutes * 60 * RATE / 1024) * 1024 - N_FFT) // HOP
    return peak


RSS_CASES: list[tuple[str, list[str]]] = [
    ("mfcc+deltas -> .npz", ["--deltas", "2", "--out", "{d}/f.npz"]),
    ("mfcc+deltas -> .csv", ["--deltas", "2", "--out", "{d}/f.csv"]),
    ("mfcc+deltas -> .parquet", ["--deltas", "2", "--out", "{d}/f.parquet"]),
    ("power (257 bins) -> .parquet", ["--kind", "power", "--out", "{d}/f.parquet"]),
]


def _write_wav(path: str, minutes: float) -> None:
    x, _ = sf.read(speech_sample(), dtype="float32")
    n = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for a in range(0, n, len(x)):
            f.write(x[: min(len(x), n - a)])


def app_rss(minutes: list[float]) -> dict[tuple[str, float], tuple[float, float]]:
    """Peak RSS (MB) and wall time (s) of ``rxaudio features`` per case and file length."""
    import os
    import tempfile
    import time

    out: dict[tuple[str, float], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        for m in minutes:
            wav = os.path.join(d, f"in{m:g}.wav")
            _write_wav(wav, m)
            for name, argv in RSS_CASES:
                cmd = [sys.executable, "-m", "rxaudio.apps.cli", "features", wav, "--no-progress"]
                cmd += [a.format(d=d) for a in argv]
                t0 = time.perf_counter()
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
                _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage
                p.returncode = os.waitstatus_to_exitcode(status)
                if p.returncode:
                    raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
                out[(name, m)] = (usage.ru_maxrss / 1024, time.perf_counter() - t0)  # KiB on Linux
            os.remove(wav)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=68.0)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rss-minutes", default="1,10,60", help="file lengths for the app's RSS")
    ap.add_argument("--only", default="speed,first,memory,rss", help="parts to run")
    a = ap.parse_args()
    parts = set(a.only.split(","))
    # first: a child's peak RSS counts the parent's pages at fork, so the app is measured
    # while this process is still small (after the speed part it holds ~270 MB)
    if "rss" in parts:
        lengths = [float(v) for v in a.rss_minutes.split(",")]
        rss = app_rss(lengths)
        print("rxaudio features, peak RSS of the app's process (MB) and wall time (s):")
        print(f"{'case':30s}" + "".join(f"{f'{m:g} min':>18s}" for m in lengths))
        for name, _ in RSS_CASES:
            cells = "".join(
                f"{rss[(name, m)][0]:9.1f} MB {rss[(name, m)][1]:5.1f} s" for m in lengths
            )
            print(f"{name:30s}{cells}")
    if "speed" in parts:
        _print_speed(a.seconds)
    if "first" in parts:
        fc = first_call()
        print(
            f"first call in a fresh process: ours {fc['ours']:.3f} s, librosa "
            f"{fc['librosa']:.3f} s (ratio {fc['librosa'] / fc['ours']:.1f}x)"
        )
    if "memory" in parts:
        for m in (10.0, a.minutes):
            peak = memory(m) / 1e6
            print(f"peak traced memory, mfcc(deltas=2) over {m:.0f} min: {peak:.3f} MB")


def _print_speed(seconds: float) -> None:
    r = speed(seconds)
    per_s = {k: v / r["_seconds"] * 1e3 for k, v in r.items() if not k.startswith("_")}
    ref_a, ref_b = per_s["librosa whole file"], per_s["naive per chunk"]
    print(f"speed, {seconds:.0f} s of 16 kHz speech, ms per second of audio (best of 15):")
    print(f"{'measure':28s} {'ms/s':>8s} {'x (a) time':>11s} {'(b) / this':>11s}")
    for k, v in per_s.items():
        print(f"{k:28s} {v:8.3f} {v / ref_a:11.2f} {ref_b / v:11.0f}")


if __name__ == "__main__":
    main()
