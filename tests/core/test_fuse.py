"""One executor over a run of stages: the same items, errors, completions, settings and timers
as the stages run apart.

Every test runs a chain twice, once with each element behind its own Rx hop (:func:`apart`: one
executor per stage, as separate Rx operators) and once as one run of stages (``pipe`` joins
adjacent stage-based elements by itself; :func:`fuse` groups them explicitly), and compares what
came out: each item's exact fields (probabilities unrounded, audio bytes), each event's virtual
tick, and the error's type, element name and sample index.
"""

from __future__ import annotations

import gc
import itertools
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import pytest
import reactivex as rx
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler

from rxaudio.core.element import Element, Step, map_operator, stage_operator
from rxaudio.core.fuse import Fused, fuse
from rxaudio.core.runtime import Stages
from rxaudio.data import speech_sample
from rxaudio.errors import StreamError
from rxaudio.frames import AudioFrame, SettingsRejected, SpeechEnd, SpeechStart, Utterance, VadFrame
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.testing import MarbleResult, run_marbles

Make = Callable[[], Sequence[Callable[[Observable[Any]], Observable[Any]]]]


def fingerprint(x: Any) -> Any:
    """Everything that identifies an item (exact numbers and audio bytes) or an error."""
    if isinstance(x, BaseException):
        return (
            type(x).__name__,
            str(x),
            getattr(x, "operator", None),
            getattr(x, "sample_index", None),
        )
    if isinstance(x, VadFrame):
        a = x.audio
        audio = None if a is None else (a.start, a.sample_rate, a.samples.tobytes())
        return (
            "vad",
            x.start,
            x.end,
            x.sample_rate,
            x.probability,
            x.speech,
            x.pending,
            x.index,
            audio,
        )
    if isinstance(x, Utterance):
        return ("utterance", x.to_dict(), x.samples.tobytes())
    if isinstance(x, AudioFrame):
        return ("audio", x.start, x.sample_rate, x.samples.tobytes())
    to_dict = getattr(x, "to_dict", None)
    return (type(x).__name__, to_dict() if callable(to_dict) else x)


def events(out: MarbleResult) -> list[tuple[float, str, Any]]:
    return [(e.tick, e.kind, fingerprint(e.value)) for e in out.events]


def apart(*elements: Callable[[Observable[Any]], Observable[Any]]) -> Any:
    """The elements composed with an Rx hop after each: every stage runs in its own executor."""

    def hop(element: Callable[[Observable[Any]], Observable[Any]]) -> Any:
        def apply(source: Observable[Any]) -> Observable[Any]:
            out = element(source)
            return Observable(lambda obs, sch=None: out.subscribe(obs, scheduler=sch))

        return apply

    return rx.compose(*(hop(e) for e in elements))


def chained(elements: Sequence[Callable[[Observable[Any]], Observable[Any]]], joined: bool) -> Any:
    """The chain as one run of stages (``fuse``) or ``apart``."""
    return rx.compose(*fuse(*elements)) if joined else apart(*elements)


def both(make: Make, run: Callable[[Callable[[Observable[Any]], Observable[Any]]], Any]) -> Any:
    """``run`` on the stages apart and as one run (fresh elements each); both results."""
    plain = run(apart(*make()))
    fused_ops = fuse(*make())
    assert any(isinstance(op, Fused) for op in fused_ops)
    return plain, run(rx.compose(*fused_ops))


# --- fuse() itself -------------------------------------------------------------------------


def test_fuse_groups_adjacent_fusable_elements_and_leaves_the_rest() -> None:
    a = map_operator("a", lambda x: x + 1)
    b = map_operator("b", lambda x: x * 2)
    c = map_operator("c", lambda x: x - 3)
    other = ops.map(lambda x: x)
    out = fuse(a, b, other, c)
    assert len(out) == 3 and isinstance(out[0], Fused) and out[1] is other and out[2] is c
    assert out[0].name == "a+b" and out[0].parts == (a, b)
    again = fuse(out[0], c)  # a fused element opens up and fuses with its neighbours
    assert len(again) == 1 and isinstance(again[0], Fused) and again[0].parts == (a, b, c)
    assert fuse(a) == [a] and fuse() == []
    assert (
        rx.of(1, 2, 3).pipe(*fuse(a, b, other, c), ops.to_list()).run()
        == rx.of(1, 2, 3).pipe(a, b, other, c, ops.to_list()).run()
    )


