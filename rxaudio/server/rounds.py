"""A batched session's speech chain, its common windows run straight from the batcher's round.

A session scored by the shared :class:`~rxaudio.server.pipeline.WindowBatcher` (Silero) runs
``vad`` (split at its scorer, :class:`~rxaudio.operators.ScoredVad`) ``! hysteresis !
buffer_utterance`` behind a :class:`SpeechLane` instead of a plain executor input, whatever runs
before ``vad`` (its audio at 16 kHz mono either way) or after (``transcribe``). The lane owns
the very same executor (:class:`~rxaudio.core.runtime._Run`) over the very same stages (built by
the registry with the session's settings Observables and gap-timer scheduler), subscribed as
:class:`~rxaudio.core.runtime.Stages` subscribes them: that executor is the reference, and it
runs every window that can change anything (a segment opening, pending or closing, a dip below
the exit threshold, an utterance due for a split or collecting its post-roll, a timer armed
with nothing open, the first window, the short last one, an error, settings refused).

The rest, most windows of a live stream, take a *direct path* (:meth:`SpeechLane.direct`):
a quiet window, one of an utterance's post-roll, one of a segment still pending, one inside a
confirmed segment that stays open. A direct
path does to the three stages' state exactly what their pushes would (each step names the code
it stands for), touches the gap timers as the executor does, and gives the one output, the
window's VadFrame; the session handles it at once when nothing else waits (an event at most:
``vad`` frames are neither numbered nor written). What it skips is the executor's
bookkeeping, the stages' wrappers, a VadFrame copy per stage and the session's drain.
``tests/server/test_rounds.py`` runs the same sessions with the executor alone
(``Session(quiet_path=False)``) and with the lanes, and compares every event's JSON text and
every file's bytes, over chunkings, settings, live changes, splits, joins and leaves mid-round,
a failing session, a storage limit, gap timers; the golden set runs through the lanes.

Not arrays over the sessions of a round: deciding the path is a handful of attribute reads per
session, cheaper than gathering every session's state into arrays and scattering it back, and
what the direct paths save is Python calls and objects, not arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from reactivex import abc
from reactivex.disposable import CompositeDisposable, Disposable

from ..core.runtime import Fusable, _entry, _Run, subscribe_settings
from ..frames import AudioFrame, VadFrame
from ..operators import ScoredVad, ScoredWindow

__all__ = ["SpeechLane", "open_run"]

# what a direct path gives a VadFrame's taker instead of the frame: its start, end,
# probability, speech flag, index and pending onset (SpeechLane.direct)
VadOut = Callable[[int, int, float, bool, int, "int | None"], None]

# the direct paths of a window (SpeechLane.direct)
QUIET, CLOSING, PENDING, SPEECH = range(4)


class _Observer:
    """Three callbacks: the executor's observer (the chain's outputs, its error and its end,
    to the session), or a run's input (its entry and its upstream callbacks)."""

    __slots__ = ("on_completed", "on_error", "on_next")

    def __init__(
        self,
        on_next: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
    ) -> None:
        self.on_next, self.on_error, self.on_completed = on_next, on_error, on_completed


class _At:
    """What a direct path leaves as a live stage's last input (``_Run.items``): read only for
    its ``start``, the sample index a refused setting names (``sample_index_of``)."""

    __slots__ = ("start",)

    def __init__(self) -> None:
        self.start = 0


def _subscribe(
    specs: tuple[Fusable, ...],
    on_next: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    on_completed: Callable[[], None],
    scheduler: abc.SchedulerBase,
    subs: CompositeDisposable,
) -> _Run:
    """What :meth:`~rxaudio.core.runtime.Stages._subscribe_core` does, with no source (the
    caller pushes into the run) and the callbacks as the observer."""
    # _Run calls only the three callbacks (the executor's own ``ended`` flag stops them)
    observer = cast("abc.ObserverBase[Any]", _Observer(on_next, on_error, on_completed))
    run = _Run(specs, observer, scheduler)
    subscribe_settings(run, specs, scheduler, subs)
    subs.add(Disposable(run.dispose))
    return run


def open_run(
    specs: tuple[Fusable, ...],
    on_next: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    on_completed: Callable[[], None],
    scheduler: abc.SchedulerBase,
    subs: CompositeDisposable,
) -> _Observer:
    """One run of the executor over ``specs``, opened for pushing into (disposed with
    ``subs``)."""
    run = _subscribe(specs, on_next, on_error, on_completed, scheduler, subs)
    return _Observer(_entry(run), run.on_error, run.on_completed)


