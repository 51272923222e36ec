"""Every registered operator (and the plumbing sinks) under the same five marble cases, in
virtual time: normal flow, completion, error propagation, dispose mid-stream, re-subscribe.

The table must name every operator of the registry (``registry.names("operator")``): a new
operator fails ``test_every_registered_operator_has_marble_cases`` until it has an entry here.
A case id is ``name`` or ``name[variant]``. Frames hold numpy arrays, so the cases compare
extracted values (``_summary``), never notifications.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from reactivex import from_iterable
from reactivex.scheduler import ImmediateScheduler

from rxaudio.asr import Recognition
from rxaudio.frames import (
    AudioFrame,
    FeatureFrame,
    FileReceipt,
    LevelFrame,
    SpeechEnd,
    SpeechStart,
    Transcript,
    Utterance,
    VadFrame,
)
from rxaudio.operators import (
    buffer_utterance,
    channels,
    conform,
    gain,
    hysteresis,
    level,
    mfcc,
    queue,
    reframe,
    resample,
    spectral,
    spectrogram,
    to_mono,
    transcribe,
    vad,
)
from rxaudio.pipeline import Caps, registry
from rxaudio.sinks import to_jsonl, to_wav
from rxaudio.testing import collect, frame, run_marbles

W = 512  # samples per VAD window at 16 kHz


@dataclass(frozen=True)
class Case:
    """An element under test and the items fed to it, one per marble character."""

    make: Callable[[str], Any]  # tmp dir -> a fresh operator
    items: tuple[Any, ...]
    kinds: frozenset[str]  # what it emits, all of it: ``_summary``'s first fields


def _audio(n: int = 4, size: int = 400, ch: int = 2) -> tuple[AudioFrame, ...]:
    return tuple(frame(i * size, size, channels=ch) for i in range(n))


def _speech(n: int = 4, size: int = 1600) -> tuple[AudioFrame, ...]:
    """A 440 Hz tone in noise, loud enough for every VAD backend to score it."""
    rng = np.random.default_rng(7)
    t = np.arange(n * size) / 16000
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n * size)
    x = x.astype(np.float32).reshape(-1, 1)
    return tuple(AudioFrame(x[i * size : (i + 1) * size], 16000, i * size) for i in range(n))


def _vad_frame(k: int, p: float) -> VadFrame:
    start = k * W
    col = (np.arange(start, start + W) % 1000 / 1000.0).astype(np.float32)
    return VadFrame(
        start, start + W, 16000, p, AudioFrame(col.reshape(-1, 1), 16000, start), None, k
    )


class _Words:
    """A recogniser that counts the samples it gets (the real one is tested in tests/asr)."""

    name = "count"
    sample_rate = 16000

    @classmethod
    def check(cls, **options: Any) -> None:
        pass

    def recognize(self, samples: Any) -> Recognition:
        return Recognition(f"n{len(samples)}")


def _utterances(n: int = 4) -> tuple[Utterance, ...]:
    return tuple(
        Utterance(f.samples, 16000, f.start, f.end, f.start, f.end, "silence", i)
        for i, f in enumerate(_speech(n))
    )


PROBS = (0.05, 0.9, 0.9, 0.9, 0.9, 0.05, 0.05, 0.05)
VAD_FRAMES = tuple(_vad_frame(k, p) for k, p in enumerate(PROBS))


def _quick_hysteresis() -> Any:
    return hysteresis(min_speech_ms=0, min_silence_ms=0)


# what buffer_utterance is fed in a chain: hysteresis' output (VAD frames and speech events)
HYSTERESIS_OUT = tuple(collect(from_iterable(VAD_FRAMES).pipe(_quick_hysteresis())))

AUDIO = frozenset({"audio"})
FEATURE = frozenset({"feature"})
VAD = frozenset({"vad"})
SPEECH = frozenset({"vad", "speech_start", "speech_end"})

CASES: dict[str, Case] = {
    "reframe": Case(lambda _t: reframe(256), _audio(), AUDIO),
    "resample": Case(lambda _t: resample(8000), _audio(), AUDIO),
    "to_mono": Case(lambda _t: to_mono(), _audio(), AUDIO),
    "channels": Case(lambda _t: channels(select=[1]), _audio(), AUDIO),
    "gain": Case(lambda _t: gain(-3), _audio(), AUDIO),
    "level": Case(lambda _t: level(), _audio(), frozenset({"level"})),
    "queue": Case(lambda _t: queue(max_size_buffers=2), _audio(), AUDIO),
    "queue[leaky]": Case(lambda _t: queue(max_size_buffers=1, leaky="downstream"), _audio(), AUDIO),
    "conform": Case(lambda _t: conform(Caps(8000, 1, 128)), _audio(), AUDIO),
    "spectrogram": Case(lambda _t: spectrogram(), _audio(ch=1), FEATURE),
    "spectrogram[log_mel]": Case(lambda _t: spectrogram(kind="log_mel"), _audio(), FEATURE),
    "mfcc": Case(lambda _t: mfcc(), _audio(), FEATURE),
    "mfcc[deltas]": Case(lambda _t: mfcc(deltas=2), _audio(size=1024), FEATURE),
    "spectral": Case(lambda _t: spectral(), _audio(), FEATURE),
    "vad[energy]": Case(lambda _t: vad(backend="energy"), _speech(), VAD),
    "vad[silero]": Case(lambda _t: vad(), _speech(), VAD),
    "hysteresis": Case(lambda _t: _quick_hysteresis(), VAD_FRAMES, SPEECH),
    "buffer_utterance": Case(
        lambda _t: buffer_utterance(pre_roll_ms=0, post_roll_ms=0, min_ms=0),
        HYSTERESIS_OUT,
        frozenset({"utterance"}),
    ),
    "buffer_utterance[passthrough]": Case(
        lambda _t: buffer_utterance(pre_roll_ms=64, post_roll_ms=64, passthrough=True),
        HYSTERESIS_OUT,
        SPEECH | {"utterance"},
    ),
    "transcribe": Case(
        lambda _t: transcribe(_Words, scheduler=ImmediateScheduler()),
        _utterances(),
        frozenset({"transcript"}),
    ),
    "transcribe[passthrough]": Case(
        lambda _t: transcribe(_Words, passthrough=True, scheduler=ImmediateScheduler()),
        _utterances(),
        frozenset({"transcript", "utterance"}),
    ),
    "to_wav": Case(lambda t: to_wav(os.path.join(t, "m.wav")), _audio(), frozenset({"receipt"})),
    "to_jsonl": Case(
        lambda t: to_jsonl(os.path.join(t, "m.jsonl"), serialize=lambda f: {"s": f.start}),
        _audio(),
        frozenset({"receipt"}),
    ),
}

NAMES = list(CASES)


def _element(case_id: str) -> str:
    return case_id.split("[")[0]


def test_every_registered_operator_has_marble_cases() -> None:
    missing = sorted(set(registry.names("operator")) - {_element(k) for k in CASES})
    assert not missing, f"operators without marble cases in the table: {missing}"


def _marbles(n: int, end: str = "|") -> tuple[str, dict[str, Any]]:
    """``-v00-v01-...-|`` over ``n`` items, and the lookup's names (one width, so each item's
    tick is its name's position: reactivex times an element by where its name starts)."""
    names = [f"v{i:02d}" for i in range(n)]
    return "-" + "-".join(names) + "-" + end, dict.fromkeys(names)


