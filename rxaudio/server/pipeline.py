"""The server's operator chain, built once from options, and its items encoded as events.

Both ways in (the server microphone and client microphones) use this chain, in two phases::

    audio -> conform(16 kHz mono) -> reframe(512)              (phase 1, on arrival)
          -> [WindowBatcher: one Silero call for the next window of every session]
          -> share() -+-> vad -> hysteresis -> buffer_utterance -> vad, speech_start,
                      |                                            speech_end, utterance
                      +-> reframe(1600) -> level()               -> level        (10/s)
                      +-> reframe(1600) -> spectrogram(log_mel)  -> spectrogram  (10/s)
    with transcription (``serve --transcribe``), the utterances also go on to
          utterance -> transcribe (its thread, PocketSphinx in a child process)
                    -> observe_on(the loop, thread-safe)                  -> transcript

Phase 1 cuts every session's audio into the model's 512-sample windows. The
:class:`WindowBatcher` then scores the pending window of every session in one batched
onnxruntime call (``BatchedSileroScorer.score_batch``) and hands each window on to its session's
phase 2, whose ``vad`` operator takes the precomputed probability through a
:class:`PrefetchScorer`. The ``vad``, ``hysteresis``, ``buffer_utterance``, ``level`` and
``spectrogram`` operators are the library's own; ``hysteresis`` and ``buffer_utterance`` follow
an Observable of settings, so a client's ``config`` message retunes its running pipeline. The
speech chain runs fused (:func:`~rxaudio.core.fuse.fuse`): one Rx operator whose window goes
from ``vad`` to ``hysteresis`` to ``buffer_utterance`` by plain calls, same outputs.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import reactivex as rx
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable
from reactivex.subject import Subject

from ..core.check import all_finite
from ..core.fuse import fuse
from ..frames import (
    AudioFrame,
    FeatureFrame,
    LevelFrame,
    SettingsRejected,
    SpeechEnd,
    SpeechStart,
    Transcript,
    Utterance,
    VadFrame,
)
from ..operators import vad
from ..pipeline import registry
from ..pipeline.launch import ChainElement, parse_chain
from .metrics import ServerMetrics
from .options import (
    BACKENDS,
    HYSTERESIS_KEYS,
    PIPELINE_RATE,
    SPEECH_CHAIN,
    UTTERANCE_KEYS,
    ChainOptions,
    Settings,
    check_settings,
    default_settings,
)

if TYPE_CHECKING:
    from ..vad.silero import BatchedSileroScorer, BatchedStream

__all__ = [  # the options are declared in .options (light: `rxaudio serve --help` reads them)
    "BACKENDS",
    "HYSTERESIS_KEYS",
    "PIPELINE_RATE",
    "SPEECH_CHAIN",
    "UTTERANCE_KEYS",
    "ChainOptions",
    "Settings",
    "check_settings",
    "default_settings",
]

WINDOW = 512  # Silero's window at 16 kHz
DISPLAY_BLOCK = 1600  # level and spectrogram every 100 ms
SPEC_MELS = 64
SPEC_FLOOR_DB = -60.0  # log-mel dB mapped to 0..255 for the page
SPEC_CEIL_DB = 40.0
# every session's chain, as launch strings built through the registry: the speech chain
# (SPEECH_CHAIN, in .options) and the display branches, by event, on one shared stream of
# 100 ms blocks
DISPLAY_BLOCKS = f"reframe size={DISPLAY_BLOCK}"
DISPLAY_CHAINS = {"level": "level", "spectrogram": f"spectrogram kind=log_mel n_mels={SPEC_MELS}"}
FUSE_STAGES = True  # run adjacent stage-based elements as one operator (False: for comparisons)


@dataclass(frozen=True, slots=True)
class TranscriptionFailed:
    """The recogniser of a session failed: its transcripts stop, its speech events go on."""

    message: str


class PrefetchScorer:
    """A :class:`~rxaudio.vad.base.Scorer` for one session of a batched Silero model.

    The :class:`WindowBatcher` scores a session's windows in batches across sessions and hands
    each probability over with its window: :meth:`deliver` puts ``(window index, samples,
    probability)`` in a one-window slot and pushes the window into the session's chain, whose
    ``vad`` takes it back through :meth:`score` within that same push. ``score`` checks the
    slot holds the window vad asks for (by its index in the stream, counted from 0, and by its
    samples); ``deliver`` checks the chain took it. A mismatch either way raises (the session
    fails with the message), so a probability can never be used for another window or be left
    for a later one. A window nobody scored ahead (the zero-padded last one, at the end of the
    stream) is scored on its own, after every batched one, so the model state stays exact.
    """

    def __init__(self, shared: BatchedSileroScorer) -> None:
        self.stream: BatchedStream = shared.stream()
        self.sample_rate = self.stream.sample_rate
        self.window_size = self.stream.window_size
        self.asked = 0  # windows vad has asked for so far (the next one's index)
        self._slot: tuple[int, np.ndarray, float] | None = None
        self._delivering = False

    @property
    def handle(self) -> int:
        """The stream's handle in the shared scorer."""
        return self.stream.handle

    def reset(self) -> None:
        """Forget the handed-over probability, the window count and the stream state."""
        self._slot = None
        self.asked = 0
        self.stream.reset()

    def deliver(
        self, frame: AudioFrame, probability: float, push: Callable[[AudioFrame], Any]
    ) -> None:
        """``push(frame)`` with its precomputed ``probability``; raise if vad did not take it.

        ``frame`` is one full window at ``frame.start`` (model-rate samples from 0).
        """
        index, rest = divmod(frame.start, self.window_size)
        if rest or frame.n != self.window_size or self._delivering:
            raise RuntimeError(
                f"PrefetchScorer: cannot hand over the window at sample {frame.start} "
                f"({frame.n} samples)"
                + (" while another is being pushed" if self._delivering else "")
            )
        self._slot = (index, frame.samples[:, 0], probability)
        self._delivering = True
        try:
            push(frame)
        finally:
            self._delivering = False
            left, self._slot = self._slot, None
        if left is not None:
            raise RuntimeError(
                f"PrefetchScorer: the window at sample {frame.start} was scored but the "
                "session's vad did not ask for it (the chain is not subscribed, or its framing "
                "differs from phase 1's)"
            )

    def score(self, window: np.ndarray) -> float:
        """The probability of ``window``: the handed-over one, or scored alone when none is."""
        k = self.asked
        self.asked += 1
        slot = self._slot
        if slot is None:
            if self._delivering:
                raise RuntimeError(
                    f"PrefetchScorer: vad asked for window {k} (sample {k * self.window_size}) "
                    "beyond the one window the batcher handed over"
                )
            return self.stream.score(window)
        self._slot = None
        index, w, p = slot
        # the same samples, compared as bytes: the window is a view of the one handed over
        # (a tenth of np.array_equal's cost; stricter only for -0.0 against 0.0)
        if index != k or w.tobytes() != window.tobytes():
            raise RuntimeError(
                f"PrefetchScorer: the batcher handed over window {index} (sample "
                f"{index * self.window_size}) but vad asked for window {k} (sample "
                f"{k * self.window_size})" + ("" if index != k else " with other samples")
            )
        return p

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        """One :meth:`score` per row."""
        return np.array([self.score(w) for w in windows], dtype=np.float32)

    def close(self) -> None:
        """Unregister from the shared scorer (again: no effect)."""
        self._slot = None
        self.stream.close()


