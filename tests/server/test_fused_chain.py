"""A session's launch graph: batched (vad takes scored windows) gives what unbatched gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxaudio.core.fuse import Fused, fuse
from rxaudio.errors import StreamError
from rxaudio.frames import (
    FeatureFrame,
    LevelFrame,
    SettingsRejected,
    Utterance,
    VadFrame,
)
from rxaudio.operators import ScoredVad, ScoredWindow
from rxaudio.pipeline import registry
from rxaudio.server import pipeline
from rxaudio.server.pipeline import WINDOW, ChainOptions, SessionGraph, Settings
from rxaudio.vad.silero import BatchedSileroScorer


def _run(
    x: np.ndarray, *, batched: bool, options: ChainOptions | None = None, block: int = WINDOW
) -> tuple[list[Any], list[Any]]:
    """Items and errors of one session graph over ``x`` in ``block``-sample frames."""
    settings: Subject[Settings] = Subject()
    out: list[Any] = []
    errors: list[Exception] = []
    queued: list[tuple[np.ndarray, int]] = []
    shared = BatchedSileroScorer(16000)
    stream = shared.stream() if batched else None
    graph = SessionGraph(
        options or ChainOptions(),
        sample_rate=16000,
        channels=1,
        settings=settings,
        scheduler=TestScheduler(),
        scorer=stream,
    )

    def drain() -> None:  # what the session does after each call
        o = graph.out
        out.extend(o.items)
        o.items.clear()
        queued.extend(o.cut)
        o.cut.clear()
        if o.error is not None:
            errors.append(o.error)
            o.error = None
        if o.done:
            out.append("done")
            o.done = False

    def score() -> None:  # what the batcher does: score in order, hand each over
        drain()
        while queued:
            w, i = queued.pop(0)
            assert stream is not None
            graph.push_scored(ScoredWindow(i, stream.score(w)))
            drain()

    from rxaudio.frames import AudioFrame

    for k, i in enumerate(range(0, x.shape[0], block)):
        if k == 100:
            settings.on_next({"threshold": 0.3, "min_silence_ms": 300.0})
        if k == 200:
            settings.on_next({"threshold": 0.2, "neg_threshold": 0.6})  # refused
        graph.push(AudioFrame(x[i : i + block].reshape(-1, 1), 16000, i))
        score()
    graph.end_input()
    score()
    graph.end_speech()
    drain()
    graph.close()
    return out, errors


def _fingerprint(x: Any) -> Any:
    if isinstance(x, Utterance):
        return ("utterance", x.to_dict(), x.samples.tobytes())
    if isinstance(x, FeatureFrame):
        return ("features", x.start, x.values.tobytes())
    if isinstance(x, LevelFrame | SettingsRejected):
        return x.to_dict()
    if isinstance(x, VadFrame):  # the probability apart: batched kernels may round
        return ("vad", x.start, x.end, x.index, x.speech, x.pending, x.audio.samples.tobytes())
    return x


def _by_kind(items: list[Any]) -> dict[str, list[Any]]:
    """Each kind's own stream (display and speech items interleave by when vad is scored)."""
    out: dict[str, list[Any]] = {}
    for x in items:
        kind = "display" if isinstance(x, LevelFrame | FeatureFrame) else "speech"
        out.setdefault(kind, []).append(_fingerprint(x))
    return out


def _probs(items: list[Any]) -> np.ndarray:
    return np.array([x.probability for x in items if isinstance(x, VadFrame)])


@pytest.mark.parametrize("block", [WINDOW, 777])
def test_a_batched_session_graph_gives_the_unbatched_items(speech: np.ndarray, block: int) -> None:
    x = speech[: 12 * 16000 + 300]  # a short last window, scored by vad itself
    plain, e1 = _run(x, batched=False, block=block)
    batched, e2 = _run(x, batched=True, block=block)
    assert e1 == e2 == []
    assert _by_kind(plain) == _by_kind(batched)
    assert np.allclose(_probs(plain), _probs(batched), atol=1e-5)
    assert batched[-1] == "done"
    assert any(isinstance(x, Utterance) for x in batched)
    assert any(isinstance(x, SettingsRejected) for x in batched)


def test_an_element_before_vad_runs_on_what_the_batcher_scores(speech: np.ndarray) -> None:
    x = speech[: 6 * 16000]
    opts = ChainOptions.from_pipeline("gain db=-20 ! vad ! hysteresis ! buffer_utterance")
    plain, _ = _run(x, batched=False, options=opts)
    batched, _ = _run(x, batched=True, options=opts)
    loud, _ = _run(x, batched=True)
    assert _by_kind(plain) == _by_kind(batched)
    assert np.allclose(_probs(plain), _probs(batched), atol=1e-5)
    assert not np.allclose(_probs(batched), _probs(loud), atol=1e-3)  # vad scored the gain's
    quiet = next(v for v in batched if isinstance(v, VadFrame))
    assert np.allclose(quiet.audio.samples, x[:WINDOW].reshape(-1, 1) * 0.1, atol=1e-6)


def test_a_probability_for_another_window_fails_the_session(speech: np.ndarray) -> None:
    shared = BatchedSileroScorer(16000)
    cutter = ScoredVad(shared.stream())
    out: list[Any] = []
    errors: list[Exception] = []
    from reactivex import operators as ops
    from reactivex.subject import Subject as S

    from rxaudio.frames import AudioFrame

    src: S[ScoredWindow] = S()
    src.pipe(cutter.element, ops.to_list()).subscribe(out.extend, errors.append)
    w = cutter.cut(AudioFrame(speech[: 2 * WINDOW].reshape(-1, 1), 16000, 0))
    assert w.shape == (2, WINDOW)
    src.on_next(ScoredWindow(1, 0.5))  # window 0 is next
    assert len(errors) == 1 and isinstance(errors[0], StreamError)
    assert "vad" in str(errors[0]) and "window 1" in str(errors[0])


def test_the_speech_chain_is_one_fused_operator_batched_or_not() -> None:
    ops = fuse(
        *(registry.make(e.name, **e.options) for e in pipeline._parsed(pipeline.SPEECH_CHAIN))
    )
    assert len(ops) == 1 and isinstance(ops[0], Fused)
    assert [p.name for p in ops[0].parts] == ["vad", "hysteresis", "buffer_utterance"]
    batched = fuse(
        ScoredVad(BatchedSileroScorer(16000).stream()).element,
        registry.make("hysteresis"),
        registry.make("buffer_utterance"),
    )
    assert len(batched) == 1 and isinstance(batched[0], Fused)