def test_every_stage_based_element_is_fusable() -> None:
    assert all(
        isinstance(e, Element) and e.fusable is not None
        for e in (vad("energy"), hysteresis(), buffer_utterance(), map_operator("m", str))
    )
    with pytest.raises(ValueError):
        Fused([map_operator("m", str)])


def test_pipe_runs_adjacent_stages_as_one_executor() -> None:
    subscribed: list[int] = []

    def counted(obs: Any, sch: Any = None) -> Any:
        subscribed.append(1)
        return rx.of(1, 2, 3).subscribe(obs, scheduler=sch)

    src: Observable[int] = Observable(counted)
    a, b, c = map_operator("a", lambda x: x + 1), map_operator("b", str), _sum_chain()()[0]
    out = src.pipe(a, b)
    assert isinstance(out, Stages) and out.source is src
    assert [s.name for s in out.specs] == ["a", "b"]
    assert [s.name for s in cast(Stages, c(out)).specs] == ["a", "b", "s1"]
    assert [s.name for s in cast(Stages, out.pipe(fuse(b, a)[0])).specs] == ["a", "b", "b", "a"]
    # anything else between two elements is a boundary: each side is its own run
    other = src.pipe(a, ops.map(lambda x: x), b)
    assert isinstance(other, Stages) and [s.name for s in other.specs] == ["b"]
    assert out.pipe(ops.to_list()).run() == ["2", "3", "4"]
    assert len(subscribed) == 1  # one run: the source is subscribed once, not once per stage
    assert src.pipe(a, b, ops.to_list()).run() == src.pipe(apart(a, b), ops.to_list()).run()


# --- marbles in virtual time ---------------------------------------------------------------


class _Collect:
    """A stage that keeps a running sum and emits it every second item, and at flush."""

    def __init__(self, name: str, fail_at: int | None = None) -> None:
        self.name, self.fail_at, self.total, self.n = name, fail_at, 0, 0

    def push(self, item: int) -> list[Any]:
        if item == self.fail_at:
            raise ValueError(f"{self.name} refuses {item}")
        self.total += item
        self.n += 1
        return [(self.name, self.total)] if self.n % 2 == 0 else []

    def flush(self) -> list[Any]:
        return [(self.name, "flush", self.total)]


def _sum_chain(fail_at: dict[str, int] | None = None) -> Make:
    fail_at = fail_at or {}

    def make() -> list[Element[Any, Any]]:
        return [
            stage_operator("s1", lambda: _Collect("s1", fail_at.get("s1"))),
            map_operator("m", tuple),
            stage_operator("s2", lambda: _Collect2("s2", fail_at.get("s2"))),
        ]

    return make


class _Collect2(_Collect):
    """Takes the first stage's outputs (tuples) and re-emits each with its own count."""

    def push(self, item: Any) -> list[Any]:
        if item[-1] == self.fail_at:
            raise ValueError(f"{self.name} refuses {item!r}")
        self.n += 1
        return [(self.name, self.n, item)]


NUMS = {c: i for i, c in enumerate("abcdefgh", start=1)}


@pytest.mark.parametrize(
    ("source", "fail_at"),
    [
        ("-a-b-c-d-e-|", {}),
        ("-a-b-c-d-#", {}),
        ("-a-b-c-d-e-f-|", {"s1": 5}),
        ("-a-b-c-d-e-f-|", {"s2": 10}),  # the second stage fails on the first stage's output
        ("-a-b-c-d-|", {"s2": 10}),  # ... output of its flush
        ("-|", {}),
    ],
)
def test_marbles_of_a_fused_chain_equal_the_unfused(source: str, fail_at: dict[str, int]) -> None:
    boom = RuntimeError("upstream")
    plain, fused = both(
        _sum_chain(fail_at), lambda chain: events(run_marbles(source, NUMS, chain, error=boom))
    )
    assert plain == fused
    assert fused[-1][1] in "CE"
    joined = events(run_marbles(source, NUMS, rx.compose(*_sum_chain(fail_at)()), error=boom))
    assert joined == fused  # compose/pipe join the adjacent stages by themselves


