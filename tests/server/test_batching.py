"""The window batcher under interleavings of sessions, configs, closes and nested runs.

Every session's vad must see its own windows, in order, with the probabilities an unbatched
Silero gives for the same audio, whatever the other sessions do meanwhile. The reference for a
session is the same audio and the same live settings (applied after the same number of its
windows) through an unbatched :class:`Session`, alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reactivex import abc
from reactivex.disposable import Disposable
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxaudio.frames import (
    FeatureFrame,
    LevelFrame,
    SettingsRejected,
    SpeechEnd,
    SpeechStart,
    Utterance,
    VadFrame,
)
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import WINDOW, ChainOptions, WindowBatcher
from rxaudio.server.sessions import Session

EVENTS = ("level", "vad", "spectrogram")
CONFIGS: tuple[dict[str, float], ...] = (
    {"threshold": 0.3},
    {"threshold": 0.7, "min_silence_ms": 300.0},
    {"min_speech_ms": 100.0, "pre_roll_ms": 0.0},
    {"threshold": 0.5, "min_silence_ms": 100.0, "post_roll_ms": 400.0},
)


def _metrics() -> ServerMetrics:
    return ServerMetrics()


class _NoTimers(AsyncIOScheduler):
    """The server's scheduler, except that timed actions (the gap timers) never fire.

    The reference runs synchronously, so a gap timer firing in a slow batched run would be a
    difference this test is not about.
    """

    def schedule_relative(
        self, duetime: Any, action: abc.ScheduledAction[Any], state: Any = None
    ) -> abc.DisposableBase:
        if self.to_seconds(duetime) > 0:
            return Disposable()
        return super().schedule_relative(duetime, action, state)

    def schedule_absolute(
        self, duetime: datetime | float, action: abc.ScheduledAction[Any], state: Any = None
    ) -> abc.DisposableBase:
        return Disposable()


class Probe(Session):
    """A Session that records its chain's items, fed audio and configs, and runs hooks.

    ``item_hooks`` run inside a push, deep in the chain (while its next VadFrame passes);
    ``push_hooks`` run inside a push, right after the window went through the chain.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.items: list[Any] = []
        self.fed: list[np.ndarray] = []
        self.configs: list[tuple[int, dict[str, float]]] = []
        self.pushed = 0
        self.item_hooks: list[Callable[[], None]] = []
        self.push_hooks: list[Callable[[], None]] = []
        super().__init__(*args, **kw)

    def feed(self, samples: np.ndarray, arrival: float | None = None) -> None:
        before = self.received
        super().feed(samples, arrival)
        if self.received > before:
            self.fed.append(samples)

    def push_scored(self, *args: Any, **kw: Any) -> None:
        super().push_scored(*args, **kw)
        self.pushed += 1
        if self.push_hooks:
            self.push_hooks.pop(0)()

    def configure(self, settings: dict[str, float]) -> Any:
        if not self.closed:
            self.configs.append((self.pushed, dict(settings)))
        return super().configure(settings)

    def _on_item(self, item: Any) -> None:
        self.items.append(item)
        super()._on_item(item)
        if isinstance(item, VadFrame) and self.item_hooks:
            self.item_hooks.pop(0)()

    def _vad_frame(
        self, a: int, b: int, p: float, speech: bool, index: int, pending: int | None
    ) -> None:
        # a direct path's window (no VadFrame made): recorded as the frame it stands for
        super()._vad_frame(a, b, p, speech, index, pending)
        if not self.graph.out.closed:  # (the graph drops what comes after it closed)
            self.items.append(VadFrame.trusted(a, b, 16000, p, None, speech, index, pending))
            if self.item_hooks:
                self.item_hooks.pop(0)()


def _probe(sid: str, batcher: WindowBatcher | None, loop: asyncio.AbstractEventLoop) -> Probe:
    return Probe(
        sid,
        sample_rate=16000,
        channels=1,
        options=ChainOptions(events=EVENTS),
        out_dir=None,
        metrics=_metrics(),
        loop=loop,
        scheduler=_NoTimers(loop),
        batcher=batcher,
    )


def _alone(p: Probe) -> list[Any]:
    """The items of ``p``'s audio and configs through an unbatched session, alone."""
    ref = _probe("ref-" + p.id, None, p.loop)
    audio = np.concatenate(p.fed) if p.fed else np.zeros((0, 1), np.float32)
    configs = list(p.configs)
    n = audio.shape[0]
    for k, i in enumerate(range(0, n + WINDOW, WINDOW)):  # one window per feed
        while configs and configs[0][0] <= k:
            ref.configure(configs.pop(0)[1])
        if i < n:
            ref.feed(audio[i : i + WINDOW])
    ref.close()
    assert ref.failed is None
    return ref.items


