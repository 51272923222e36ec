"""The default speech chain of a batched session, run straight from the batcher's rounds.

A session whose speech chain is the default one (``vad ! hysteresis ! buffer_utterance``
on the session's 16 kHz mono audio, Silero scored by the shared :class:`WindowBatcher`,
nothing before ``vad``, no ``transcribe``) gets a :class:`SpeechLane` as the head of that
chain instead of a plain executor input. The lane owns the very same executor
(:class:`~rxaudio.core.runtime._Run`) over the very same stages (the ``vad`` of
:class:`~rxaudio.operators.ScoredVad`, ``hysteresis`` and ``buffer_utterance`` built by the
registry with the session's settings Observables and gap-timer scheduler), subscribed the way
:class:`~rxaudio.core.runtime.Stages` subscribes them; that executor is the reference, and it
runs every window that can change anything: speech opening, open or closing, a pending segment,
an armed gap timer, the first window, the end, an error, and every settings change.

The rest, the windows of a quiet stream (by far most of them: no speech, none pending, no
utterance open), take the *quiet path*: one window's whole effect on the three stages, done
directly instead of through three stages' pushes, a VadFrame copy, the cutter's wrappers and
the executor's bookkeeping. What it does is exactly what the stages do for such a window
(see :meth:`SpeechLane.quiet`), and ``tests/server/test_rounds.py`` checks it against the
executor alone, event for event and file for file, over settings, live changes, chunkings,
sessions joining and leaving mid-round and failing sessions; the golden set runs through it.

The batcher tells the lanes of one round their probabilities together
(:meth:`WindowBatcher._deliver`): whether a window is quiet is decided for every lane of the
round at once, as arrays (probability against each lane's threshold, and each lane's state
flags), before any lane runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from reactivex import abc
from reactivex.disposable import CompositeDisposable, Disposable

from ..core.runtime import Fusable, _entry, _Run, _SettingsInlet
from ..frames import AudioFrame, VadFrame
from ..operators import ScoredVad, ScoredWindow

__all__ = ["SpeechLane", "open_run"]


class _Observer:
    """The executor's observer: the chain's outputs, its error and its end, to the session."""

    __slots__ = ("on_completed", "on_error", "on_next")

    def __init__(
        self,
        on_next: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        on_completed: Callable[[], None],
    ) -> None:
        self.on_next, self.on_error, self.on_completed = on_next, on_error, on_completed


class _RunInput:
    """A run's input: ``on_next`` is its entry, the rest its upstream callbacks."""

    __slots__ = ("on_completed", "on_error", "on_next")

    def __init__(self, run: _Run) -> None:
        self.on_next: Callable[[Any], None] = _entry(run)
        self.on_error: Callable[[Exception], None] = run.on_error
        self.on_completed: Callable[[], None] = run.on_completed


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
    for j in reversed(range(len(specs))):  # the last first, as separate operators would
        settings = specs[j].settings
        if settings is not None:
            inlet = _SettingsInlet(run, j)
            subs.add(settings.subscribe(inlet.on_next, inlet.on_error, scheduler=scheduler))
    subs.add(Disposable(run.dispose))
    return run


def open_run(
    specs: tuple[Fusable, ...],
    on_next: Callable[[Any], None],
    on_error: Callable[[Exception], None],
    on_completed: Callable[[], None],
    scheduler: abc.SchedulerBase,
    subs: CompositeDisposable,
) -> _RunInput:
    """One run of the executor over ``specs``, opened for pushing into (disposed with
    ``subs``)."""
    return _RunInput(_subscribe(specs, on_next, on_error, on_completed, scheduler, subs))


