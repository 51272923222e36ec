"""CPU of the server's per-session work without the network, as a multiple of inference alone.

Run: ``python -m benchmarks.bench_session [--streams 100] [--seconds 10] [--frame 1024]``.

``N`` server sessions (the real :class:`~rxaudio.server.sessions.Session`: phase 1, the shared
:class:`~rxaudio.server.pipeline.WindowBatcher`, the full chain with level and spectrogram
events, utterance WAVs and ``events.jsonl`` in a temporary folder, each event encoded and queued
to an outbox whose send does nothing) get ``--seconds`` of the bundled speech each, frame by
frame and stream by stream as a loaded server receives them, on a real asyncio loop. Reported:
CPU per stream-second of audio, and the same for batched Silero inference alone on the same
windows in batches of ``N`` (the reference, same run). The ratio is what the server adds to
inference; the network (WebSocket receive and send) comes on top (``bench_server``).

``--paths`` runs the same sessions with the executor alone (``Session(quiet_path=False)``) and
with the direct paths of :mod:`rxaudio.server.rounds`, interleaved, ``--repeat`` rounds, and
prints the median CPU per session-frame of each; ``--recorded`` replays Silero's probabilities
of the audio, scored once beforehand, so what is measured is the sessions' own work.

(``--compare-fused`` is gone: since the stage runtime, adjacent stages always run as one
executor, so there is no unfused server chain to compare with; ``tests/core/test_fuse.py``
compares one run against stages kept apart.)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import soundfile as sf
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxaudio.data import speech_sample
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import PIPELINE_RATE, WINDOW, ChainOptions, WindowBatcher
from rxaudio.server.sessions import Outbox, Session
from rxaudio.vad.silero import BatchedSileroScorer


async def _null_send(text: str) -> None:
    return None


class RecordedScores(BatchedSileroScorer):
    """Silero's probabilities of the audio, scored once beforehand and replayed per stream in
    window order: the sessions' own work, without inference (``--recorded``)."""

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__(PIPELINE_RATE)
        h = self.register()
        x = audio.astype(np.float32) / np.float32(32768.0)
        self.probs = [
            self.score_batch({h: x[i : i + WINDOW]})[h]
            for i in range(0, x.shape[0] - WINDOW + 1, WINDOW)
        ]
        self.unregister(h)
        self.k: dict[int, int] = {}

    def score_batch(self, windows: Mapping[int, np.ndarray]) -> dict[int, float]:
        if not hasattr(self, "probs"):  # scoring the recording itself
            return super().score_batch(windows)
        out = {}
        for h in windows:
            k = self.k.get(h, 0)
            self.k[h] = k + 1
            out[h] = self.probs[k % len(self.probs)]
        return out


async def sessions_cpu(
    audio: np.ndarray,
    streams: int,
    frame: int,
    events: tuple[str, ...] = ("level", "vad", "spectrogram"),
    files: bool = True,
    *,
    quiet_path: bool = True,
    shared: BatchedSileroScorer | None = None,
) -> float:
    """CPU seconds for ``streams`` sessions to process ``audio`` (int16) each."""
    loop = asyncio.get_running_loop()
    metrics = ServerMetrics()
    batcher = WindowBatcher(metrics, loop, shared)
    out = tempfile.mkdtemp(prefix="rxaudio-bench-")
    scheduler = AsyncIOScheduler(loop)
    try:
        ss: list[Session] = []
        boxes: list[Outbox] = []
        tasks: list[asyncio.Task[Any]] = []
        for i in range(streams):
            s = Session(
                f"s{i}",
                sample_rate=PIPELINE_RATE,
                channels=1,
                options=ChainOptions(events=events),
                out_dir=out if files else None,
                metrics=metrics,
                loop=loop,
                scheduler=scheduler,
                batcher=batcher,
                quiet_path=quiet_path,
            )
            box = Outbox(_null_send, metrics, maxlen=100_000, maxbytes=1 << 30)
            s.attach(box)
            tasks.append(asyncio.ensure_future(box.run()))
            ss.append(s)
            boxes.append(box)
        frames = [audio[i : i + frame].tobytes() for i in range(0, audio.shape[0], frame)]
        await asyncio.sleep(0)
        c0 = time.process_time()
        for data in frames:
            for s in ss:  # what the receive path does per message
                x = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
                s.feed(x.reshape(-1, 1))
            await asyncio.sleep(0)  # a loop turn: the batcher's round, the outboxes' sends
        for s in ss:
            s.close()
        for box in boxes:
            box.close()
        await asyncio.gather(*tasks)
        used = time.process_time() - c0
        assert all(s.failed is None for s in ss), [s.failed for s in ss if s.failed]
        return used
    finally:
        shutil.rmtree(out, ignore_errors=True)