def test_marbles_error_names_the_stage_that_failed() -> None:
    _, fused = both(
        _sum_chain({"s2": 10}),
        lambda chain: run_marbles("-a-b-c-d-e-|", NUMS, chain),
    )
    err = fused.error
    assert isinstance(err, StreamError) and err.operator == "s2"
    assert isinstance(err.__cause__, ValueError)
    # its traceback is kept as text: frames would keep the whole run alive with the error
    assert err.__cause__.__traceback__ is None
    assert "in push" in err.__cause__.__notes__[0] and "refuses" in err.__cause__.__notes__[0]
    # completion pushed s1's flush through s2 before s2's flush: s2 saw it after (a+b)
    assert fused.values[0] == ("s2", 1, ("s1", 3))


def test_marbles_dispose_mid_stream_and_resubscribe() -> None:
    op = rx.compose(*fuse(*_sum_chain()()))
    first = run_marbles("-a-b-c-d-e-f-|", NUMS, op, dispose_at=6)
    assert [e.kind for e in first.events] == ["N"] and not first.completed  # (a+b) only
    again = run_marbles("-a-b-c-d-e-f-|", NUMS, op)  # fresh state for a new subscription
    assert [v[1] for v in again.values] == [1, 2, 3, 4, "flush"] and again.completed


def test_marbles_partial_failure_emits_its_outputs_first() -> None:
    from rxaudio.core.element import Fusable, PartialFailure

    def open_step() -> Step:
        def push(x: int) -> list[int]:
            if x == 3:
                raise PartialFailure([30], ValueError("three"))
            return [x]

        return Step(push, list)

    half = Element("half", lambda s: s, fusable=Fusable("half", open_step))
    out = run_marbles("-a-b-c-d-|", NUMS, rx.compose(*fuse(half, map_operator("x", int))))
    assert out.values == [1, 2, 30]
    assert isinstance(out.error, StreamError) and out.error.operator == "half"


# the speech state machines on scripted probabilities, with live settings and gap timers

W = 512
SUB = 100  # run_marbles subscribes at virtual second 100
TICK = 0.01  # virtual seconds per marble character: a window about every 32 ms


def _vf(k: int, p: float) -> VadFrame:
    col = (np.arange(k * W, (k + 1) * W) % 1000 / 1000.0).astype(np.float32)
    return VadFrame(k * W, (k + 1) * W, 16000, p, AudioFrame(col.reshape(-1, 1), 16000, k * W))


def _speech_lookup(pattern: str) -> dict[str, VadFrame]:
    p = {"x": 0.9, ".": 0.1, "m": 0.45}
    return {f"w{k}": _vf(k, p[c]) for k, c in enumerate(pattern)}


def _marbles(pattern: str, gaps: dict[int, int], end: str) -> str:
    """One window per 2 ticks; ``gaps`` adds silent ticks (no input) before window k."""
    parts = []
    for k in range(len(pattern)):
        parts.append("-" * (1 + gaps.get(k, 0)) + f"w{k}")
    return "".join(parts) + "-" + end


def _speech_chain(sched: TestScheduler, live: list[tuple[float, Any]], gap_ms: float) -> Make:
    """hysteresis ! buffer_utterance with one hot settings stream (split per element)."""

    def make() -> list[Element[Any, Any]]:
        hot = sched.create_hot_observable(
            [ReactiveTest.on_next(cast(int, t), v) for t, v in live]  # float ticks (seconds)
        )
        h_keys = ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms")

        def pick(keys: tuple[str, ...]) -> Callable[[Any], Any]:
            return lambda d: {k: v for k, v in d.items() if k in keys} if isinstance(d, dict) else d

        return [
            hysteresis(
                min_speech_ms=100,
                max_gap_ms=gap_ms,
                settings=hot.pipe(ops.map(pick(h_keys))),
                scheduler=sched,
            ),
            buffer_utterance(
                pre_roll_ms=64,
                post_roll_ms=64,
                max_gap_ms=gap_ms,
                passthrough=True,
                settings=hot.pipe(ops.map(pick(("pre_roll_ms", "post_roll_ms", "bogus")))),
                scheduler=sched,
            ),
        ]

    return make


SPEECH = "..xxxxxxxxmmxx.....xxxxxxxxxxxxxx..xxxxx"