class SpeechLane:
    """One session's default speech chain: ``vad`` (scored elsewhere), ``hysteresis``,
    ``buffer_utterance``; an input of :class:`~rxaudio.server.pipeline.SessionGraph`.

    ``on_next`` takes a :class:`~rxaudio.operators.ScoredWindow`; :meth:`quiet` says whether
    the lane's next window, with probability ``p``, is a quiet one, and :meth:`push_quiet`
    runs it so. ``on_completed`` ends the chain (vad scores its short last window itself).
    """

    __slots__ = (
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

    def on_next(self, window: ScoredWindow) -> None:
        """Window ``window.index``'s probability: a direct path where one applies, else the
        executor (which then may have taught the lane the rates it needs)."""
        index, p = window.index, window.probability
        if not (self.rate and self.direct(index, p, None)):
            self._entry(window)
            if not self.rate:
                self.prime()

    def direct(self, index: int, p: float, vad_out: Callable[[VadFrame], None] | None) -> bool:
        """Run window ``index`` with probability ``p`` on a direct path if one applies (and
        say whether it did): :meth:`push_quiet` (nothing open, opening, pending or timed, and
        ``p`` below the threshold) or :meth:`push_speech` (a confirmed segment open and staying
        open, its utterance open, not due for a split, nothing closing).

        The window's VadFrame, the one output of either, is emitted; or, with ``vad_out``
        (the session's own handling of it, when nothing else of the chain waits to be
        handled), given to ``vad_out`` without its audio, which nobody after it reads."""
        run = self.run
        done = run.done
        if done[0] or done[1] or done[2]:
            return False
        if self._vad.windows.k != index or index >= self._cutter.cut_windows:
            return False  # the executor says what is wrong
        h = self._hyst.h
        cut = self._utt.cut
        if h is None or cut.closing is not None:
            return False
        if not h.triggered:
            if (
                p < h.settings.threshold
                and cut.open is None
                and not run.armed[1]
                and not run.armed[2]
            ):
                self.push_quiet(index, p, vad_out)
                return True
            return False
        u = cut.open
        if (
            h.confirmed
            and p >= h.settings.neg
            and u is not None
            and index * self.size + self._vad.windows.m0 + self.size - u.audio_start
            < cut._n(cut.settings.max_ms)
        ):
            self.push_speech(index, p, vad_out)
            return True
        return False

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

    def push_quiet(
        self, index: int, p: float, vad_out: Callable[[VadFrame], None] | None = None
    ) -> None:
        """Window ``index`` (its audio in vad's buffer), probability ``p``, nothing open
        (:meth:`direct`).

        What the three stages do for it, step by step (their code in brackets):

        * ``vad`` [``_VadStage.stamp``]: the window is ``[a, b)`` with ``a = m0 + k * size``
          (the source rate is the model rate), its audio the buffer's ``[a, b)``; the window
          index moves on and the buffer is trimmed to ``b``;
        * ``hysteresis`` [``Hysteresis.push``, not triggered, ``p`` below the threshold]: only
          the stream end moves to ``b``; no decision; the frame goes on with ``speech`` False
          and ``pending`` None;
        * ``buffer_utterance`` [``UtteranceCutter.frame``/``window``, nothing open or closing,
          no speech, none pending]: the audio is appended, ``pending`` cleared, the last end
          moved, the history trimmed; no utterance;
        * the executor [``_Run.carry``]: each live stage's last item is this window (the
          sample index a refused setting names); no gap timer is armed (neither stage asks
          for one, none was armed); the one output, the window's VadFrame, is emitted.
        """
        run = self.run
        with run.lock:
            stage = self._vad
            win = stage.windows
            a = win.m0 + index * self.size
            b = a + self.size
            win.k = index + 1
            spans = stage.spans
            seg = spans.take(a, b)
            spans.trim(b)
            n = seg.shape[0]
            buf = AudioFrame.trusted(seg, self.rate, a) if n and vad_out is None else None
            self._hyst.h.last_end = b
            cut = self._utt.cut
            if n:
                cut.audio.append(a, seg)
            cut.pending = None
            cut._last_end = b
            cut._trim()
            vf = VadFrame.trusted(a, b, self.rate, p, buf, False, index, None)
            items = run.items
            items[1] = items[2] = vf
            (self.emit if vad_out is None else vad_out)(vf)

    def push_speech(
        self, index: int, p: float, vad_out: Callable[[VadFrame], None] | None = None
    ) -> None:
        """Window ``index``, probability ``p``, inside a confirmed segment (:meth:`direct`).

        What the stages do for it (their code in brackets):

        * ``vad``: as in :meth:`push_quiet`;
        * ``hysteresis`` [``Hysteresis.push``, triggered and confirmed, ``p`` not below the
          exit threshold]: the stream end moves to ``b``; at or above the threshold the
          tentative end is cleared; no decision; the frame goes on with ``speech`` True and
          ``pending`` None; then its gap timer is touched [``_Run.carry``] as the executor does;
        * ``buffer_utterance`` [``UtteranceCutter.frame``/``window``, an utterance open, none
          closing, its audio short of ``max_ms`` with this window]: the audio is appended,
          ``pending`` cleared, the last end moved, the window noted as a split candidate, the
          (empty) closing drained, the history trimmed; no utterance; its gap timer touched;
        * the one output, the window's VadFrame, is emitted.
        """
        run = self.run
        with run.lock:
            stage = self._vad
            win = stage.windows
            a = win.m0 + index * self.size
            b = a + self.size
            win.k = index + 1
            spans = stage.spans
            seg = spans.take(a, b)
            spans.trim(b)
            n = seg.shape[0]
            buf = AudioFrame.trusted(seg, self.rate, a) if n and vad_out is None else None
            hs = self._hyst
            h = hs.h
            h.last_end = b
            if p >= h.settings.threshold:
                h.temp_end = None
            vf = VadFrame.trusted(a, b, self.rate, p, buf, True, index, None)
            items = run.items
            items[1] = vf
            if run.armed[1] or hs.gap_seconds() is not None:
                run.touch(1)
            us = self._utt
            cut = us.cut
            if n:
                cut.audio.append(a, seg)
            cut.pending = None
            cut._last_end = b
            cut._note(a, b, p)
            cut._trim()
            items[2] = vf
            if run.armed[2] or us.gap_seconds() is not None:
                run.touch(2)
            (self.emit if vad_out is None else vad_out)(vf)
