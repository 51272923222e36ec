"""``hysteresis``: the operator in virtual time, live settings, gaps and flicker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rxaudio.errors import ConfigError
from rxaudio.frames import SettingsRejected, SpeechEnd, SpeechStart, VadFrame
from rxaudio.operators import hysteresis
from rxaudio.testing import run_marbles

W = 512


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (
            {"threshold": 1.5},
            r"^hysteresis: threshold must be a finite number in \(0, 1\], got 1\.5$",
        ),
        (
            {"threshold": 0.0},
            r"^hysteresis: threshold must be a finite number in \(0, 1\], got 0\.0$",
        ),
        ({"threshold": 0.5, "neg_threshold": 0.7}, "must not be above threshold"),
        (
            {"neg_threshold": -0.1},
            r"hysteresis: neg_threshold must be .* in \[0, 1\] or none, got -0\.1",
        ),
        (
            {"min_speech_ms": -1},
            r"hysteresis: min_speech_ms must be .* in \[0, 60000\] ms, got -1$",
        ),
        (
            {"min_silence_ms": float("inf")},
            r"hysteresis: min_silence_ms must be a finite number in \[0, 60000\] ms, got inf",
        ),
    ],
)
def test_bad_settings(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        hysteresis(**kw)


def kinds(values: list[Any]) -> str:
    sym = {SpeechStart: "S", SpeechEnd: "E", SettingsRejected: "R"}
    return "".join(
        sym.get(type(v), "1" if isinstance(v, VadFrame) and v.speech else "0") for v in values
    )


def lookup(vf: Callable[..., VadFrame], probs: str) -> dict[str, VadFrame]:
    """Marble names a..: window k with probability 0.9 for 'x' in ``probs`` else 0.1."""
    return {chr(97 + k): vf(k, 0.9 if c == "x" else 0.1) for k, c in enumerate(probs)}


def seq(n: int, end: str = "|") -> str:
    """Marbles of n windows, one every 2 ticks: window k at tick 2k + 1 (reactivex reads
    consecutive letters as one name, so they are separated by dashes)."""
    return "-" + "-".join(chr(97 + k) for k in range(n)) + "-" + end


def test_marbles_normal_flow_and_completion(vf: Callable[..., VadFrame]) -> None:
    # windows: 2 silent, 9 speech, 5 silent (100 ms = 3.1 windows of silence ends it)
    pattern = "..xxxxxxxxx....."
    out = run_marbles(seq(len(pattern)), lookup(vf, pattern), hysteresis(min_speech_ms=250))
    # windows 0-8 are not (yet) confirmed speech; window 9 confirms it; from 11 on silence, and
    # window 15 (4 * 512 = 2048 >= 1600 samples after 11; 14 has only 1536) ends it
    assert kinds(out.values) == "000000000" + "S" + "111111" + "E0"
    starts = [v for v in out.values if isinstance(v, SpeechStart)]
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    assert starts[0].start == 2 * W
    assert (ends[0].start, ends[0].end, ends[0].reason) == (2 * W, 11 * W, "silence")
    # the start is announced at the window that made the segment certain (k = 9)
    assert out.ticks[out.values.index(starts[0])] == 2 * 9 + 1
    assert out.completed


def test_marbles_open_speech_closed_at_completion(vf: Callable[..., VadFrame]) -> None:
    out = run_marbles(seq(10), lookup(vf, "xxxxxxxxxx"), hysteresis())
    end = out.values[-1]
    assert isinstance(end, SpeechEnd) and end.reason == "end_of_stream" and end.end == 10 * W
    assert out.events[-1].kind == "C"


def test_marbles_error_mid_speech(vf: Callable[..., VadFrame]) -> None:
    boom = RuntimeError("mic unplugged")
    out = run_marbles(seq(10, "#"), lookup(vf, "xxxxxxxxxx"), hysteresis(), error=boom)
    end = out.values[-1]
    assert isinstance(end, SpeechEnd) and end.reason == "error"
    assert out.error is boom


def test_marbles_dispose_mid_stream(vf: Callable[..., VadFrame]) -> None:
    out = run_marbles(seq(10), lookup(vf, "xxxxxxxxxx"), hysteresis(), dispose_at=10)
    assert len(out.values) == 5  # windows at ticks 1, 3, 5, 7, 9; nothing after dispose
    assert not any(isinstance(v, SpeechEnd) for v in out.values)
    assert not out.completed and out.error is None


def test_resubscribe_gets_fresh_state(vf: Callable[..., VadFrame]) -> None:
    op = hysteresis()
    first = run_marbles(seq(10), lookup(vf, "xxxxxxxxxx"), op)
    second = run_marbles(seq(10), lookup(vf, "xxxxxxxxxx"), op)
    assert kinds(first.values) == kinds(second.values)
    assert kinds(first.values).count("S") == 1


def test_live_settings_applied_and_rejected(vf: Callable[..., VadFrame]) -> None:
    from reactivex.testing import ReactiveTest, TestScheduler

    sched = TestScheduler()
    # 0.6 is speech at threshold 0.5; settings at tick 3 raise it to 0.8 (then 0.6 is not),
    # at tick 5 a bad one (neg above threshold) is refused and 0.8 stays.
    live = sched.create_hot_observable(
        ReactiveTest.on_next(106, {"threshold": 0.8}),
        ReactiveTest.on_next(110, {"threshold": 0.5, "neg_threshold": 0.9}),
        ReactiveTest.on_next(112, {"nonsense": 1}),
    )
    frames = {chr(97 + k): vf(k, 0.6) for k in range(12)}
    out = run_marbles(seq(12), frames, hysteresis(min_speech_ms=0, settings=live), scheduler=sched)
    rejected = [v for v in out.values if isinstance(v, SettingsRejected)]
    assert [r.operator for r in rejected] == ["hysteresis", "hysteresis"]
    assert "must not be above threshold" in rejected[0].message
    assert "unknown setting(s) nonsense" in rejected[1].message
    assert rejected[0].to_dict()["type"] == "settings_rejected"
    # speech started at window 0 (p 0.6 >= 0.5); after the raise (tick 6) 0.6 < neg 0.65, and
    # after 100 ms of that it ends at the first window scored under the new threshold (3)
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    assert len(ends) == 1 and ends[0].reason == "silence" and ends[0].end == 3 * W
    # the refused settings changed nothing: no new speech although 0.6 >= 0.5
    assert kinds(out.values).count("S") == 1
    assert out.completed


def test_wrong_item_type_is_an_error() -> None:
    from rxaudio.testing import frame

    out = run_marbles("-a|", {"a": frame(0)}, hysteresis())
    assert out.error is not None and "put vad() before it" in str(out.error)


TS = 0.032  # virtual seconds per marble character


def test_gap_ends_open_segment_at_last_frame_end(vf: Callable[..., VadFrame]) -> None:
    # 12 speech windows, then the input stops without completing: after max_gap_ms of
    # scheduler time the segment ends at the last frame's end (reason gap)
    out = run_marbles(seq(12, ""), lookup(vf, "x" * 12), hysteresis(max_gap_ms=500), timespan=TS)
    end = out.values[-1]
    assert isinstance(end, SpeechEnd)
    assert (end.start, end.end, end.reason) == (0, 12 * W, "gap")
    last_frame_tick = seq(12, "").index("l") * TS
    assert out.ticks[-1] == pytest.approx(last_frame_tick + 0.5)
    assert not out.completed and out.error is None


def test_gap_then_input_resumes_with_a_new_onset(vf: Callable[..., VadFrame]) -> None:
    # 12 speech windows, 1 s without input, 12 more: two segments, the first ended by the gap
    names = "abcdefghijkl"
    frames = {c: vf(k, 0.9) for k, c in enumerate(names)}
    later = "mnopqrstuvwx"
    frames.update({c: vf(24 + k, 0.9) for k, c in enumerate(later)})
    src = "-" + "-".join(names) + "-" * 32 + "-".join(later) + "-|"
    out = run_marbles(src, frames, hysteresis(max_gap_ms=500), timespan=TS)
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    starts = [v for v in out.values if isinstance(v, SpeechStart)]
    assert [(e.start, e.end, e.reason) for e in ends] == [
        (0, 12 * W, "gap"),
        (24 * W, 36 * W, "end_of_stream"),
    ]
    assert [s.start for s in starts] == [0, 24 * W]


def test_gap_timer_not_armed_in_silence_and_per_subscription(vf: Callable[..., VadFrame]) -> None:
    op = hysteresis(max_gap_ms=500)
    quiet = run_marbles(seq(12, ""), lookup(vf, "." * 12), op, timespan=TS)
    assert not any(isinstance(v, SpeechEnd) for v in quiet.values)
    # a segment too short to keep (3 windows < 250 ms) ends silently at the gap
    short = run_marbles(seq(3, ""), lookup(vf, "xxx"), op, timespan=TS)
    assert not any(isinstance(v, SpeechStart | SpeechEnd) for v in short.values)
    again = run_marbles(seq(12, ""), lookup(vf, "x" * 12), op, timespan=TS)
    assert [v.reason for v in again.values if isinstance(v, SpeechEnd)] == ["gap"]


def test_gap_disabled_or_disposed(vf: Callable[..., VadFrame]) -> None:
    off = run_marbles(seq(12, ""), lookup(vf, "x" * 12), hysteresis(max_gap_ms=None), timespan=TS)
    assert not any(isinstance(v, SpeechEnd) for v in off.values)
    gone = run_marbles(
        seq(12, ""), lookup(vf, "x" * 12), hysteresis(max_gap_ms=500), timespan=TS, dispose_at=30
    )
    assert not any(isinstance(v, SpeechEnd) for v in gone.values)


@pytest.mark.parametrize("gap", [0, -5, 600_001, float("nan"), True])
def test_bad_max_gap(gap: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^hysteresis: max_gap_ms must be a finite number in \(0, 600000\] ms or none, got ",
    ):
        hysteresis(max_gap_ms=gap)


def wseq(probs: list[float], vf: Callable[..., VadFrame], end: str = "|") -> tuple[str, dict]:
    """Marbles with any number of windows (names w0, w1, ...), window k at tick 2k + 1."""
    names = [f"w{k}" for k in range(len(probs))]
    return "-" + "-".join(names) + "-" + end, {
        n: vf(k, p) for k, (n, p) in enumerate(zip(names, probs, strict=True))
    }


def test_marbles_flicker_around_threshold_is_one_segment(vf: Callable[..., VadFrame]) -> None:
    # after 10 speech windows, 40 alternating 0.45 / 0.55: the 0.45s are below threshold but
    # above neg_threshold (0.35), so they neither end the segment nor start a new one
    probs = [0.9] * 10 + [0.45, 0.55] * 20 + [0.0] * 10
    src, frames = wseq(probs, vf)
    out = run_marbles(src, frames, hysteresis(), timespan=TS)
    starts = [v for v in out.values if isinstance(v, SpeechStart)]
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    assert [s.start for s in starts] == [0]
    assert [(e.start, e.end, e.reason) for e in ends] == [(0, 50 * W, "silence")]
    vfs = [v for v in out.values if isinstance(v, VadFrame)]
    assert len(vfs) == 60
    assert [v.speech for v in vfs[8:54]] == [True] * 46  # confirmed at window 8, ended at 54
    assert not any(v.speech for v in vfs[54:])
    assert out.completed


def test_marbles_flicker_with_dips_below_neg_threshold(vf: Callable[..., VadFrame]) -> None:
    # single windows below neg_threshold (0.2) between speech: each dip is shorter than
    # min_silence_ms (100 ms = 3.1 windows), so the segment holds
    probs = [0.9] * 10 + [0.2, 0.9] * 15 + [0.0] * 10
    src, frames = wseq(probs, vf)
    out = run_marbles(src, frames, hysteresis(), timespan=TS)
    ends = [v for v in out.values if isinstance(v, SpeechEnd)]
    assert [(e.start, e.end) for e in ends] == [(0, 40 * W)]
    assert sum(isinstance(v, SpeechStart) for v in out.values) == 1


def test_marbles_silence_only_stream(vf: Callable[..., VadFrame]) -> None:
    src, frames = wseq([0.1] * 40, vf)
    out = run_marbles(src, frames, hysteresis(), timespan=TS)
    assert [type(v) for v in out.values] == [VadFrame] * 40
    assert all(v.speech is False and v.pending is None for v in out.values)
    assert out.completed
    # input stopping in silence: the gap timer never fires (nothing open)
    src, frames = wseq([0.1] * 40, vf, end="")
    out = run_marbles(src, frames, hysteresis(max_gap_ms=100), timespan=TS)
    assert len(out.values) == 40 and not out.completed
    assert max(out.ticks) == pytest.approx(src.index("w39") * TS)