def inference_cpu(audio: np.ndarray, streams: int) -> float:
    """CPU seconds for batched Silero alone on the same windows (batches of ``streams``)."""
    from rxaudio.vad.silero import BatchedSileroScorer

    shared = BatchedSileroScorer(PIPELINE_RATE)
    handles = [shared.register() for _ in range(streams)]
    x = audio.astype(np.float32) / 32768.0
    n = x.shape[0] // WINDOW
    c0 = time.process_time()
    for k in range(n):
        w = x[k * WINDOW : (k + 1) * WINDOW]
        shared.score_batch({h: w for h in handles})
    return time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--frame", type=int, default=1024, help="samples per client message")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the least CPU is kept")
    ap.add_argument(
        "--events", default="level,vad,spectrogram", help="display events sent (default all)"
    )
    ap.add_argument("--no-files", action="store_true", help="write no WAVs or logs")
    ap.add_argument(
        "--paths",
        action="store_true",
        help="the executor alone against the quiet path (rxaudio.server.rounds), interleaved "
        "round by round; median CPU per session-frame of each",
    )
    ap.add_argument(
        "--recorded",
        action="store_true",
        help="replay Silero's probabilities recorded beforehand instead of scoring: the "
        "sessions' own work, without inference",
    )
    args = ap.parse_args()
    x, _ = sf.read(speech_sample(), dtype="int16")
    audio = np.resize(x, int(args.seconds * PIPELINE_RATE))
    stream_s = args.streams * args.seconds
    events = tuple(e for e in args.events.split(",") if e)
    if args.paths:
        frames = args.streams * -(-audio.shape[0] // args.frame)
        per: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for quiet in (False, True):
                shared = RecordedScores(audio) if args.recorded else None
                cpu = asyncio.run(
                    sessions_cpu(
                        audio,
                        args.streams,
                        args.frame,
                        events,
                        files=not args.no_files,
                        quiet_path=quiet,
                        shared=shared,
                    )
                )
                per[quiet].append(1e6 * cpu / frames)
        for quiet in (False, True):
            runs = ", ".join(f"{v:.1f}" for v in per[quiet])
            print(
                f"{'quiet path' if quiet else 'executor  '}: median "
                f"{float(np.median(per[quiet])):.1f} us CPU per session-frame ({runs})"
                f"{' without inference' if args.recorded else ''}"
            )
        return
    ses = min(
        asyncio.run(
            sessions_cpu(
                audio,
                args.streams,
                args.frame,
                tuple(e for e in args.events.split(",") if e),
                files=not args.no_files,
            )
        )
        for _ in range(args.repeat)
    )
    inf = min(inference_cpu(audio, args.streams) for _ in range(args.repeat))
    print(
        f"{args.streams} sessions x {args.seconds:.0f} s, {args.frame}-sample frames: "
        f"sessions {1000 * ses / stream_s:.2f} ms CPU per stream-second, batched inference "
        f"alone {1000 * inf / stream_s:.2f} ms: {ses / inf:.2f}x inference"
    )


if __name__ == "__main__":
    main()
