"""The batched sessions' direct paths (rxaudio.server.rounds) against the executor alone.

A session's default speech chain runs most windows on a direct path (:class:`SpeechLane`: a
quiet window, a window inside a confirmed segment) and the rest through the stage executor.
The reference is the executor for every window (``quiet_path=False``). The same sessions
(audio, chunking, rates, settings, live ``config`` changes, joins and leaves, a failing
session, a storage limit that ends one mid-round, gap timers) run both ways on a shared
batcher with the real batched Silero, and must give the same events (the JSON text each
outbox was given, in order) and the same files (byte for byte).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from reactivex.scheduler import HistoricalScheduler

from rxaudio.data import speech_sample
from rxaudio.server.limits import StorageBudget
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import ChainOptions, WindowBatcher
from rxaudio.server.rounds import SpeechLane
from rxaudio.server.sessions import Outbox, Session
from rxaudio.vad.silero import BatchedSileroScorer

RATE = 16000


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """The bundled speech, looped to ``seconds``, with a little noise (mono float32)."""
    x, sr = sf.read(speech_sample(), dtype="float32")
    assert sr == RATE
    x = np.resize(x, int(seconds * RATE))
    rng = np.random.default_rng(seed)
    return (x + 0.002 * rng.standard_normal(x.shape[0])).astype(np.float32)


@dataclass
class Plan:
    """One session of a scenario: its audio, chunking, when it joins and leaves, what
    happens to it on the way (configs by frame, a NaN frame, a pause)."""

    audio: np.ndarray  # (n, channels) at ``rate``
    frame: int
    rate: int = RATE
    join: int = 0  # the round it starts in
    leave: int | None = None  # the round it is closed in (None: at the end)
    configs: dict[int, dict[str, float]] = field(default_factory=dict)
    nan_at: int | None = None  # its frame that carries a NaN (the session fails)
    pause_at: int | None = None  # no frames for ``pause_s`` from this frame on
    pause_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    max_bytes: int | None = None

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(0, self.audio.shape[0], self.frame):
            yield self.audio[i : i + self.frame]


def run_sessions(plans: list[Plan], folder: Path, *, quiet: bool) -> dict[str, Any]:
    """Run the plans round by round (one frame per live session, then the batcher's round,
    then the virtual clock moves by a frame); return every session's events and files."""
    loop = asyncio.new_event_loop()
    metrics = ServerMetrics()
    batcher = WindowBatcher(metrics, loop, BatchedSileroScorer(RATE))
    clock = HistoricalScheduler(datetime(2026, 1, 1, tzinfo=UTC))
    budget = StorageBudget(None)
    sessions: dict[int, Session] = {}
    boxes: dict[int, Outbox] = {}
    feeds: dict[int, Iterator[np.ndarray]] = {}
    paused: dict[int, int] = {}

    async def nothing(text: str) -> None:
        return None

    def start(i: int) -> None:
        p = plans[i]
        opts = {"events": ("level", "vad", "spectrogram"), **p.options}
        s = Session(
            f"s{i}",
            sample_rate=p.rate,
            channels=p.audio.shape[1],
            options=ChainOptions(**opts),
            out_dir=str(folder),
            metrics=metrics,
            loop=loop,
            scheduler=clock,
            batcher=batcher,
            budget=budget,
            max_bytes=p.max_bytes,
            on_limit=lambda sess, _limit: sess.close("storage"),
            quiet_path=quiet,
        )
        box = Outbox(nothing, metrics, maxlen=1 << 30, maxbytes=1 << 40)
        s.attach(box)
        sessions[i], boxes[i], feeds[i] = s, box, p.frames()

    try:
        r = 0
        while r == 0 or any(not s.closed for s in sessions.values()) or len(sessions) < len(plans):
            for i, p in enumerate(plans):
                if p.join == r and i not in sessions:
                    start(i)
            step = 1.0
            for i, s in list(sessions.items()):
                p = plans[i]
                if s.closed or s._closing:
                    continue
                if p.leave == r:
                    s.close("left")
                    continue
                k = r - p.join
                if k in p.configs:
                    s.configure(p.configs[k])
                if p.pause_at is not None and k == p.pause_at and i not in paused:
                    paused[i] = r
                    step = max(step, p.pause_s * RATE / p.frame)
                x = next(feeds[i], None)
                if x is None:
                    s.close("done")
                    continue
                if p.nan_at == k:
                    x = x.copy()
                    x[len(x) // 2] = np.nan
                s.feed(x)
            batcher.run()
            clock.advance_by(timedelta(seconds=step * 512 / RATE))
            r += 1
            assert r < 100_000
        batcher.run()
        out: dict[str, Any] = {}
        for i, s in sessions.items():
            files = {}
            assert s.dir is not None
            for name in sorted(os.listdir(s.dir)):
                files[name] = Path(s.dir, name).read_bytes()
            out[f"s{i}"] = {
                "events": [(k, t) for k, t, _ in boxes[i].queue],
                "files": files,
                "failed": s.failed,
            }
        return out
    finally:
        loop.close()


def _compare(plans: list[Plan], tmp_path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Both ways; equal outputs; how many windows each direct path ran."""
    names = ("quiet", "closing", "pending", "speech")
    counts = dict.fromkeys(names, 0)
    path = SpeechLane._direct_path

    def counted(self: SpeechLane, kind: int, *args: Any) -> None:
        counts[names[kind]] += 1
        path(self, kind, *args)

    ref = run_sessions(plans, tmp_path / "executor", quiet=False)
    assert not any(counts.values())
    mp = pytest.MonkeyPatch()
    mp.setattr(SpeechLane, "_direct_path", counted)
    try:
        new = run_sessions(plans, tmp_path / "lanes", quiet=True)
    finally:
        mp.undo()
    assert new.keys() == ref.keys()
    for sid in ref:
        a, b = ref[sid], new[sid]
        assert b["failed"] == a["failed"], sid
        assert b["files"].keys() == a["files"].keys(), sid
        for name in a["files"]:
            assert b["files"][name] == a["files"][name], f"{sid}/{name} differs"
        assert len(b["events"]) == len(a["events"]), sid
        for k, (x, y) in enumerate(zip(a["events"], b["events"], strict=True)):
            assert y == x, f"{sid} event {k}: {y} != {x}"
    return ref, counts


def _kinds(result: dict[str, Any]) -> dict[str, int]:
    n: dict[str, int] = {}
    for s in result.values():
        for k, _ in s["events"]:
            n[k] = n.get(k, 0) + 1
    return n


@pytest.mark.parametrize("frame", [512, 777, 160, 1600])
def test_direct_paths_equal_the_executor_per_chunking(tmp_path: Path, frame: int) -> None:
    plans = [Plan(_speech(12.0).reshape(-1, 1), frame)]
    ref, counts = _compare(plans, tmp_path)
    kinds = _kinds(ref)
    assert kinds["utterance"] >= 2 and kinds["speech_start"] == kinds["speech_end"]
    assert all(n > 0 for n in counts.values()), counts  # every direct path really ran


def test_settings_live_changes_and_split_utterances(tmp_path: Path) -> None:
    x = _speech(20.0, seed=1).reshape(-1, 1)
    plans = [
        Plan(
            x,
            512,
            options={"settings": {"threshold": 0.6, "min_silence_ms": 300.0, "max_ms": 1500.0}},
            configs={40: {"threshold": 0.3, "pre_roll_ms": 0.0}, 200: {"max_ms": 30_000.0}},
        ),
        Plan(
            x,
            1024,
            configs={
                10: {"neg_threshold": 0.2, "min_speech_ms": 100.0},
                150: {"post_roll_ms": 400.0, "min_ms": 500.0},
                300: {"max_gap_ms": 50.0},
            },
        ),
    ]
    # a split whose last second holds windows of the segment while it was pending
    short = {"pre_roll_ms": 0.0, "max_ms": 1100.0, "min_speech_ms": 600.0, "threshold": 0.4}
    plans.append(Plan(x, 512, options={"settings": short}))
    # a segment pending for seconds: its audio is kept back to its onset through the trims
    late = {
        "min_speech_ms": 5000.0,
        "min_silence_ms": 3000.0,
        "threshold": 0.3,
        "neg_threshold": 0.05,
    }
    plans.append(Plan(x, 512, options={"settings": late}))
    ref, counts = _compare(plans, tmp_path)
    texts = [t for k, t in ref["s0"]["events"] if k == "utterance"]
    assert any('"max_length"' in t for t in texts)  # a split happened on the way
    assert counts["quiet"] and counts["speech"]


def test_sessions_join_leave_fail_and_hit_limits_mid_round(tmp_path: Path) -> None:
    x = _speech(10.0, seed=2).reshape(-1, 1)
    stereo = np.stack([_speech(10.0, seed=3), _speech(10.0, seed=4)], axis=1)
    stereo48 = np.repeat(stereo, 3, axis=0)[: 3 * stereo.shape[0]]  # 48 kHz, two channels
    plans = [
        Plan(x, 512),
        Plan(x, 777, join=20, leave=200),  # joins late, leaves mid-speech
        Plan(x, 512, nan_at=120),  # fails mid-stream
        Plan(x, 512, max_bytes=200_000),  # its storage limit ends it inside a round
        Plan(stereo48, 1536, rate=48000, join=5),  # phase 1 before vad
        Plan(x, 512, options={"events": ("vad",)}),
        Plan(x, 1000, options={"before": (("gain", {"db": -3.0}),)}),  # an element before vad
    ]
    ref, _ = _compare(plans, tmp_path)
    assert ref["s2"]["failed"] and "NaN" in ref["s2"]["failed"]
    assert any('"session_storage_limit"' in t for _, t in ref["s3"]["events"])


def test_gap_timers_close_speech_alike(tmp_path: Path) -> None:
    x = _speech(12.0, seed=5).reshape(-1, 1)
    plans = [
        Plan(x, 512, pause_at=k, pause_s=3.0, options={"settings": {"max_gap_ms": 500.0}})
        for k in (30, 47, 90, 133)
    ]
    ref, _ = _compare(plans, tmp_path)
    texts = [t for s in ref.values() for k, t in s["events"] if k in ("speech_end", "utterance")]
    assert any('"gap"' in t for t in texts)  # some pause fell inside speech