@pytest.mark.parametrize("end", ["|", "#"])
@pytest.mark.parametrize(
    "gaps",
    [{}, {12: 20}, {30: 40}],  # 0.2 s without input mid speech: the gap timers fire
)
def test_marbles_speech_chain_with_settings_and_gap_timers(gaps: dict[int, int], end: str) -> None:
    # settings at ticks between windows: a threshold change, a refused one (neg above
    # threshold), a non-mapping, an unknown name (refused by buffer_utterance only)
    live: list[tuple[float, Any]] = [
        (SUB + 0.09, {"threshold": 0.4, "post_roll_ms": 32}),
        (SUB + 0.25, {"neg_threshold": 0.95}),
        (SUB + 0.41, "not a mapping"),
        (SUB + 0.61, {"bogus": 1}),
    ]

    def run(chain: Callable[[Observable[Any]], Observable[Any]]) -> list[Any]:
        return events(
            run_marbles(
                _marbles(SPEECH, gaps, end),
                _speech_lookup(SPEECH),
                chain,
                error=RuntimeError("mic gone"),
                timespan=TICK,
                scheduler=sched,
            )
        )

    sched = TestScheduler()
    plain = run(apart(*_speech_chain(sched, live, 100.0)()))
    sched = TestScheduler()
    fused_ops = fuse(*_speech_chain(sched, live, 100.0)())
    assert len(fused_ops) == 1
    fused = run(rx.compose(*fused_ops))
    assert plain == fused
    kinds = [f[2][0] for f in fused if f[1] == "N"]
    assert "SettingsRejected" in kinds and "utterance" in kinds
    if gaps:  # the timers closed speech and the utterance with reason "gap"
        assert any(f[2][0] == "SpeechEnd" and f[2][1]["reason"] == "gap" for f in fused)


def test_upstream_error_closes_each_stage_in_order() -> None:
    outs = []
    for fused in (False, True):
        sched = TestScheduler()
        elements = _speech_chain(sched, [], 1000.0)()
        outs.append(
            run_marbles(
                _marbles("..xxxxxxxx", {}, "#"),
                _speech_lookup("..xxxxxxxx"),
                chained(elements, fused),
                error=RuntimeError("mic gone"),
                timespan=TICK,
                scheduler=sched,
            )
        )
    assert events(outs[0]) == events(outs[1])
    out = outs[1]
    # hysteresis ends the segment ("error"), buffer_utterance passes it through, then closes
    # the utterance with "error", then the error itself, unchanged
    end, utt = out.values[-2:]
    assert isinstance(end, SpeechEnd) and end.reason == "error"
    assert isinstance(utt, Utterance) and utt.reason == "error"
    assert isinstance(out.error, RuntimeError) and str(out.error) == "mic gone"


# --- the real speech chain under arbitrary chunking ----------------------------------------


@pytest.fixture(scope="module")
def speech10() -> np.ndarray:
    x, sr = sf.read(speech_sample(), dtype="float32")
    assert sr == 16000
    return np.asarray(x[: 10 * sr], dtype=np.float32)


def _feed(
    audio: np.ndarray,
    cuts: list[int],
    chain: Callable[[Observable[Any]], Observable[Any]],
    live: Subject[Any],
    configs: dict[int, dict[str, Any]],
    channels: int,
) -> list[Any]:
    """Push ``audio`` cut at ``cuts`` through ``chain``; ``configs[k]`` is sent before chunk k."""
    src: Subject[AudioFrame] = Subject()
    out: list[Any] = []
    src.pipe(chain).subscribe(out.append, lambda e: out.append(e), lambda: out.append("done"))
    bounds = [0, *sorted(set(cuts)), audio.shape[0]]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        if k in configs:
            live.on_next(configs[k])
        if b > a:
            x = np.repeat(audio[a:b].reshape(-1, 1), channels, axis=1)
            src.on_next(AudioFrame(x, 16000, a))
    src.on_completed()
    return out


def _real_chain(live: Subject[Any], corrupt_at: int | None = None) -> Make:
    """vad (silero) ! [a map that breaks one window's rate] ! hysteresis ! buffer_utterance."""

    def corrupt(v: Any) -> Any:
        if isinstance(v, VadFrame) and v.index == corrupt_at:
            return VadFrame(v.start, v.end, 8000, v.probability, v.audio, None, v.index)
        return v

    def make() -> list[Element[Any, Any]]:
        return [
            vad("silero"),
            map_operator("corrupt", corrupt),
            hysteresis(settings=live.pipe(ops.filter(lambda d: "threshold" in d))),
            buffer_utterance(
                passthrough=True, settings=live.pipe(ops.filter(lambda d: "threshold" not in d))
            ),
        ]

    return make