class WindowSink(Protocol):
    """What the batcher needs of a session."""

    scorer: PrefetchScorer | None

    def push_window(self, frame: AudioFrame, arrival: float, probability: float | None) -> None:
        """Continue phase 2 with a window (and its probability when the batcher scored it)."""
        ...

    def fail(self, exc: Exception) -> None:
        """End the session with an error (its window could not be scored or pushed)."""
        ...


@dataclass(slots=True)
class _Entry:
    """One item of a session's queue: a window, or (``frame`` None) the end of its stream."""

    frame: AudioFrame | None
    arrival: float
    done: Callable[[], None] | None = None  # the end: what to run after the last window
    probability: float | None = None  # set when a round scored the window


class WindowBatcher:
    """Collects each session's next 512-sample window and scores them in one call.

    ``add`` queues a window. When every registered stream has a window waiting, ``run`` is
    scheduled at once (``call_soon``); otherwise it waits at most ``max_wait`` seconds for the
    others, so clients whose frames arrive at different moments still share a call. ``run``
    goes round by round (one window per session per call, as the model state requires) until
    nothing is pending. A lone client therefore waits for nobody; many clients trade at most
    ``max_wait`` of latency for a batch that costs a fraction of separate calls.

    Ordering, by construction:

    * Each session has one FIFO queue, from ``add`` to its ``push_window``: its full windows,
      its short last window (pushed unscored, in its place) and its end (:meth:`end`: the
      session completes its chain only after every window queued before). Nothing of a session
      is pushed around the queue.
    * ``run`` is not re-entrant. A push can reach code that calls ``run`` again (a session's
      ``close`` from inside another's chain, say); that call returns at once and the running
      loop, which checks the queues after every push, delivers the rest in order. A push never
      starts inside another push.
    * A round scores the head window of each queue and marks it scored in place; delivery then
      pops scored heads in order and hands each probability over with its window
      (:meth:`PrefetchScorer.deliver`). A session dropped, failed or closed meanwhile just has
      no queue (or no scorer) any more; other sessions' entries are untouched.
    * A failure is one session's: a batch that cannot be scored is scored again stream by
      stream (the model state changes only when a call succeeds), and only the streams that
      fail alone fail their session; an exception out of a session's push fails that session.
    """

    def __init__(
        self,
        metrics: ServerMetrics,
        loop: asyncio.AbstractEventLoop,
        shared: BatchedSileroScorer | None = None,
        *,
        max_wait: float = 0.005,
    ) -> None:
        if shared is None:
            from ..vad.silero import BatchedSileroScorer

            shared = BatchedSileroScorer(PIPELINE_RATE)
        self.shared = shared
        self.metrics = metrics
        self.loop = loop
        self.max_wait = max_wait
        self.pending: dict[WindowSink, deque[_Entry]] = {}
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._now = False
        self._running = False

    def add(self, sink: WindowSink, frame: AudioFrame, arrival: float) -> None:
        """Queue ``frame`` of ``sink``: a full window to score, or its short last one."""
        q = self.pending.get(sink)
        if q is None:
            q = self.pending[sink] = deque()
        q.append(_Entry(frame, arrival))
        self._schedule()

    def end(self, sink: WindowSink, done: Callable[[], None]) -> None:
        """Run ``done`` after every window of ``sink`` queued so far was pushed.

        At once, unless a ``run`` is under way (``done`` is called from inside a push): then
        that run calls ``done`` when it reaches the end of ``sink``'s queue.
        """
        self.pending.setdefault(sink, deque()).append(_Entry(None, 0.0, done))
        self.run()

    def drop(self, sink: WindowSink) -> None:
        """Forget a session's pending windows (an :meth:`end` still runs, in order)."""
        q = self.pending.get(sink)
        if q is None:
            return
        ends = [e for e in q if e.frame is None]
        if ends:
            self.pending[sink] = deque(ends)
        else:
            del self.pending[sink]

    def _schedule(self) -> None:
        if self._running:  # the running loop picks it up
            return
        if len(self.pending) >= len(self.shared):  # everyone is here: no reason to wait
            if not self._now:
                if self._timer is not None:
                    self._timer.cancel()
                self._now = True
                self._timer = self.loop.call_soon(self.run)
        elif self._timer is None:
            self._timer = self.loop.call_later(self.max_wait, self.run)

    def run(self) -> None:
        """Score and forward everything pending, one window per session per call."""
        if self._running:  # re-entered from inside a push: the outer loop delivers it all
            return
        self._running = True
        try:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self._now = False
            while self.pending:
                self._score_round()
                self._deliver()
        finally:
            self._running = False

    @staticmethod
    def _needs_score(sink: WindowSink, e: _Entry) -> bool:
        return (
            e.frame is not None
            and e.probability is None
            and e.frame.n == WINDOW
            and sink.scorer is not None
        )

    def _score_round(self) -> None:
        batch: list[tuple[PrefetchScorer, _Entry, WindowSink]] = []
        for sink, q in self.pending.items():
            head = q[0]
            if self._needs_score(sink, head):
                assert sink.scorer is not None and head.frame is not None
                batch.append((sink.scorer, head, sink))
        if not batch:
            return
        windows = {s.handle: e.frame.samples[:, 0] for s, e, _ in batch if e.frame is not None}
        try:
            probs = self.shared.score_batch(windows)
        except Exception:  # find whose window it is: a call changes no state when it fails
            probs = {}
            for scorer, _, sink in batch:
                try:
                    probs[scorer.handle] = self.shared.score(scorer.handle, windows[scorer.handle])
                except Exception as exc:
                    self._fail(sink, exc)
        self.metrics.batch.observe(len(batch))
        for scorer, e, _ in batch:
            if scorer.handle in probs:
                e.probability = probs[scorer.handle]

    def _deliver(self) -> None:
        for sink in list(self.pending):
            while True:
                q = self.pending.get(sink)
                if not q:
                    break
                e = q[0]
                if self._needs_score(sink, e):
                    break  # the next round scores it
                q.popleft()
                if not q:
                    del self.pending[sink]
                try:
                    if e.done is not None:
                        e.done()
                    else:
                        assert e.frame is not None
                        sink.push_window(e.frame, e.arrival, e.probability)
                except Exception as exc:  # one session's failure, never the round's
                    self._fail(sink, exc)

    def _fail(self, sink: WindowSink, exc: Exception) -> None:
        self.drop(sink)
        sink.fail(exc)