def _same(got: list[Any], want: list[Any]) -> None:
    """Equal item streams, the speech items and the display items each in their own order
    (display runs on arrival, speech when vad's window is scored): probabilities within 1e-5
    (batched kernels may round), the rest exact."""
    display = (LevelFrame, FeatureFrame)
    if got is not want:
        _same_order(
            [x for x in got if not isinstance(x, display)],
            [x for x in want if not isinstance(x, display)],
        )
        _same_order(
            [x for x in got if isinstance(x, display)], [x for x in want if isinstance(x, display)]
        )


def _same_order(got: list[Any], want: list[Any]) -> None:

    def key(x: Any) -> tuple[Any, ...]:
        if isinstance(x, VadFrame):
            return ("vad", x.start, x.end, x.index, x.speech, x.pending)
        if isinstance(x, SpeechStart | SpeechEnd | SettingsRejected):
            return (x,)
        if isinstance(x, Utterance):
            return ("utt", x.start, x.end, x.audio_start, x.audio_end, x.reason)
        if isinstance(x, LevelFrame):
            return ("level", x.start, x.end)
        if isinstance(x, FeatureFrame):
            return ("spec", x.start, x.values.shape)
        return (type(x).__name__,)

    assert [key(x) for x in got] == [key(x) for x in want]
    for a, b in zip(got, want, strict=True):
        if isinstance(a, VadFrame):
            assert abs(a.probability - b.probability) <= 1e-5
        elif isinstance(a, Utterance):
            assert np.array_equal(a.samples, b.samples)
        elif isinstance(a, LevelFrame):
            assert (a.rms_db, a.peak_db) == (b.rms_db, b.peak_db)
        elif isinstance(a, FeatureFrame):
            assert np.array_equal(a.values, b.values)


def _audio(speech: np.ndarray, offset: int, n: int) -> np.ndarray:
    x = np.roll(speech, -offset)[:n]
    return np.ascontiguousarray(x.reshape(-1, 1).astype(np.float32))


# ---- regressions: interleavings that made an innocent session fail --------------------------


async def test_a_session_started_behind_a_queued_round_loses_no_window(speech: np.ndarray) -> None:
    """The reported failure (of the old mailbox): ``vad at sample 1536: PrefetchScorer: ...``.

    Session ``a`` starts and gets its first 1536 samples in the turn of the loop in which
    ``b``'s window queued a round with ``call_soon`` (a client's start and first audio read in
    one go, as the server did while a config flood kept its turns long; the shared source's
    session, created by its first frame; a synchronous ``run`` from another session's close).
    The chain used to subscribe one turn later (``rx.merge`` scheduled its subscriptions on
    the loop), so the round pushed ``a``'s three windows into a Subject nobody listened to
    while their probabilities stayed queued; ``a``'s next window then met window 0's.
    """
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop)
    b = _probe("b", batcher, loop)
    await asyncio.sleep(0)
    xa, xb = _audio(speech, 16000, 8192), _audio(speech, 40000, 8192)
    b.feed(xb[:512])  # everyone has a window: a round is queued at once
    a = _probe("a", batcher, loop)  # a config flood makes such crowded turns common
    a.feed(xa[:1536])
    await asyncio.sleep(0)  # the queued round runs
    for i in range(1536, 8192, 1024):
        a.feed(xa[i : i + 1024])
        b.feed(xb[i - 1024 : i])
        await asyncio.sleep(0)
    b.feed(xb[7168:])
    a.close()
    b.close()
    assert a.failed is None and b.failed is None
    assert not batcher.pending
    for p in (a, b):
        _same(p.items, _alone(p))


@pytest.mark.parametrize("batched", [True, False])
async def test_a_session_takes_audio_before_the_loop_turns(
    speech: np.ndarray, batched: bool
) -> None:
    """Its chain listens from construction: no window is lost (unbatched ones were, silently)."""
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop) if batched else None
    p = _probe("p", batcher, loop)
    p.feed(_audio(speech, 0, 4000))
    p.close()
    assert p.failed is None
    assert [x.start for x in p.items if isinstance(x, VadFrame)] == list(range(0, 4000, WINDOW))
    _same(p.items, _alone(p))