CONFIGS = st.sampled_from(
    [
        {"threshold": 0.3},
        {"threshold": 0.7, "min_silence_ms": 300.0},
        {"threshold": 0.2, "neg_threshold": 0.5},  # refused: neg above threshold
        {"pre_roll_ms": 0.0, "post_roll_ms": 400.0},
        {"max_ms": 1.0},  # refused by buffer_utterance
    ]
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(0, 160_000), max_size=40),
    configs=st.dictionaries(st.integers(0, 40), CONFIGS, max_size=4),
    channels=st.sampled_from([1, 2]),  # 2: vad converts through conform first
)
def test_speech_chain_fused_equals_unfused_under_any_chunking(
    speech10: np.ndarray, cuts: list[int], configs: dict[int, dict[str, Any]], channels: int
) -> None:
    results = []
    for fused in (False, True):
        live: Subject[Any] = Subject()
        elements = _real_chain(live)()
        chain = chained(elements, fused)
        results.append(
            [fingerprint(x) for x in _feed(speech10, cuts, chain, live, configs, channels)]
        )
    assert results[0] == results[1]
    assert results[1][-1] == (str.__name__, "done")
    assert sum(1 for r in results[1] if r[0] == "utterance") >= 1


@pytest.mark.parametrize("corrupt_at", [1, 20, 100])
def test_speech_chain_error_in_the_middle_stage_names_it(
    speech10: np.ndarray, corrupt_at: int
) -> None:
    results = []
    for fused in (False, True):
        live: Subject[Any] = Subject()
        elements = _real_chain(live, corrupt_at)()
        chain = chained(elements, fused)
        results.append(_feed(speech10, list(range(0, 160_000, 700)), chain, live, {}, 1))
    assert [fingerprint(x) for x in results[0]] == [fingerprint(x) for x in results[1]]
    err = results[1][-1]
    assert isinstance(err, StreamError) and err.operator == "hysteresis"
    assert err.sample_index == corrupt_at * W  # the window it was given
    assert "sample rate changed" in err.message
    if corrupt_at == 100:  # speech was open (3.2 s): closed with "error" before the error
        assert any(isinstance(x, Utterance) and x.reason == "error" for x in results[1])


def test_speech_chain_bad_audio_fails_in_vad_with_its_sample_index(speech10: np.ndarray) -> None:
    bad = speech10.copy()
    bad[5000] = np.nan
    results = []
    for fused in (False, True):
        live: Subject[Any] = Subject()
        elements = _real_chain(live)()
        chain = chained(elements, fused)
        results.append(_feed(bad, [4096, 8192], chain, live, {}, 1))
    assert [fingerprint(x) for x in results[0]] == [fingerprint(x) for x in results[1]]
    err = results[1][-1]
    assert isinstance(err, StreamError) and err.operator == "vad" and err.sample_index == 4096


def test_settings_rejected_carries_the_stage_name(speech10: np.ndarray) -> None:
    live: Subject[Any] = Subject()
    chain = rx.compose(*fuse(*_real_chain(live)()))
    out = _feed(speech10, [16000], chain, live, {1: {"max_ms": 1.0}}, 1)
    rejected = [x for x in out if isinstance(x, SettingsRejected)]
    assert len(rejected) == 1 and rejected[0].operator == "buffer_utterance"
    assert rejected[0].at is not None


