"""``ScoredVad``: vad split at its scorer (the server's batched path), in virtual time."""

from __future__ import annotations

from typing import Any

import numpy as np

from rxaudio.errors import StreamError
from rxaudio.operators import ScoredVad, ScoredWindow
from rxaudio.testing import frame, run_marbles


def _cut(fake_scorer: Any) -> tuple[ScoredVad, list[Any]]:
    scored = ScoredVad(fake_scorer(16000))
    a, b = frame(0, 6, value=0.8), frame(6, 4, value=0.2)
    windows = [scored.cut(a), scored.cut(b)]  # 4-sample windows: one from a, one from a + b
    return scored, windows


def test_marbles_scored_windows_become_vad_frames(fake_scorer: Any) -> None:
    scored, windows = _cut(fake_scorer)
    assert [w.shape[0] for w in windows] == [1, 1]
    assert np.allclose(windows[1][0], [0.8, 0.8, 0.2, 0.2])
    p = {"w": ScoredWindow(0, 0.9), "x": ScoredWindow(1, 0.4)}
    out = run_marbles("-w-x-|", p, scored.element)
    vs = out.values
    assert [(v.start, v.end) for v in vs] == [(0, 4), (4, 8), (8, 10)]
    assert out.ticks == [1.0, 3.0, 5.0]  # the short last window comes at completion
    # the probabilities given, then the zero-padded last window scored by the stage itself
    assert [round(v.probability, 3) for v in vs] == [0.9, 0.4, 0.1]
    assert fake_scorer.instances[0].calls == 1
    assert out.completed


def test_a_probability_for_another_window_fails_named_vad(fake_scorer: Any) -> None:
    scored, _ = _cut(fake_scorer)
    out = run_marbles("-x-|", {"x": ScoredWindow(1, 0.4)}, scored.element)  # window 0 is next
    assert out.values == []
    assert isinstance(out.error, StreamError) and out.error.operator == "vad"
    assert "window 1 came when window 0 was next" in str(out.error)


def test_an_upstream_error_and_a_dispose_end_it_without_scoring(fake_scorer: Any) -> None:
    scored, _ = _cut(fake_scorer)
    boom = RuntimeError("upstream")
    out = run_marbles("-w-#", {"w": ScoredWindow(0, 0.9)}, scored.element, error=boom)
    assert [round(v.probability, 3) for v in out.values] == [0.9]
    assert out.error is boom
    scored, _ = _cut(fake_scorer)
    out = run_marbles("-w-x-|", {"w": ScoredWindow(0, 0.9)}, scored.element, dispose_at=2)
    assert len(out.values) == 1 and not out.completed and out.error is None
    assert fake_scorer.instances[-1].calls == 0  # nothing scored at a dispose


def test_one_stream_only(fake_scorer: Any) -> None:
    scored, _ = _cut(fake_scorer)
    assert run_marbles("-|", {}, scored.element).completed
    again = run_marbles("-|", {}, scored.element)  # a second subscription is an error
    assert again.error is not None and "runs one stream" in str(again.error)