async def test_one_sessions_failing_push_leaves_the_others_in_step(speech: np.ndarray) -> None:
    """A push that raises (a full disk under ``_on_item``, say) fails that session only.

    It used to escape ``run()`` between two pushes of a round: the sessions after it in the
    round had their window scored but never pushed, so their next window arrived after a gap,
    which vad zero-fills, and met the wrong probability (``vad at sample 1536: ...``).
    """
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop)
    bad, a, c = (_probe(s, batcher, loop) for s in ("bad", "a", "c"))
    await asyncio.sleep(0)

    def explode() -> None:
        raise OSError("No space left on device")

    bad.item_hooks.extend([lambda: None] * 3 + [explode])
    escaped: list[Any] = []  # what escaped into the loop (the server's case: a timer's run)
    loop.set_exception_handler(lambda _loop, ctx: escaped.append(ctx))
    xs = [_audio(speech, o, 6000) for o in (0, 12000, 30000)]
    for i in range(0, 6000, 700):
        for p, x in zip((bad, a, c), xs, strict=True):
            p.feed(x[i : i + 700])
        await asyncio.sleep(0)  # everyone has a window: the round runs now
    loop.set_exception_handler(None)
    for p in (bad, a, c):
        p.close()
    assert a.failed is None and c.failed is None
    assert bad.failed is not None and "No space left" in bad.failed
    assert not escaped
    for p in (a, c):
        _same(p.items, _alone(p))


async def test_a_window_that_cannot_be_scored_fails_its_session_only(speech: np.ndarray) -> None:
    """A batch that raises is scored again stream by stream; only the bad stream's session fails.

    It used to fail every session whose window was in that batch.
    """
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop)
    bad, a, c = (_probe(s, batcher, loop) for s in ("bad", "a", "c"))
    await asyncio.sleep(0)
    assert bad.stream is not None
    poisoned = bad.stream.handle
    real = batcher.shared.score_batch

    def score_batch(windows: Any) -> dict[int, float]:
        if poisoned in windows and bad.pushed >= 2:
            raise ValueError("BatchedSileroScorer: the model refused this window")
        return real(windows)

    batcher.shared.score_batch = score_batch  # type: ignore[method-assign]
    xs = [_audio(speech, o, 6000) for o in (0, 12000, 30000)]
    for i in range(0, 6000, 1000):
        for p, x in zip((bad, a, c), xs, strict=True):
            p.feed(x[i : i + 1000])
        await asyncio.sleep(0)
    for p in (bad, a, c):
        p.close()
    assert a.failed is None and c.failed is None
    assert bad.failed is not None and "refused this window" in bad.failed
    assert len(batcher.shared) == 0  # every stream unregistered, the failed one too
    for p in (a, c):
        _same(p.items, _alone(p))


async def test_closing_a_session_from_inside_a_push_keeps_the_round_in_order(
    speech: np.ndarray,
) -> None:
    """A close (and its short last window) during a round must not run a round of its own.

    Pushing ``b``'s window closes ``c``; ``c``'s close used to call ``run()`` re-entrantly,
    which scored and pushed ``a``'s *next* window before the outer round pushed ``a``'s
    current one (a zero-filled gap in ``a``'s vad, then ``vad at sample 1536: ...``), and
    pushed ``b``'s next window into ``b``'s chain while ``b`` was still in its own push.
    """
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop)
    b, c, a = (_probe(s, batcher, loop) for s in ("b", "c", "a"))
    await asyncio.sleep(0)
    xa, xb, xc = (_audio(speech, o, 8000) for o in (5000, 20000, 35000))
    b.item_hooks.extend([lambda: None] * 3 + [c.close])
    b.feed(xb[:4096])
    c.feed(xc[:4000])  # a short last window to flush at close
    a.feed(xa[:4096])  # two or more windows pending when c closes
    batcher.run()
    b.feed(xb[4096:])
    a.feed(xa[4096:])
    for p in (a, b, c):
        p.close()
    assert [p.failed for p in (a, b, c)] == [None, None, None]
    assert c.closed and not batcher.pending
    for p in (a, b, c):
        _same(p.items, _alone(p))


# ---- the property: any schedule, every session as if alone ----------------------------------