def _rxaudio_cycles() -> list[str]:
    """rxaudio's objects and closures that only the cyclic collector would free, by name."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [
            getattr(o, "__qualname__", type(o).__qualname__)
            for o in gc.garbage
            if (getattr(o, "__module__", None) or type(o).__module__ or "").startswith("rxaudio")
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


@pytest.mark.parametrize("end", ["completed", "failed", "disposed"])
@pytest.mark.parametrize("fused", [False, True])
def test_a_chain_that_ends_leaves_no_reference_cycles(
    speech10: np.ndarray, fused: bool, end: str
) -> None:
    # A chain's stages hold its buffers (buffer_utterance's pre-roll: 256 kB); when the chain
    # ends, reference counting must free them, not Python's cyclic collector minutes later (the
    # server's sessions are such chains: tests/server/test_reclaim.py). Live settings and gap
    # timers included.
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        live: Subject[Any] = Subject()
        elements = _real_chain(live, corrupt_at=60 if end == "failed" else None)()
        chain = chained(elements, fused)
        src: Subject[AudioFrame] = Subject()
        out: list[Any] = []
        sub = src.pipe(chain).subscribe(out.append, out.append, lambda: out.append("done"))
        live.on_next({"threshold": 0.4})
        for a in range(0, 80_000, 1600):
            src.on_next(AudioFrame(speech10[a : a + 1600].reshape(-1, 1), 16000, a))
        if end == "disposed":
            sub.dispose()
        else:
            src.on_completed()
        assert (out[-1] == "done") is (end == "completed")
        assert any(isinstance(x, Utterance) for x in out)
        del sub, src, live, elements, chain
        assert _rxaudio_cycles() == []
    finally:
        if was:
            gc.enable()


class _Probe:
    """A live stage whose gap timer is always armed; it lets a test see when it is freed."""

    def __init__(self, refs: list[weakref.ref[_Probe]]) -> None:
        refs.append(weakref.ref(self))
        self.held = np.zeros(16000, np.float32)  # what a real stage would buffer

    def push(self, item: Any) -> list[Any]:
        return [item]

    def close(self, reason: str) -> list[Any]:
        return []

    def apply(self, settings: Any) -> None:
        pass

    def gap_seconds(self) -> float:
        return 0.5

    def on_gap(self) -> list[Any]:
        return []


@pytest.mark.parametrize("clock", ["virtual", "asyncio"])
@pytest.mark.parametrize("end", ["disposed", "completed", "failed", "upstream error"])
def test_an_ended_run_is_freed_by_reference_counting_alone(clock: str, end: str) -> None:
    # No cyclic collector at all: once the run ends, its stages (and their buffers) must go
    # the moment the last reference goes, though timers are pending in a scheduler that stays
    # alive (a virtual clock's queue keeps even cancelled items) and settings Subjects live on.
    import asyncio

    from reactivex.scheduler.eventloop import AsyncIOScheduler

    from rxaudio.operators._live import live_operator

    loop = asyncio.new_event_loop()
    sched: Any = TestScheduler() if clock == "virtual" else AsyncIOScheduler(loop)
    was = gc.isenabled()
    gc.disable()
    try:
        refs: list[weakref.ref[_Probe]] = []
        live: Subject[Any] = Subject()
        chain = rx.compose(
            live_operator("probe", lambda: _Probe(refs), live, sched),
            hysteresis(max_gap_ms=100.0, settings=live, scheduler=sched),
            buffer_utterance(passthrough=True, max_gap_ms=100.0, settings=live, scheduler=sched),
        )
        src: Subject[Any] = Subject()
        out: list[Any] = []
        sub = src.pipe(chain).subscribe(out.append, out.append, lambda: out.append("done"))
        live.on_next({"threshold": 0.4})
        for k in range(15):
            src.on_next(_vf(k, 0.9 if k > 2 else 0.1))
        assert len(refs) == 1 and refs[0]() is not None
        pending = sched._queue if clock == "virtual" else loop._scheduled  # type: ignore[attr-defined]
        assert pending  # the gap timers are armed
        if end == "disposed":
            sub.dispose()
        elif end == "failed":  # hysteresis refuses a rate change mid-speech
            src.on_next(VadFrame(15 * W, 16 * W, 8000, 0.9, None, None, 15))
        elif end == "completed":
            src.on_completed()
        elif end == "upstream error":
            src.on_error(RuntimeError("mic gone"))
        # speech was open when it ended (closed then by the stages that did not fail)
        assert any(isinstance(x, SpeechStart) for x in out)
        closed = any(isinstance(x, SpeechEnd) for x in out)
        assert closed is (end in ("completed", "upstream error"))
        if end == "failed":
            assert isinstance(out[-1], StreamError) and out[-1].operator == "hysteresis"
        del sub, chain, src
        # freed, though the error, the settings Subject and the scheduler are still held
        assert refs[0]() is None
        live.on_next({"threshold": 0.5})  # nobody listens any more
    finally:
        loop.close()
        if was:
            gc.enable()
