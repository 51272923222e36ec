"""Every plumbing operator and sink under the same five marble cases, in virtual time."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from rxaudio.frames import AudioFrame, FileReceipt, LevelFrame
from rxaudio.operators import channels, conform, gain, level, reframe, resample, to_mono
from rxaudio.pipeline import Caps
from rxaudio.sinks import to_jsonl, to_wav
from rxaudio.testing import frame, run_marbles

SRC = {k: frame(i * 400, 400, channels=2) for i, k in enumerate("abcd")}


def _factories(tmp: str) -> dict[str, Callable[[], Any]]:
    return {
        "reframe": lambda: reframe(256),
        "resample": lambda: resample(8000),
        "to_mono": to_mono,
        "channels": lambda: channels(select=[1]),
        "gain": lambda: gain(-3),
        "level": level,
        "conform": lambda: conform(Caps(8000, 1, 128)),
        "to_wav": lambda: to_wav(os.path.join(tmp, "m.wav")),
        "to_jsonl": lambda: to_jsonl(
            os.path.join(tmp, "m.jsonl"), serialize=lambda f: {"s": f.start}
        ),
    }


NAMES = list(_factories("."))


@pytest.mark.parametrize("name", NAMES)
def test_flow_and_completion(name: str, tmp_path: os.PathLike[str]) -> None:
    out = run_marbles("-a-b-c-d-|", SRC, _factories(str(tmp_path))[name]())
    assert out.completed and out.error is None and out.values
    assert out.events[-1].kind == "C" and out.events[-1].tick == 9


@pytest.mark.parametrize("name", NAMES)
def test_error_propagates(name: str, tmp_path: os.PathLike[str]) -> None:
    boom = RuntimeError("upstream failed")
    out = run_marbles("-a-b-#", SRC, _factories(str(tmp_path))[name](), error=boom)
    assert out.error is boom and not out.completed
    assert out.events[-1].tick == 5


@pytest.mark.parametrize("name", NAMES)
def test_dispose_mid_stream(name: str, tmp_path: os.PathLike[str]) -> None:
    full = run_marbles("-a-b-c-d-|", SRC, _factories(str(tmp_path))[name]())
    cut = run_marbles("-a-b-c-d-|", SRC, _factories(str(tmp_path))[name](), dispose_at=4)
    assert not cut.completed and all(e.tick < 4 for e in cut.events)
    assert len(cut.values) <= len(full.values)


def _summary(v: Any) -> tuple[Any, ...]:
    if isinstance(v, AudioFrame):
        return ("audio", v.start, v.n, v.channels, round(float(v.samples.sum()), 6))
    if isinstance(v, LevelFrame):
        return ("level", v.start, round(v.rms_db, 6))
    if isinstance(v, FileReceipt):
        return ("receipt", v.frames, v.samples)
    return ("other", repr(v))


@pytest.mark.parametrize("name", NAMES)
def test_resubscribe_has_fresh_state(name: str, tmp_path: os.PathLike[str]) -> None:
    op = _factories(str(tmp_path))[name]()
    first = run_marbles("-a-b-c-d-|", SRC, op)
    second = run_marbles("-a-b-c-d-|", SRC, op)
    assert [_summary(v) for v in first.values] == [_summary(v) for v in second.values]
    assert first.ticks == second.ticks
    assert all(_summary(v)[0] != "other" for v in first.values)