Step = tuple[Any, ...]
_session = st.integers(0, 7)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("start")),
        st.tuples(st.just("feed"), _session, st.integers(1, 2600)),
        st.tuples(st.just("feed"), _session, st.sampled_from([512, 1024, 2048])),
        st.tuples(st.just("config"), _session, st.integers(0, len(CONFIGS) - 1)),
        st.tuples(st.just("close"), _session),
        st.tuples(st.just("run")),
        st.tuples(st.just("turn")),
        st.tuples(st.just("wait")),
        # run inside a push of session i: deep in its chain (item) or right after it (push)
        st.tuples(st.just("item-close"), _session, _session),
        st.tuples(st.just("item-run"), _session),
        st.tuples(st.just("item-start"), _session),
        st.tuples(st.just("item-feed"), _session, _session, st.integers(1, 1500)),
        st.tuples(st.just("push-config"), _session, st.integers(0, len(CONFIGS) - 1)),
        st.tuples(st.just("push-close"), _session, _session),
    ),
    min_size=1,
    max_size=30,
)


async def _schedule(plan: list[Step], offsets: list[int], speech: np.ndarray) -> list[Probe]:
    loop = asyncio.get_running_loop()
    batcher = WindowBatcher(_metrics(), loop, max_wait=0.001)
    sessions: list[Probe] = []
    audio: list[np.ndarray] = []
    cursor: list[int] = []

    def start() -> Probe | None:
        if len(sessions) >= 6:
            return None
        k = len(sessions)
        p = _probe(f"s{k}", batcher, loop)
        sessions.append(p)
        audio.append(_audio(speech, offsets[k % len(offsets)], 24000))
        cursor.append(0)
        return p

    def pick(i: int) -> tuple[int, Probe]:
        return i % len(sessions), sessions[i % len(sessions)]

    def feed(i: int, n: int) -> None:
        k, p = pick(i)
        x = audio[k][cursor[k] : cursor[k] + n]
        if x.shape[0]:
            cursor[k] += x.shape[0]
            p.feed(x)

    def void(_: Any) -> None:
        return None

    start()
    start()
    for step in plan:
        kind = step[0]
        if kind == "start":
            start()
        elif kind == "feed":
            feed(step[1], step[2])
        elif kind == "config":
            pick(step[1])[1].configure(CONFIGS[step[2]])
        elif kind == "close":
            pick(step[1])[1].close()
        elif kind == "run":
            batcher.run()
        elif kind == "turn":
            await asyncio.sleep(0)
        elif kind == "wait":
            await asyncio.sleep(0.002)
        elif kind == "item-close":
            other = pick(step[2])[1]
            pick(step[1])[1].item_hooks.append(other.close)
        elif kind == "item-run":
            pick(step[1])[1].item_hooks.append(batcher.run)
        elif kind == "item-start":
            pick(step[1])[1].item_hooks.append(lambda: void(start()))
        elif kind == "item-feed":
            j, n = step[2], step[3]
            pick(step[1])[1].item_hooks.append(lambda j=j, n=n: feed(j, n))
        elif kind == "push-config":
            p = pick(step[1])[1]
            p.push_hooks.append(lambda p=p, c=CONFIGS[step[2]]: void(p.configure(c)))
        elif kind == "push-close":
            other = pick(step[2])[1]
            pick(step[1])[1].push_hooks.append(other.close)
    for p in list(sessions):
        p.item_hooks.clear()
        p.push_hooks.clear()
    for p in list(sessions):
        p.close()
    await asyncio.sleep(0)
    assert not batcher.pending
    return sessions


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, offsets=st.lists(st.integers(0, 60000), min_size=1, max_size=6))
# schedules the random ones reach only now and then: a session closing itself, or another
# one, from inside a push while windows are queued; a nested run; a start inside a push
@example(plan=[("feed", 0, 513), ("item-close", 0, 0), ("run",)], offsets=[0])
@example(plan=[("feed", 0, 512), ("item-close", 0, 0), ("run",)], offsets=[0])
@example(
    plan=[
        ("feed", 0, 2048),
        ("feed", 1, 1800),
        ("item-close", 0, 1),
        ("item-run", 1),
        ("item-start", 0),
        ("run",),
        ("feed", 2, 1024),
        ("push-close", 2, 0),
        ("feed", 1, 2000),
        ("turn",),
    ],
    offsets=[0, 30000, 50000],
)
def test_any_schedule_gives_every_session_what_it_gets_alone(
    plan: list[Step], offsets: list[int], speech: np.ndarray
) -> None:
    async def check() -> None:
        sessions = await _schedule(plan, offsets, speech)
        for p in sessions:
            assert p.failed is None, (p.id, p.failed)
            assert p.closed
            _same(p.items, _alone(p))

    asyncio.run(check())