class SpeechLane:
    """One session's default speech chain: ``vad`` (scored elsewhere), ``hysteresis``,
    ``buffer_utterance``; an input of :class:`~rxaudio.server.pipeline.SessionGraph`.

    ``on_next`` takes a :class:`~rxaudio.operators.ScoredWindow`: :meth:`direct` runs it on a
    direct path where one applies, else the executor does. ``on_completed`` ends the chain
    (vad scores its short last window itself).
    """

    __slots__ = (
        "_at",
        "_cutter",
        "_entry",
        "_hyst",
        "_utt",
        "_vad",
        "emit",
        "on_completed",
        "on_error",
        "rate",
        "run",
        "size",
    )

    def __init__(
        self,
        specs: tuple[Fusable, ...],
        cutter: ScoredVad,
        on_next: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
        scheduler: abc.SchedulerBase,
        subs: CompositeDisposable,
    ) -> None:
        names = tuple(s.name for s in specs)
        if names != ("vad", "hysteresis", "buffer_utterance"):
            raise ValueError(f"SpeechLane runs the default speech chain, not {names}")
        run = self.run = _subscribe(specs, on_next, on_error, on_completed, scheduler, subs)
        self._entry = _entry(run)
        self.on_error = run.on_error
        self.on_completed = run.on_completed
        self.emit = on_next
        self._cutter = cutter
        self._vad = cutter.stage  # the _VadStage behind its vad element
        # the stage objects behind the hysteresis and buffer_utterance steps
        self._hyst = run.steps[1].push.__self__  # type: ignore[attr-defined]
        self._utt = run.steps[2].push.__self__  # type: ignore[attr-defined]
        self.rate = 0  # the window rate, once the stream's first window was stamped
        self.size = 0
        self._at = _At()

    def on_next(self, window: ScoredWindow) -> None:
        """Window ``window.index``'s probability: a direct path where one applies, else the
        executor (which then may have taught the lane the rates it needs)."""
        index, p = window.index, window.probability
        if not (self.rate and self.direct(index, p, None)):
            self._entry(window)
            if not self.rate:
                self.prime()

    def direct(self, index: int, p: float, vad_out: VadOut | None) -> bool:
        """Run window ``index`` with probability ``p`` on a direct path if one applies, and say
        whether it did (else the caller gives it to the executor, untouched).

        The paths, by the stages' state and ``p`` (what the stages would do in brackets):

        * ``QUIET``: no segment open or pending, nothing cutting, ``p`` below the threshold
          [nothing but the stream end moves];
        * ``CLOSING``: the same, but an utterance collecting its post-roll that this window
          does not complete [the audio is kept];
        * ``PENDING``: a segment opened but not confirmed, ``p`` not below the exit threshold,
          not confirmed by this window, nothing cutting [its window noted as a split
          candidate];
        * ``SPEECH``: a confirmed segment, not closed by this window (``p`` below the exit
          threshold only while the silence is shorter than ``min_silence_ms``), its utterance
          open and not due for a split, nothing closing [its window noted].

        The window's VadFrame, the one output, is emitted; or, with ``vad_out`` (the
        session's own handling of it, when nothing else of the chain waits to be handled),
        no VadFrame is made: ``vad_out(start, end, probability, speech, index, pending)`` gets
        its fields (its audio, which nobody after it reads, is not needed either).
        """
        run = self.run
        done = run.done
        if done[0] or done[1] or done[2]:
            return False
        stage = self._vad
        if stage.windows.k != index or index >= self._cutter.cut_windows:
            return False  # the executor says what is wrong
        h = self._hyst.h
        if h is None:
            return False
        a = stage.windows.m0 + index * self.size
        b = a + self.size
        spans = stage.spans
        if a < spans.start or b > spans.end:
            return False  # (never: a cut window's audio is kept until it is stamped)
        cut = self._utt.cut
        s = h.settings
        temp_end = h.temp_end
        if h.triggered:
            if cut.closing is not None:
                return False
            if p < s.neg:
                if temp_end is None:
                    temp_end = a
                if a - temp_end >= h._samples(s.min_silence_ms) or not h.confirmed:
                    return False  # the segment closes (or a pending one dips)
            elif p >= s.threshold:
                temp_end = None
            if h.confirmed:
                u = cut.open
                if u is None:
                    return False  # no utterance to go on with
                if cut.sized_for is not cut.settings:
                    cut.sized()
                if b - u.audio_start >= cut.max_n:  # [cut._n(settings.max_ms)]
                    return False  # one due for a split
                kind = SPEECH
            else:
                bound = temp_end if temp_end is not None else b
                if bound - h.start > h._samples(s.min_speech_ms) or cut.open is not None:
                    return False  # confirmed by this window (or speech already cut)
                kind = PENDING
        else:
            if p >= s.threshold or cut.open is not None:
                return False  # a segment opens (or an utterance is open without one)
            c = cut.closing
            if c is None:
                kind = QUIET
            elif b < cut._post_end(c):
                kind = CLOSING
            else:
                return False  # its post-roll completes: an utterance
        self._direct_path(kind, index, a, b, p, temp_end, vad_out)
        return True

    def prime(self) -> None:
        """After a window went through the executor: learn the rates the quiet path needs."""
        if self.rate == 0:
            stage = self._vad
            rate = stage.fmt.sample_rate
            scorer = stage.scorer
            if (
                rate is not None
                and scorer is not None
                and rate == scorer.sample_rate
                and self._hyst.rate == rate
                and self._utt.cut.rate == rate
            ):
                self.size = scorer.window_size
                self.rate = rate

    def _direct_path(
        self,
        kind: int,
        index: int,
        a: int,
        b: int,
        p: float,
        temp_end: int | None,
        vad_out: VadOut | None,
    ) -> None:
        """Window ``[a, b)`` through the three stages on path ``kind`` (:meth:`direct`): what
        their pushes do for it, in their order (their code in brackets)."""
        run = self.run
        with run.lock:
            # vad [_VadStage.stamp]: the window's audio from the buffer, the index on, the
            # buffer trimmed to the window's end (the source rate is the model rate)
            stage = self._vad
            stage.windows.k = index + 1
            spans = stage.spans
            seg = spans.take(a, b)
            spans.trim(b)
            buf = AudioFrame.trusted(seg, self.rate, a) if vad_out is None else None
            # hysteresis [Hysteresis.push]: the stream end, the tentative end; no decision
            hs = self._hyst
            h = hs.h
            h.last_end = b
            pending: int | None = None
            if h.triggered:
                h.temp_end = temp_end
                if not h.confirmed:
                    pending = h.start
            vf: VadFrame | _At
            if vad_out is None:
                vf = VadFrame.trusted(a, b, self.rate, p, buf, kind == SPEECH, index, pending)
            else:  # the stages' last inputs are read only for their start
                vf = self._at
                vf.start = a
            items = run.items
            items[1] = vf  # [_Run.carry]: the live stage's last item, its gap timer (below)
            # [hs.gap_seconds() is not None]: a gap limit and a segment open
            gap1 = hs.settings.max_gap_ms is not None and h.triggered
            # buffer_utterance [UtteranceCutter.frame, .window]: the audio kept, the window
            # noted as a split candidate while a segment is open or pending, the closing
            # utterance's post-roll not yet complete, the history trimmed; no utterance
            us = self._utt
            cut = us.cut
            cut.audio.append(a, seg)
            cut.pending = pending
            cut._last_end = b
            if kind == SPEECH or kind == PENDING:
                cut._note(a, b, p)
            cut._trim()
            items[2] = vf
            # [us.gap_seconds() is not None]: a gap limit and an utterance open or closing
            gap2 = cut.settings.max_gap_ms is not None and (
                cut.open is not None or cut.closing is not None
            )
            # [_Run.carry, .touch, .arm] for each stage in turn: the time of its last item
            # (the clock read once where both stages' timers run on one scheduler), and a
            # timer armed or cancelled unless one is armed and still wanted. Touching the
            # hysteresis' timer after the cutter's state moved is the same: neither timer
            # depends on the other stage's state, and nothing here schedules in between.
            armed = run.armed
            if armed[1] or gap1:
                sched = run.scheds[1]
                assert sched is not None
                now = sched.now
                run.last[1] = now
                if not gap1 or not armed[1]:
                    run.arm(1)
            else:
                sched, now = None, None
            if armed[2] or gap2:
                sched2 = run.scheds[2]
                assert sched2 is not None
                run.last[2] = now if sched2 is sched and now is not None else sched2.now
                if not gap2 or not armed[2]:
                    run.arm(2)
            if vad_out is None:
                self.emit(vf)
            else:
                vad_out(a, b, p, kind == SPEECH, index, pending)
