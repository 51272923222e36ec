"""The server's speech chain fused into one operator against its three Rx operators.

Run: ``python -m benchmarks.bench_fuse [--seconds 10] [--rounds 101]``.

``vad ! hysteresis ! buffer_utterance`` as a session runs it (a Subject of 512-sample windows,
live settings Observables, passthrough, the gap timers on an asyncio loop's scheduler) over
``--seconds`` of the bundled speech, once as three operators and once through
:func:`rxaudio.core.fuse.fuse`, in alternating rounds in one process. Silero's probabilities are
computed once beforehand and handed back per window (as the server's batcher does), so what is
measured is the chain beyond inference. Reported: CPU microseconds per window of each (median
and best round) and the ratio fused / unfused; the outputs of both are checked to be equal.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import numpy as np
import reactivex as rx
import soundfile as sf
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.subject import Subject

from rxaudio.core.fuse import fuse
from rxaudio.data import speech_sample
from rxaudio.frames import AudioFrame
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.vad.silero import SileroOnnx

WINDOW = 512


class _Replay:
    """A scorer handing back precomputed probabilities, one per window, in order."""

    sample_rate = 16000
    window_size = WINDOW

    def __init__(self, probs: list[float]) -> None:
        self.probs, self.k = probs, 0

    def reset(self) -> None:
        self.k = 0

    def score(self, window: np.ndarray) -> float:
        p = self.probs[self.k]
        self.k += 1
        return p

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        return np.array([self.score(w) for w in windows], dtype=np.float32)


def _elements(probs: list[float], scheduler: AsyncIOScheduler, settings: Subject[Any]) -> list[Any]:
    return [
        vad(lambda rate: _Replay(probs), rate=16000),
        hysteresis(settings=settings.pipe(ops.map(dict)), scheduler=scheduler),
        buffer_utterance(
            passthrough=True, settings=settings.pipe(ops.map(dict)), scheduler=scheduler
        ),
    ]


def one_round(
    frames: list[AudioFrame], probs: list[float], fused: bool, scheduler: AsyncIOScheduler
) -> tuple[float, list[Any]]:
    """CPU seconds for the chain over ``frames``, and what it emitted."""
    settings: Subject[Any] = Subject()
    els = _elements(probs, scheduler, settings)
    chain = rx.compose(*(fuse(*els) if fused else els))
    src: Subject[AudioFrame] = Subject()
    out: list[Any] = []
    sub = src.pipe(chain).subscribe(out.append, out.append)
    c0 = time.process_time()
    for f in frames:
        src.on_next(f)
    src.on_completed()
    used = time.process_time() - c0
    sub.dispose()
    return used, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=101, help="rounds of each, alternating")
    args = ap.parse_args()
    x, sr = sf.read(speech_sample(), dtype="float32")
    x = np.resize(x, int(args.seconds * sr)).astype(np.float32)
    n = x.shape[0] // WINDOW
    frames = [
        AudioFrame(x[k * WINDOW : (k + 1) * WINDOW].reshape(-1, 1).copy(), sr, k * WINDOW)
        for k in range(n)
    ]
    silero = SileroOnnx(sr)
    probs = [float(silero.score(f.samples[:, 0])) for f in frames] + [0.0]
    loop = asyncio.new_event_loop()  # timers are scheduled on it, never run
    scheduler = AsyncIOScheduler(loop)
    times: dict[bool, list[float]] = {False: [], True: []}
    outs: dict[bool, list[Any]] = {}
    for r in range(args.rounds + 1):
        for fused in (False, True) if r % 2 else (True, False):
            used, outs[fused] = one_round(frames, probs, fused, scheduler)
            if r:  # the first round warms up
                times[fused].append(used / n * 1e6)
    loop.close()
    same = [o.to_dict() for o in outs[False]] == [o.to_dict() for o in outs[True]]
    assert same, "fused and unfused outputs differ"
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    ratios = [f / u for u, f in zip(times[False], times[True], strict=True)]
    print(
        f"{n} windows ({args.seconds:.0f} s), {args.rounds} rounds each: unfused median "
        f"{med[False]:.1f} (best {best[False]:.1f}) µs/window, fused median {med[True]:.1f} "
        f"(best {best[True]:.1f}); fused/unfused {med[True] / med[False]:.3f} by medians, "
        f"{best[True] / best[False]:.3f} by best rounds, paired rounds' median "
        f"{statistics.median(ratios):.3f}; outputs equal: {same}"
    )


if __name__ == "__main__":
    main()
