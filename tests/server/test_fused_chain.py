"""A session's chain gives the same items, in the same order, fused or not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxaudio.core.fuse import Fused
from rxaudio.frames import AudioFrame, FeatureFrame, LevelFrame, SettingsRejected, Utterance
from rxaudio.server import pipeline
from rxaudio.server.pipeline import WINDOW, Chain, ChainOptions, Settings


def _run(speech: np.ndarray, fused: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(pipeline, "FUSE_STAGES", fused)
    settings: Subject[Settings] = Subject()
    windows: Subject[AudioFrame] = Subject()
    chain = Chain(ChainOptions(), settings=settings, scheduler=TestScheduler(), scorer=None)
    out: list[Any] = []
    chain(windows).subscribe(out.append, out.append, lambda: out.append("done"))
    x = speech[: 12 * 16000]
    for k in range(x.shape[0] // WINDOW):
        if k == 100:
            settings.on_next({"threshold": 0.3, "min_silence_ms": 300.0})
        if k == 200:
            settings.on_next({"threshold": 0.2, "neg_threshold": 0.6})  # refused
        w = x[k * WINDOW : (k + 1) * WINDOW].reshape(-1, 1)
        windows.on_next(AudioFrame(w, 16000, k * WINDOW))
    windows.on_completed()
    return out


def _fingerprint(x: Any) -> Any:
    if isinstance(x, Utterance):
        return ("utterance", x.to_dict(), x.samples.tobytes())
    if isinstance(x, FeatureFrame):
        return ("features", x.start, x.values.tobytes())
    if isinstance(x, LevelFrame | SettingsRejected):
        return x.to_dict()
    to_dict = getattr(x, "to_dict", None)
    if callable(to_dict):  # VadFrame: also its exact probability and state
        return (to_dict(), getattr(x, "probability", None), getattr(x, "pending", None))
    return x


def test_session_chain_fused_gives_the_unfused_items_in_order(
    speech: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _run(speech, False, monkeypatch)
    fused = _run(speech, True, monkeypatch)
    assert [_fingerprint(x) for x in plain] == [_fingerprint(x) for x in fused]
    assert fused[-1] == "done"
    assert any(isinstance(x, Utterance) for x in fused)
    assert any(isinstance(x, SettingsRejected) for x in fused)


def test_the_speech_chain_is_one_fused_operator() -> None:
    from rxaudio.core.fuse import fuse
    from rxaudio.pipeline import registry

    ops = fuse(
        *(registry.make(e.name, **e.options) for e in pipeline._parsed(pipeline.SPEECH_CHAIN))
    )
    assert len(ops) == 1 and isinstance(ops[0], Fused)
    assert [p.name for p in ops[0].parts] == ["vad", "hysteresis", "buffer_utterance"]