def _run(case: Case, tmp: str, n: int | None = None, end: str = "|", **kw: Any) -> Any:
    items = case.items if n is None else case.items[:n]
    source, lookup = _marbles(len(items), end)
    lookup = dict(zip(lookup, items, strict=True))
    return run_marbles(source, lookup, case.make(tmp), **kw)


def _tick_of(i: int) -> int:
    """Tick of the i-th item of ``_marbles`` (and of its end after ``n`` items)."""
    return 1 + 4 * i


@pytest.mark.parametrize("name", NAMES)
def test_flow_and_completion(name: str, tmp_path: os.PathLike[str]) -> None:
    case = CASES[name]
    out = _run(case, str(tmp_path))
    assert out.completed and out.error is None and out.values
    assert {_summary(v)[0] for v in out.values} == case.kinds
    assert out.events[-1].kind == "C" and out.events[-1].tick == _tick_of(len(case.items))


@pytest.mark.parametrize("name", NAMES)
def test_error_propagates(name: str, tmp_path: os.PathLike[str]) -> None:
    boom = RuntimeError("upstream failed")
    out = _run(CASES[name], str(tmp_path), n=2, end="#", error=boom)
    assert out.error is boom and not out.completed
    assert out.events[-1].tick == _tick_of(2)


@pytest.mark.parametrize("name", NAMES)
def test_dispose_mid_stream(name: str, tmp_path: os.PathLike[str]) -> None:
    case = CASES[name]
    cut_at = _tick_of(len(case.items) // 2)
    full = _run(case, str(tmp_path))
    cut = _run(case, str(tmp_path), dispose_at=cut_at)
    assert not cut.completed and all(e.tick < cut_at for e in cut.events)
    assert len(cut.values) <= len(full.values)


def _summary(v: Any) -> tuple[Any, ...]:
    if isinstance(v, AudioFrame):
        return ("audio", v.start, v.n, v.channels, round(float(v.samples.sum()), 6))
    if isinstance(v, LevelFrame):
        return ("level", v.start, round(v.rms_db, 6))
    if isinstance(v, FeatureFrame):
        return ("feature", v.kind, v.row, v.n_rows, round(float(np.sum(v.values)), 3))
    if isinstance(v, VadFrame):
        return ("vad", v.start, v.end, round(float(v.probability), 6))
    if isinstance(v, SpeechStart):
        return ("speech_start", v.start)
    if isinstance(v, SpeechEnd):
        return ("speech_end", v.start, v.end, v.reason)
    if isinstance(v, Utterance):
        return ("utterance", v.start, v.end, v.audio_start, v.audio_end, v.reason)
    if isinstance(v, Transcript):
        return ("transcript", v.utterance, v.start, v.end, v.text, v.status)
    if isinstance(v, FileReceipt):
        return ("receipt", v.frames, v.samples)
    return ("other", repr(v))


@pytest.mark.parametrize("name", NAMES)
def test_resubscribe_has_fresh_state(name: str, tmp_path: os.PathLike[str]) -> None:
    case = CASES[name]
    op = case.make(str(tmp_path))  # the same operator object, subscribed twice
    source, names = _marbles(len(case.items))
    lookup = dict(zip(names, case.items, strict=True))
    first = run_marbles(source, lookup, op)
    second = run_marbles(source, lookup, op)
    assert [_summary(v) for v in first.values] == [_summary(v) for v in second.values]
    assert first.ticks == second.ticks
    assert all(_summary(v)[0] != "other" for v in first.values)
