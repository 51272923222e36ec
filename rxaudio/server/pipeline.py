"""The server's per-session launch graph, built from options, and its items encoded as events.

Both ways in (the server microphone and client microphones) run this graph
(:class:`SessionGraph`)::

    audio -> conform(16 kHz mono)
      -+-> [before vad] -> vad -> hysteresis -> buffer_utterance -> vad, speech_start,
       |                                                            speech_end, utterance
       +-> reframe(1600) -+-> level        (10/s)
                          +-> spectrogram  (10/s)

The audio goes on in the frames it came in (``vad`` cuts its own windows; every element
gives the same output for any chunking of its input), so a session adds no reframing step of
its own to each frame.
    with transcription (``serve --transcribe``), the utterances also go on to
          utterance -> transcribe (its thread, PocketSphinx in a child process)
                    -> observe_on(the loop, thread-safe)                  -> transcript

Every run of adjacent stages is one operator of the stage executor
(:func:`~rxaudio.core.fuse.fuse`), pushed by plain calls; a tee is a loop over its branches.
With Silero, ``vad`` is split at its scorer (:class:`~rxaudio.operators.ScoredVad`): what
reaches it is cut into 512-sample windows on arrival, the :class:`WindowBatcher` scores the
next window of every session in one onnxruntime call (``BatchedSileroScorer.score_batch``) and
hands each probability, with its window's index, to that session's ``vad``
(:class:`~rxaudio.operators.ScoredWindow`). ``hysteresis`` and ``buffer_utterance`` follow an
Observable of settings, so a client's ``config`` message retunes its running pipeline.
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
from reactivex.disposable import CompositeDisposable, Disposable

from ..core.check import all_finite
from ..core.fuse import fuse
from ..dsp.framing import Reframer
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
from ..operators import ScoredWindow, vad
from ..operators._level import _level
from ..pipeline import registry
from ..pipeline.launch import ChainElement, ChainGraph, ChainTee, parse_chain
from .messages import ErrorCode, error_event
from .metrics import ServerMetrics
from .options import (
    BACKENDS,
    BRANCH_EVENTS,
    HYSTERESIS_KEYS,
    PIPELINE_RATE,
    SPEECH_CHAIN,
    UTTERANCE_KEYS,
    WINDOW,
    ChainOptions,
    Settings,
    _graph_events,
    _linked,
    check_settings,
    default_settings,
)
from .rounds import SpeechLane, _Observer, open_run

if TYPE_CHECKING:
    from ..core.caps import Caps
    from ..vad.silero import BatchedSileroScorer, BatchedStream

__all__ = [  # the options are declared in .options (light: `rxaudio serve --help` reads them)
    "BACKENDS",
    "HYSTERESIS_KEYS",
    "PIPELINE_RATE",
    "SPEECH_CHAIN",
    "UTTERANCE_KEYS",
    "WINDOW",
    "ChainOptions",
    "Settings",
    "check_settings",
    "default_settings",
]

DISPLAY_BLOCK = 1600  # level and spectrogram every 100 ms
SPEC_MELS = 64
SPEC_FLOOR_DB = -60.0  # log-mel dB mapped to 0..255 for the page
SPEC_CEIL_DB = 40.0
# every session's chain, as launch strings built through the registry: the speech chain
# (SPEECH_CHAIN, in .options) and the display branches, by event, on one shared stream of
# 100 ms blocks
DISPLAY_BLOCKS = f"reframe size={DISPLAY_BLOCK}"
DISPLAY_CHAINS = {"level": "level", "spectrogram": f"spectrogram kind=log_mel n_mels={SPEC_MELS}"}


@dataclass(frozen=True, slots=True)
class TranscriptionFailed:
    """The recogniser of a session failed: its transcripts stop, its speech events go on."""

    message: str


class WindowSink(Protocol):
    """What the batcher needs of a session: its stream of the shared scorer (``None`` once it
    failed) and where its scored windows go."""

    stream: BatchedStream | None

    def push_scored(self, index: int, probability: float, arrival: float) -> None:
        """Hand window ``index``'s probability to the session's ``vad`` (in its order)."""
        ...

    def fail(self, exc: Exception) -> None:
        """End the session with an error (its window could not be scored or pushed)."""
        ...


@dataclass(slots=True)
class _Entry:
    """One item of a session's queue: a window vad cut, or (``window`` None) the end."""

    window: np.ndarray | None  # (512,) float32, as vad cut it
    index: int  # its place in the session's stream of windows
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

    * Each session has one FIFO queue, from ``add`` to its ``push_scored``: the windows its vad
      cut and its end (:meth:`end`: the session completes its chain, and its vad scores its
      zero-padded last window itself, only after every window queued before). Nothing of a session
      is pushed around the queue.
    * ``run`` is not re-entrant. A push can reach code that calls ``run`` again (a session's
      ``close`` from inside another's chain, say); that call returns at once and the running
      loop, which checks the queues after every push, delivers the rest in order. A push never
      starts inside another push.
    * A round scores the head window of each queue and marks it scored in place; delivery then
      pops scored heads in order and hands each probability over with its window's index
      (a :class:`~rxaudio.operators.ScoredWindow`, checked by the session's vad). A session
      dropped, failed or closed meanwhile just has
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

    def add(self, sink: WindowSink, window: np.ndarray, index: int, arrival: float) -> None:
        """Queue window ``index`` of ``sink`` (as its vad cut it) to be scored."""
        q = self.pending.get(sink)
        if q is None:
            q = self.pending[sink] = deque()
        q.append(_Entry(window, index, arrival))
        self._schedule()

    def end(self, sink: WindowSink, done: Callable[[], None]) -> None:
        """Run ``done`` after every window of ``sink`` queued so far was pushed.

        At once, unless a ``run`` is under way (``done`` is called from inside a push): then
        that run calls ``done`` when it reaches the end of ``sink``'s queue.
        """
        self.pending.setdefault(sink, deque()).append(_Entry(None, -1, 0.0, done))
        self.run()

    def drop(self, sink: WindowSink) -> None:
        """Forget a session's pending windows (an :meth:`end` still runs, in order)."""
        q = self.pending.get(sink)
        if q is None:
            return
        ends = [e for e in q if e.window is None]
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
            self.metrics.flush()  # the round's tallied frames, events and latencies

    @staticmethod
    def _needs_score(sink: WindowSink, e: _Entry) -> bool:
        return e.window is not None and e.probability is None and sink.stream is not None

    def _score_round(self) -> None:
        batch: list[tuple[BatchedStream, _Entry, WindowSink]] = []
        windows: dict[int, np.ndarray] = {}
        for sink, q in self.pending.items():
            head = q[0]
            stream = sink.stream
            # _needs_score, inline: a window, not yet scored, of a session still scored
            if head.window is not None and head.probability is None and stream is not None:
                batch.append((stream, head, sink))
                windows[stream.handle] = head.window
        if not batch:
            return
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
        pending = self.pending
        for sink in list(pending):
            while True:
                q = pending.get(sink)
                if not q:
                    break
                e = q[0]
                if e.window is not None and e.probability is None and sink.stream is not None:
                    break  # the next round scores it (_needs_score, inline)
                q.popleft()
                if not q:
                    del pending[sink]
                try:
                    if e.done is not None:
                        e.done()
                    elif e.probability is not None:  # None: the session failed meanwhile
                        sink.push_scored(e.index, e.probability, e.arrival)
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
        if item.kind != "log_mel":  # mfcc, spectral: the rows as numbers (docs/events.md)
            return item.to_dict()
        d = item.to_dict(values=False)
        d["db_range"] = [SPEC_FLOOR_DB, SPEC_CEIL_DB]
        d["data"] = _u8_rows(item.values)
        return d
    if isinstance(item, SettingsRejected):
        return error_event(ErrorCode.BAD_CONFIG, item.message)
    if isinstance(item, TranscriptionFailed):
        return error_event(ErrorCode.TRANSCRIBE_FAILED, item.message)
    return None


def _pick(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def pick(s: Mapping[str, Any]) -> dict[str, Any]:
        return {k: s[k] for k in keys if k in s}

    return pick


Operator = Callable[[Observable[Any]], Observable[Any]]


class _Input:
    """The head of a run of stages: what is pushed into it goes to its executor by a plain call.

    The run is the executor's own (:func:`~rxaudio.core.fuse.fuse`: adjacent stage-based
    elements as one operator); this is only its source, an Observable whose one subscriber's
    callbacks are kept, so a push is ``on_next(item)``: no Subject, no lock of ours.
    """

    __slots__ = ("on_completed", "on_error", "on_next")

    def __init__(self) -> None:
        self.on_next: Callable[[Any], None] = _nothing
        self.on_error: Callable[[Exception], None] = _nothing
        self.on_completed: Callable[[], None] = _nothing

    def observable(self) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            self.on_next, self.on_error = observer.on_next, observer.on_error
            self.on_completed = observer.on_completed
            return Disposable()

        return Observable(subscribe)


def _nothing(*_: Any) -> None:
    """An input nobody listens to (yet, or any more)."""


def _run(
    operators: list[Operator],
    on_next: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    on_completed: Callable[[], None],
    scheduler: abc.SchedulerBase,
    subs: CompositeDisposable,
) -> _Input | _Observer:
    """Subscribe ``operators`` (fused, run by the executor) behind a fresh :class:`_Input`.

    When they are all stages (one run of the executor), the run is opened directly, as
    :class:`~rxaudio.core.runtime.Stages` opens it, with our callbacks as its observer and
    its entry as the input: an item pushed in and one given out skip an Rx observer wrapper
    each (the run's own flags end it, as that wrapper would)."""
    fused = fuse(*operators)
    specs = getattr(fused[0], "stages", ()) if len(fused) == 1 else ()
    if specs:
        return open_run(specs, on_next, on_error, on_completed, scheduler, subs)
    head = _Input()
    subs.add(
        head.observable()
        .pipe(*fused)
        .subscribe(on_next, on_error, on_completed, scheduler=scheduler)
    )
    return head


class _Outputs:
    """What a session graph has given since its owner last looked (the owner drains it).

    The graph's runs hold this and their inputs, never the graph or the session: a session
    that ends is freed by reference counting, with no cycle through its graph to break.
    """

    __slots__ = ("closed", "cut", "done", "error", "items", "open", "wake")

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.cut: deque[tuple[np.ndarray, int]] = deque()  # windows vad cut, to be scored
        self.error: Exception | None = None
        self.open = 0  # branches still running
        self.done = False
        self.closed = False
        self.wake: Callable[[], None] | None = None  # items came outside a push (timers, text)

    def item(self, item: Any) -> None:
        if not self.closed:
            self.items.append(item)
            if self.wake is not None:
                self.wake()

    def fail(self, exc: Exception) -> None:
        if not self.closed:
            self.closed = True
            self.error = exc
            if self.wake is not None:
                self.wake()

    def completed(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.closed:
            self.done = True
            if self.wake is not None:
                self.wake()


class SessionGraph:
    """One session's launch graph, built through the registry and run by the executor.

    ::

        audio -> [conform(16 kHz mono)] -+-> speech chain     -> items
                                         +-> reframe(1600) -+-> level
                                                            +-> spectrogram

    The speech chain is the session's ``--pipeline`` (elements before ``vad``, ``vad``,
    ``hysteresis``, ``buffer_utterance``; utterances on to ``transcribe`` when asked). Its
    display branches (``tee name=t ! ... t. ! spectral``) leave the way to ``vad`` where
    they were written (:attr:`ChainOptions.branches`); one that gives ``level`` or
    ``spectrogram`` stands in for the server's own 100 ms branch of that event, and a branch
    whose events the client did not ask for is not built. Each run
    of adjacent stages is one operator of the executor; a tee is a plain loop over its
    branches' inputs. With a batched ``scorer`` (a :class:`~rxaudio.vad.silero.BatchedStream`)
    ``vad`` is split at its scorer (:class:`~rxaudio.operators.ScoredVad`): what reaches it
    is cut into windows on arrival (:attr:`out` ``.cut``, for the batcher); their
    probabilities come back through :meth:`push_scored`, and the chain runs on from there.

    Everything the graph gives lands in :attr:`out` (items, windows to score, the first
    error, the end), which the owner drains after each call; ``out.wake`` is called when
    something lands outside a call (a gap timer, a transcript).

    With a batched ``scorer`` the speech chain runs behind a
    :class:`~rxaudio.server.rounds.SpeechLane` (:attr:`lane`): the same executor, with direct
    paths for the windows that change nothing but a few counters; ``quiet_path=False`` keeps
    the executor alone for every window (the reference the lanes are tested against).
    """

    def __init__(
        self,
        options: ChainOptions,
        *,
        sample_rate: int,
        channels: int,
        settings: Observable[Settings],
        scheduler: abc.SchedulerBase,
        scorer: BatchedStream | None = None,
        deliver: abc.SchedulerBase | None = None,
        quiet_path: bool = True,
    ) -> None:
        from ..operators import ScoredVad, resample
        from ..operators import channels as to_channels

        self.subs = subs = CompositeDisposable()
        self.out = out = _Outputs()
        self.cutter = cutter = ScoredVad(scorer) if scorer is not None else None
        self.lane: SpeechLane | None = None  # the default speech chain's direct paths
        s, fixed = options.settings, options.fixed
        later = [
            registry.make(
                "hysteresis",
                **_pick(HYSTERESIS_KEYS)(s),
                settings=settings.pipe(ops.map(_pick(HYSTERESIS_KEYS))),
                **fixed.get("hysteresis", {}),
            ),
            registry.make(
                "buffer_utterance",
                **_pick(UTTERANCE_KEYS)(s),
                passthrough=True,
                settings=settings.pipe(ops.map(_pick(UTTERANCE_KEYS))),
                scheduler=scheduler,
                **fixed.get("buffer_utterance", {}),
            ),
        ]
        # the elements before vad, in stretches between the points where branches leave
        wanted = set(options.events)
        given = {e for _, g in options.branches for e in _graph_events(g)}
        branch_at: dict[int, list[Any]] = {}
        if options.branches:
            caps_at = options.branch_caps()
            for k, g in options.branches:
                head = _branch(g, caps_at[k], wanted, out, scheduler, subs)
                if head is not None:
                    branch_at.setdefault(k, []).append(head)
        cuts = tuple(sorted(branch_at))
        segments = options.before_segments(cuts)
        bounds = sorted({0, *cuts, len(options.before)})
        speech_out: Callable[[Any], None] = out.item
        speech_done: Callable[[], None] = out.completed
        if options.transcribe is not None:
            # the utterances again, after the speech branch has passed each on; transcripts
            # come from the recognition thread and go back to the loop's thread
            out.open += 1
            text = _Input()
            chain: list[Operator] = [
                registry.make("transcribe", **options.transcribe),
                ops.catch(lambda exc, _: rx.of(TranscriptionFailed(str(exc)))),
            ]
            if deliver is not None:
                chain.append(ops.observe_on(deliver))
            subs.add(
                text.observable()
                .pipe(*chain)
                .subscribe(out.item, out.fail, out.completed, scheduler=scheduler)
            )
            speech_out = _tee([_Sink(out.item), text])
            speech_done = _tee_end([_Sink(completed=out.completed), text])
        n = len(options.before)
        tail = branch_at.get(n, []) if n else []  # branches right before vad
        fold = cutter is None and not tail  # unbatched, the last stretch runs in vad's run
        out.open += 1
        # vad scores its own windows in the chain, or takes them scored (batched)
        speech: Any
        if cutter is not None and quiet_path:  # the same run, common windows straight through
            specs = tuple(f for e in (cutter.element, *later) for f in e.stages)
            speech = SpeechLane(specs, cutter, speech_out, out.fail, speech_done, scheduler, subs)
            self.lane = speech
        else:
            speech = _run(
                [*(segments[-1] if fold else []), vad(options.backend, **options.vad), *later]
                if cutter is None
                else [cutter.element, *later],
                speech_out,
                out.fail,
                speech_done,
                scheduler,
                subs,
            )
        self.speech = speech
        # the way to vad, built from its end: each stretch feeds the next and the branches
        # that leave after it; batched, vad's input is cut into windows for the batcher (its
        # end is the batcher's: end_speech); unbatched, the whole chain ends with the input
        way: Any = speech if cutter is None else _Sink(_cutter(cutter, out))
        way_ends = cutter is None

        def attach(kids: list[Any]) -> None:
            nonlocal way, way_ends
            if kids:
                way = _Sink(_tee([way, *kids]), _tee_end([way, *kids] if way_ends else kids))
                way_ends = True

        attach(tail)
        for j in range(len(segments) - 1, -1, -1):
            seg = [] if fold and j == len(segments) - 1 else segments[j]
            if seg:
                done = way.on_completed if way_ends else _nothing
                way = _run(seg, way.on_next, out.fail, done, scheduler, subs)
                way_ends = True
            attach(branch_at.get(bounds[j], []) if bounds[j] != n or n == 0 else [])
        heads: list[Any] = [way]
        ends: list[Any] = [way] if way_ends else []
        # the server's display branches: one shared stream of 100 ms blocks, a branch per
        # event that no branch of --pipeline gives
        shown = [
            DISPLAY_CHAINS[e] for e in options.events if e in DISPLAY_CHAINS and e not in given
        ]
        if shown:
            branches = []
            for text_ in shown:
                out.open += 1
                branches.append(
                    _run(_built(text_), out.item, out.fail, out.completed, scheduler, subs)
                )
            display = _run(
                _built(DISPLAY_BLOCKS),
                _tee(branches),
                out.fail,
                _tee_end(branches),
                scheduler,
                subs,
            )
            heads.append(display)
            ends.append(display)
        # phase 1: any rate and channels to the model's 16 kHz mono (vad cuts the windows)
        phase1: list[Operator] = []
        if channels != 1:
            phase1.append(to_channels(1))
        if sample_rate != PIPELINE_RATE:
            phase1.append(resample(PIPELINE_RATE))
        self.input = (
            _run(phase1, _tee(heads), out.fail, _tee_end(ends), scheduler, subs)
            if phase1
            else _Sink(_tee(heads), _tee_end(ends))
        )
        # the common session (16 kHz mono, nothing before vad, no branches, level at most):
        # its frames skip the runs above (DirectFeed does what they would)
        self.direct: DirectFeed | None = None
        if (
            self.lane is not None
            and cutter is not None
            and not phase1
            and not options.before
            and not branch_at
            and all(t == DISPLAY_CHAINS["level"] for t in shown)
        ):
            self.direct = DirectFeed(cutter, out, level=bool(shown))

    def push(self, frame: AudioFrame) -> None:
        """One frame of the session's audio, as it arrived."""
        self.input.on_next(frame)

    def push_scored(self, window: ScoredWindow) -> None:
        """A window's probability (batched): on into ``vad`` and the rest of the chain."""
        self.speech.on_next(window)

    def end_input(self) -> None:
        """The session's audio ended: flush phase 1 and everything up to ``vad``'s scoring
        (unbatched: the whole graph)."""
        if self.direct is not None:
            self.direct.end()
        self.input.on_completed()

    def end_speech(self) -> None:
        """Batched: every window was scored; ``vad`` scores its last one and the chain ends."""
        if self.cutter is not None:
            self.speech.on_completed()

    def close(self) -> None:
        """Stop every run (timers included); nothing more lands in :attr:`out`."""
        self.out.closed = True
        self.out.wake = None
        self.subs.dispose()


class DirectFeed:
    """The way in of a common session's graph, without its runs: per frame, what
    ``input.on_next`` does when the input is a tee of ``vad``'s cutter and the display
    branch ``reframe size=1600 ! level`` (or the cutter alone).

    :meth:`push` cuts the frame (:class:`~rxaudio.operators.ScoredVad`'s ``cut``, the state
    the executor's ``vad`` stamps from) and returns the windows with the index of the first,
    for the batcher; the 100 ms blocks are cut by a :class:`~rxaudio.dsp.framing.Reframer`
    as the ``reframe`` stage cuts them (its first block at the first frame's start, the last
    shorter one flushed at the end) and measured by the ``level`` element's own function,
    their LevelFrames landing in ``out.items``. A failure to cut fails the graph (``out``),
    as the cutter's input does, and nothing of that frame reaches the display. The display
    run itself is never pushed: at :meth:`end` (before the graph's input ends) the last block
    is flushed here, and the run, which saw nothing, flushes nothing.
    """

    __slots__ = ("blocks", "cutter", "level", "out")

    def __init__(self, cutter: Any, out: _Outputs, *, level: bool) -> None:
        self.cutter = cutter
        self.out = out
        self.level = level
        self.blocks: Reframer | None = None

    def push(self, frame: AudioFrame) -> tuple[np.ndarray, int] | None:
        """Cut ``frame``; its windows and the first one's index (``None``: the graph is
        closed or failed)."""
        out = self.out
        if out.closed:
            return None
        cutter = self.cutter
        try:
            windows = cutter.cut(frame)
        except Exception as exc:
            out.fail(exc)
            return None
        if self.level:
            r = self.blocks
            if r is None:
                r = self.blocks = Reframer(DISPLAY_BLOCK, DISPLAY_BLOCK, 1, frame.start)
            pairs = r.push(frame.samples)
            if pairs:
                self._levels(pairs)
        return windows, cutter.cut_windows - windows.shape[0]

    def _levels(self, pairs: list[tuple[int, np.ndarray]]) -> None:
        items = self.out.items
        for start, samples in pairs:
            items.append(_level(AudioFrame.trusted(samples, PIPELINE_RATE, start)))

    def end(self) -> None:
        """The input ended: the last, shorter block (``reframe``'s ``tail=flush``)."""
        r = self.blocks
        if r is not None and not self.out.closed:
            pairs = r.flush("flush")
            if pairs:
                self._levels(pairs)


class _Sink:
    """A branch end as an input: items to ``item``, its end to ``completed``."""

    __slots__ = ("on_completed", "on_next")

    def __init__(
        self, item: Callable[[Any], None] = _nothing, completed: Callable[[], None] = _nothing
    ) -> None:
        self.on_next, self.on_completed = item, completed


def _cutter(cutter: Any, out: _Outputs) -> Callable[[AudioFrame], None]:
    """vad's input cut into windows, each queued (with its index) for the batcher."""

    def cut(frame: AudioFrame) -> None:
        if out.closed:
            return
        try:
            windows = cutter.cut(frame)
        except Exception as exc:
            out.fail(exc)
            return
        k = cutter.cut_windows - windows.shape[0]
        for i in range(windows.shape[0]):
            out.cut.append((windows[i], k + i))

    return cut


def _tee(heads: list[Any]) -> Callable[[Any], None]:
    def tee(item: Any) -> None:
        for h in heads:
            h.on_next(item)

    return tee


def _tee_end(heads: list[Any]) -> Callable[[], None]:
    def end() -> None:
        for h in heads:
            h.on_completed()

    return end


@functools.cache
def _parsed(text: str) -> tuple[ChainElement, ...]:
    return tuple(parse_chain(text))


def _built(text: str) -> list[Operator]:
    """A chain string's operators, built through the registry (fresh ones for each session)."""
    return [registry.make(e.name, **e.options) for e in _parsed(text)]


def _branch(
    graph: ChainGraph,
    caps: Caps,
    wanted: set[str],
    out: _Outputs,
    scheduler: abc.SchedulerBase,
    subs: CompositeDisposable,
) -> Any:
    """A display branch of ``--pipeline`` as an input (``None``: none of its ends is wanted).

    Its ends give items to ``out`` (each counted open until it completes); a tee on it is a
    loop over its branches, as on the way to vad."""

    def line(els: tuple[ChainElement, ...], tees: tuple[ChainTee, ...], a: int, c: Caps) -> Any:
        cut = min((t.at for t in tees if t.at >= a), default=None)
        stop = len(els) if cut is None else cut
        built = [registry.make(e.name, **e.options) for e in els[a:stop]]
        steps, c = _linked(built, c, "tee")
        if cut is None:  # an end: its event, if the client asked for it
            if BRANCH_EVENTS[els[-1].name] not in wanted:
                return None
            out.open += 1
            return _run(steps, out.item, out.fail, out.completed, scheduler, subs)
        kids = [line(els, tuple(t for t in tees if t.at > cut), cut, c)] if cut < len(els) else []
        kids += [line(b.elements, b.tees, 0, c) for t in tees if t.at == cut for b in t.branches]
        kids = [k for k in kids if k is not None]
        if not kids:
            return None
        tee = _Sink(_tee(kids), _tee_end(kids))
        if not steps:
            return tee
        return _run(steps, tee.on_next, out.fail, tee.on_completed, scheduler, subs)

    return line(graph.elements, graph.tees, 0, caps)