def _u8_rows(values: np.ndarray) -> str:
    """Quantise log-mel rows (dB) to uint8 over a fixed range, base64 encoded (row-major).

    NaN reads as the floor, +inf as the ceiling."""
    scaled = (values - SPEC_FLOOR_DB) * (255.0 / (SPEC_CEIL_DB - SPEC_FLOOR_DB))
    if not all_finite(scaled):  # rare: the common case skips a pass
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    q = np.rint(scaled, out=scaled)
    np.maximum(q, 0.0, out=q)  # np.clip's bounds, without its Python wrapper
    np.minimum(q, 255.0, out=q)
    return base64.b64encode(q.astype(np.uint8).tobytes()).decode("ascii")


def encode_item(item: Any, events: tuple[str, ...]) -> dict[str, Any] | None:
    """Turn one chain output item into a protocol event (``None`` to send nothing).

    The event is the item's one dict form (``to_dict()``, ``docs/events.md``), the same the
    JSONL and label sinks write, plus only what is the protocol's own: a spectrogram carries
    its rows as uint8 ``data`` over ``db_range`` instead of ``values``; a rejected setting is
    sent as a ``bad_config`` error. The session adds an utterance's ``id``, ``url`` and
    ``file``, a transcript's ``id`` (its utterance's), and every speech event's ``seq``.
    """
    if isinstance(item, VadFrame):
        return item.to_dict() if "vad" in events else None
    if isinstance(item, SpeechStart | SpeechEnd | Utterance | LevelFrame | Transcript):
        return item.to_dict()
    if isinstance(item, FeatureFrame):
        d = item.to_dict(values=False)
        d["db_range"] = [SPEC_FLOOR_DB, SPEC_CEIL_DB]
        d["data"] = _u8_rows(item.values)
        return d
    if isinstance(item, SettingsRejected):
        return {"type": "error", "code": "bad_config", "message": item.message}
    if isinstance(item, TranscriptionFailed):
        return {"type": "error", "code": "transcribe_failed", "message": item.message}
    return None


