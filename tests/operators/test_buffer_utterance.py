"""buffer_utterance in virtual time: pre-roll, post-roll, max-length split, gaps, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from reactivex import Observable

from rxaudio.errors import ConfigError
from rxaudio.frames import SettingsRejected, SpeechEnd, Utterance, VadFrame
from rxaudio.operators import buffer_utterance, hysteresis
from rxaudio.testing import run_marbles
from rxaudio.vad.utterance import LOOKBACK_S, UtteranceCutter, UtteranceSettings

W = 512
TS = 0.016  # virtual seconds per marble character: one 32 ms window every two characters


def seq(n: int, end: str = "|") -> str:
    """n windows, window k at tick 2k + 1 (letters are separated: reactivex reads 'ab' as one)."""
    return "-" + "-".join(name(k) for k in range(n)) + "-" + end


def name(k: int) -> str:
    return "w" + str(k)


def frames(vf: Callable[..., VadFrame], probs: list[float]) -> dict[str, VadFrame]:
    return {name(k): vf(k, p) for k, p in enumerate(probs)}


def ramp(a: int, b: int) -> np.ndarray:
    """The audio the ``vf`` fixture puts at samples [a, b)."""
    return (np.arange(a, b) % 1000 / 1000.0).astype(np.float32)


def marbles(*args: Any, **kw: Any) -> Any:
    return run_marbles(*args, timespan=TS, **kw)


def at(k: int, n: int) -> float:
    """Virtual time (s) of window k of ``seq(n)``: reactivex times an element by the position of
    its name in the marble string."""
    return (seq(n).index("-" + name(k) + "-") + 1) * TS


def chain(**kw: Any) -> Callable[[Observable[Any]], Observable[Any]]:
    """hysteresis ! buffer_utterance, both with the same ``max_gap_ms`` (as ``rxaudio record``)."""
    h = hysteresis(
        min_speech_ms=kw.pop("min_speech_ms", 250), max_gap_ms=kw.get("max_gap_ms", 2000)
    )
    b = buffer_utterance(**kw)
    return lambda src: src.pipe(h, b)


def utts(values: list[Any]) -> list[Utterance]:
    return [v for v in values if isinstance(v, Utterance)]


def test_utterance_with_pre_and_post_roll(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 12 + [0.9] * 10 + [0.05] * 10
    out = marbles(seq(len(probs)), frames(vf, probs), chain(pre_roll_ms=300, post_roll_ms=200))
    (u,) = utts(out.values)
    assert (u.start, u.end) == (12 * W, 22 * W)
    assert (u.audio_start, u.audio_end) == (12 * W - 4800, 22 * W + 3200)
    assert u.reason == "silence" and u.sample_rate == 16000 and u.index == 0
    assert np.array_equal(u.samples[:, 0], ramp(u.audio_start, u.audio_end))
    # emitted as soon as the post-roll was in: window 28 ends at 29 * 512 >= 22 * 512 + 3200
    assert out.ticks[out.values.index(u)] == pytest.approx(at(28, len(probs)))
    assert u.to_dict()["audio_start"] == pytest.approx((12 * W - 4800) / 16000)
    assert out.completed


def test_speech_at_first_and_last_frame(vf: Callable[..., VadFrame]) -> None:
    probs = [0.9] * 20
    out = marbles(seq(len(probs)), frames(vf, probs), chain())
    (u,) = utts(out.values)
    assert (u.audio_start, u.start) == (0, 0)  # pre-roll clipped at the stream start
    assert (u.end, u.audio_end, u.reason) == (20 * W, 20 * W, "end_of_stream")
    assert np.array_equal(u.samples[:, 0], ramp(0, 20 * W))


def test_silence_only(vf: Callable[..., VadFrame]) -> None:
    out = marbles(seq(40), frames(vf, [0.1] * 40), chain())
    assert utts(out.values) == [] and out.completed


def test_max_length_split_at_least_speechlike_point(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 12 + [0.9] * 90 + [0.05] * 12
    probs[50] = 0.55  # still speech (above neg 0.35), the least speech-like of the last second
    probs[20] = 0.4  # lower, but more than a second before the split point: not a candidate
    out = marbles(
        seq(len(probs)), frames(vf, probs), chain(max_ms=2000, pre_roll_ms=300, post_roll_ms=0)
    )
    first, second = utts(out.values)
    cut = 50 * W + W // 2
    assert (first.start, first.end, first.audio_end, first.reason) == (
        12 * W,
        cut,
        cut,
        "max_length",
    )
    assert first.audio_end - first.audio_start <= 32000 + W  # within max_ms (+ one window)
    assert (second.start, second.audio_start, second.reason) == (cut, cut, "silence")
    assert second.end == 102 * W
    # the two pieces join without a gap or overlap
    joined = np.concatenate([first.samples, second.samples])[:, 0]
    assert np.array_equal(joined, ramp(first.audio_start, second.audio_end))


def test_error_mid_utterance_emits_it_then_the_error(vf: Callable[..., VadFrame]) -> None:
    boom = OSError("device gone")
    probs = [0.05] * 5 + [0.9] * 15
    out = marbles(seq(len(probs), "#"), frames(vf, probs), chain(), error=boom)
    (u,) = utts(out.values)
    assert u.reason == "error" and u.end == 20 * W
    assert out.error is boom


def test_dispose_mid_utterance_emits_nothing_later(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 5 + [0.9] * 15
    out = marbles(seq(len(probs), ""), frames(vf, probs), chain(max_gap_ms=3000), dispose_at=30)
    assert utts(out.values) == []  # the gap timer was cancelled with the subscription
    assert out.events == [] or max(e.tick for e in out.events) < 30 * TS


def test_gap_closes_open_utterance_on_scheduler_time(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 5 + [0.9] * 15  # speech still open when the input stops (no completion)
    out = marbles(seq(len(probs), ""), frames(vf, probs), chain(max_gap_ms=5000))
    (u,) = utts(out.values)
    assert u.reason == "gap" and u.end == 20 * W
    assert out.ticks[out.values.index(u)] == pytest.approx(at(19, len(probs)) + 5.0)
    assert not out.completed


def test_resubscribe_fresh_state(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 12 + [0.9] * 10 + [0.05] * 10
    op = chain()
    a = utts(marbles(seq(len(probs)), frames(vf, probs), op).values)
    b = utts(marbles(seq(len(probs)), frames(vf, probs), op).values)
    assert [(u.start, u.end, u.index) for u in a] == [(u.start, u.end, u.index) for u in b]


def test_live_settings(vf: Callable[..., VadFrame]) -> None:
    from reactivex.testing import ReactiveTest, TestScheduler

    sched = TestScheduler()
    live = sched.create_hot_observable(
        ReactiveTest.on_next(100.05, {"pre_roll_ms": 0}),  # before the onset
        ReactiveTest.on_next(100.1, {"max_ms": 10}),
    )
    probs = [0.05] * 12 + [0.9] * 10 + [0.05] * 10
    h = hysteresis()
    b = buffer_utterance(settings=live)
    out = marbles(seq(len(probs)), frames(vf, probs), lambda s: s.pipe(h, b), scheduler=sched)
    (u,) = utts(out.values)
    assert u.audio_start == u.start  # no pre-roll any more
    (r,) = [v for v in out.values if isinstance(v, SettingsRejected)]
    assert r.operator == "buffer_utterance" and "max_ms (10) must exceed" in r.message
    assert u.audio_end - u.audio_start > 10 * 16  # the refused 10 ms limit did not apply


def test_passthrough_and_bad_items(vf: Callable[..., VadFrame]) -> None:
    probs = [0.05] * 3 + [0.9] * 10 + [0.05] * 10
    out = marbles(seq(len(probs)), frames(vf, probs), chain(passthrough=True))
    assert sum(isinstance(v, VadFrame) for v in out.values) == len(probs)
    assert len(utts(out.values)) == 1
    bad = marbles("-a|", {"a": 3}, buffer_utterance())
    assert bad.error is not None and "put vad() and hysteresis() before it" in str(bad.error)


def test_memory_bounded_over_a_long_stream(vf: Callable[..., VadFrame]) -> None:
    s = UtteranceSettings(pre_roll_ms=300, max_ms=3000)
    cut = UtteranceCutter(s)
    lengths = []
    for k in range(16000 * 120 // W):  # two minutes of continuous speech
        f = vf(k, 0.9)
        object.__setattr__(f, "speech", True)
        if k == 0:
            cut.speech_start(0, 16000)
        for u in cut.frame(f):
            lengths.append(u.audio_end - u.audio_start)
        retained = cut.audio.end - cut.audio.start
        assert retained <= 16000 * (3.0 + 0.3 + LOOKBACK_S) + 2 * W
    assert len(lengths) >= 39 and max(lengths) <= 3 * 16000 + W


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_ms": 1000}, r"max_ms \(1000\) must exceed"),
        (
            {"pre_roll_ms": -5},
            r"^buffer_utterance: pre_roll_ms must be .* in \[0, 2000\] ms, got -5$",
        ),
        (
            {"post_roll_ms": float("nan")},
            r"buffer_utterance: post_roll_ms must be a finite number in \[0, 2000\] ms, got nan",
        ),
        ({"min_ms": 40000}, "min_ms .* must be below max_ms"),
        (
            {"max_gap_ms": 0},
            r"buffer_utterance: max_gap_ms must be .* in \(0, 600000\] ms or none, got 0$",
        ),
    ],
)
def test_bad_config(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        buffer_utterance(**kw)


def test_gap_closes_speech_and_utterance_together(vf: Callable[..., VadFrame]) -> None:
    # the default chain: both operators time the same 2 s gap; the utterance is emitted once and
    # hysteresis is no longer in speech (its SpeechEnd passes through at the same time)
    probs = [0.05] * 5 + [0.9] * 15
    h, b = hysteresis(), buffer_utterance(passthrough=True)
    out = marbles(seq(len(probs), ""), frames(vf, probs), lambda src: src.pipe(h, b))
    (u,) = utts(out.values)
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    assert [(e.start, e.end, e.reason) for e in ends] == [(5 * W, 20 * W, "gap")]
    assert (u.start, u.end, u.reason) == (5 * W, 20 * W, "gap")
    t = at(19, len(probs)) + 2.0
    assert out.ticks[out.values.index(u)] == pytest.approx(t)
    assert out.ticks[out.values.index(ends[0])] == pytest.approx(t)


def test_flicker_around_threshold_is_one_utterance(vf: Callable[..., VadFrame]) -> None:
    # 10 speech windows then 40 alternating 0.45 / 0.55 (between neg_threshold and threshold)
    probs = [0.05] * 12 + [0.9] * 10 + [0.45, 0.55] * 20 + [0.05] * 12
    out = marbles(seq(len(probs)), frames(vf, probs), chain(pre_roll_ms=300, post_roll_ms=200))
    (u,) = utts(out.values)
    assert (u.start, u.end, u.reason) == (12 * W, 62 * W, "silence")
    assert (u.audio_start, u.audio_end) == (12 * W - 4800, 62 * W + 3200)
    assert np.array_equal(u.samples[:, 0], ramp(u.audio_start, u.audio_end))
    assert out.completed


def test_flicker_of_short_bursts_gives_no_utterance(vf: Callable[..., VadFrame]) -> None:
    # bursts of 2 speech windows (64 ms < min_speech 250 ms) separated by 6 silent ones (a
    # run of silence ends a segment at its 5th window: 4 * 512 samples >= 100 ms)
    probs = ([0.05] * 6 + [0.9] * 2) * 10 + [0.05] * 6
    out = marbles(seq(len(probs)), frames(vf, probs), chain())
    assert utts(out.values) == [] and out.completed