def _pick(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def pick(s: Mapping[str, Any]) -> dict[str, Any]:
        return {k: s[k] for k in keys if k in s}

    return pick


def _merge_now(branches: list[Observable[Any]]) -> Observable[Any]:
    """``merge`` of ``branches`` for one thread: each is subscribed at once, in order, and its
    items go straight to the observer; completes when all have, fails at the first error.

    ``rx.merge`` would schedule the subscriptions on the subscriber's scheduler (a loop turn
    late: a window pushed meanwhile would be lost) and takes a lock around every item; a
    session's branches all run on the event loop's thread, so neither is needed."""

    def subscribe(
        observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        left = [len(branches)]
        done = [False]
        subs = CompositeDisposable()

        def on_error(exc: Exception) -> None:
            if not done[0]:
                done[0] = True
                observer.on_error(exc)
                subs.dispose()

        def on_completed() -> None:
            left[0] -= 1
            if left[0] == 0 and not done[0]:
                done[0] = True
                observer.on_completed()

        on_next = observer.on_next
        for b in branches:
            if done[0]:
                break
            subs.add(b.subscribe(on_next, on_error, on_completed, scheduler=scheduler))
        return subs

    return Observable(subscribe)


@functools.cache
def _parsed(text: str) -> tuple[ChainElement, ...]:
    return tuple(parse_chain(text))


def _fused(*operators: Callable[[Observable[Any]], Observable[Any]]) -> list[Any]:
    return fuse(*operators) if FUSE_STAGES else list(operators)


def _built(text: str) -> Callable[[Observable[Any]], Observable[Any]]:
    """A chain string's operators, built through the registry (fresh ones for each session)."""
    built: Callable[[Observable[Any]], Observable[Any]] = rx.compose(
        *_fused(*(registry.make(e.name, **e.options) for e in _parsed(text)))
    )
    return built


class Chain:
    """Phase 2 of one session: call it on the Observable of its 16 kHz, 512-sample windows."""

    def __init__(
        self,
        options: ChainOptions,
        *,
        settings: Observable[Settings],
        scheduler: abc.SchedulerBase,
        scorer: PrefetchScorer | None,
        deliver: abc.SchedulerBase | None = None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.scheduler = scheduler
        self.scorer = scorer
        self.deliver = deliver  # where transcripts come back to (a thread-safe loop scheduler)

    def _vad(self) -> Callable[[Observable[AudioFrame]], Observable[VadFrame]]:
        scorer = self.scorer
        if scorer is None:
            return vad(self.options.backend, **self.options.vad)

        def factory(rate: int) -> PrefetchScorer:
            return scorer

        return vad(factory, rate=PIPELINE_RATE)

    def __call__(self, windows: Observable[AudioFrame]) -> Observable[Any]:
        s = self.options.settings
        # A Subject (a session's windows) already multicasts; share() would add a second
        # subject and an observer hop to every window. Anything else is shared once.
        audio = windows if isinstance(windows, Subject) else windows.pipe(ops.share())
        fixed = self.options.fixed
        speech = audio.pipe(
            *_fused(
                self._vad(),
                registry.make(
                    "hysteresis",
                    **_pick(HYSTERESIS_KEYS)(s),
                    settings=self.settings.pipe(ops.map(_pick(HYSTERESIS_KEYS))),
                    **fixed.get("hysteresis", {}),
                ),
                registry.make(
                    "buffer_utterance",
                    **_pick(UTTERANCE_KEYS)(s),
                    passthrough=True,
                    settings=self.settings.pipe(ops.map(_pick(UTTERANCE_KEYS))),
                    scheduler=self.scheduler,
                    **fixed.get("buffer_utterance", {}),
                ),
            )
        )
        branches: list[Observable[Any]] = [speech]
        if self.options.transcribe is not None:
            # the utterances again, after the speech branch has passed each on; transcripts
            # come from the recognition thread and go back to the loop's thread
            speech = speech.pipe(ops.share())
            text = speech.pipe(
                registry.make("transcribe", **self.options.transcribe),
                ops.catch(lambda exc, _: rx.of(TranscriptionFailed(str(exc)))),
            )
            if self.deliver is not None:
                text = text.pipe(ops.observe_on(self.deliver))
            branches = [speech, text]
        events = self.options.events
        shown = [DISPLAY_CHAINS[e] for e in events if e in DISPLAY_CHAINS]
        if shown:
            display = audio.pipe(_built(DISPLAY_BLOCKS), ops.share())
            branches.extend(display.pipe(_built(text)) for text in shown)
        # Subscribed here and now, in order: rx.merge would schedule the subscriptions on the
        # subscriber's scheduler (the asyncio loop: one turn later), and a window pushed
        # before then (a batcher round that ran first) would be lost to vad.
        return _merge_now(branches)
