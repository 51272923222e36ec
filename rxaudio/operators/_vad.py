"""vad: per-window speech probability with the source audio each window covers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from reactivex.disposable import SerialDisposable
from reactivex.subject import Subject

from ..core.caps import Caps
from ..core.check import FormatTracker, all_finite, audio
from ..core.element import Element, Fusable, PartialFailure, Step, wrap_error
from ..core.fuse import stages_operator
from ..core.props import Choices, Range, Unit, element
from ..frames import AudioFrame, VadFrame
from ..vad import BACKENDS, ScorerFactory, backend_factory
from ..vad.base import Scorer
from ..vad.spans import SpanBuffer
from ..vad.windows import Windows
from ._conform import conform


class _VadStage:
    """Original audio in ``spans``; converted audio cut into windows and scored."""

    def __init__(self, factory: ScorerFactory, model_rate: int | None, label: str) -> None:
        self.factory, self.model_rate, self.label = factory, model_rate, label
        self.fmt = FormatTracker("vad")
        self.spans = SpanBuffer()
        self.scorer: Scorer | None = None
        self.windows = Windows()  # the one windowing, shared with the offline fast path
        self.last: AudioFrame | None = None  # the last source frame (its span's audio)

    def original(self, frame: AudioFrame) -> AudioFrame:
        """Keep the source audio; return the frame to convert (with any gap filled)."""
        fmt, samples = self.fmt, frame.samples
        if frame.sample_rate != fmt.sample_rate or samples.shape[1] != fmt.channels:
            fmt.check(frame)  # the first frame (kept), or a change (refused)
        if not all_finite(samples):
            raise ValueError(f"NaN or inf in the frame at sample {frame.start}; clean the input")
        spans = self.spans
        gap = frame.start - spans.end if spans.channels is not None else 0
        spans.append(frame.start, samples)
        self.last = frame
        if gap > 0:  # keep converted and source time aligned: convert the silence too
            z = np.zeros((gap + frame.n, frame.channels), dtype=np.float32)
            z[gap:] = frame.samples
            return AudioFrame(z, frame.sample_rate, frame.start - gap)
        return frame

    def converted(self, frame: AudioFrame) -> list[VadFrame]:
        if self.scorer is None:
            if self.model_rate is not None and frame.sample_rate != self.model_rate:
                raise ValueError(
                    f"the stream is {frame.sample_rate} Hz but {self.label} scores "
                    f"{self.model_rate} Hz audio and resample=False; put "
                    f"resample({self.model_rate}) before vad or pass resample=True"
                )
            self.scorer = self.factory(frame.sample_rate)
            self.windows.start(self.scorer.window_size, frame.start)
        return self._score(self.windows.cut(frame.samples[:, 0]), None)

    def _score(self, windows: np.ndarray, last_end: int | None) -> list[VadFrame]:
        n = windows.shape[0]
        if not n:
            return []
        scorer = self.scorer
        assert scorer is not None
        if n == 1:  # the live case: no array around one number (same float32)
            probs = [float(np.float32(scorer.score(windows[0])))]
        else:
            probs = Windows.score(scorer, windows).tolist()
        return self.stamp(probs, last_end)

    def stamp(self, probs: list[float], last_end: int | None = None) -> list[VadFrame]:
        """The VadFrames of the next ``len(probs)`` windows, given their probabilities."""
        n = len(probs)
        scorer = self.scorer
        assert scorer is not None
        rate = self.fmt.sample_rate
        assert rate is not None
        k0 = self.windows.k
        starts, ends = self.windows.spans(n, rate, scorer.sample_rate, last_end)
        spans, last = self.spans, self.last
        out = []
        for i in range(n):
            a, b = starts[i], ends[i]
            buf: AudioFrame | None
            if last is not None and a == last.start and b == last.start + last.samples.shape[0]:
                buf = last  # the live case: the window covers exactly the last frame
            else:
                seg = spans.take(a, b)
                buf = AudioFrame.trusted(seg, rate, a) if seg.shape[0] else None
            out.append(
                VadFrame.trusted(a, b if b > a else a + 1, rate, probs[i], buf, None, k0 + i, None)
            )
        spans.trim(ends[-1])
        return out

    def flush(self) -> list[VadFrame]:
        if self.scorer is None:
            return []
        return self._score(self.windows.last(), self.spans.end)

    def close(self) -> None:
        closer = getattr(self.scorer, "close", None)
        if callable(closer):
            closer()


class _VadStep:
    """One subscription of vad as a :class:`Step`: checks, conversion route, scoring.

    The conversion route is decided on the first frame: a stream that already has the model's
    caps goes straight to the stage; any other through ``conform(caps)``, whose outputs (and
    failure) are collected within the push that caused them.
    """

    def __init__(self, stage: _VadStage, caps: Caps) -> None:
        self.stage, self.caps = stage, caps
        self.direct: bool | None = None  # None until the first frame
        self.subject: Subject[AudioFrame] = Subject()
        self.conv = SerialDisposable()
        self.out: list[VadFrame] = []
        self.err: Exception | None = None

    def step(self) -> Step:
        return Step(self.push, self.end, abort=self.abort, dispose=self.dispose)

    def push(self, item: AudioFrame) -> list[VadFrame]:
        stage = self.stage
        err: Exception  # raised outside ``except``: an error already named keeps its cause
        try:
            frame = stage.original(audio("vad", item))
        except Exception as exc:
            err = wrap_error("vad", exc, item)
            raise err from err.__cause__
        if self.direct is None:
            self.direct = self.caps.accepts(frame)
            if not self.direct:
                self.conv.disposable = conform(self.caps)(self.subject).subscribe(
                    self._on_conv, self._on_conv_error, self._on_conv_done
                )
        if self.direct:
            try:
                return stage.converted(frame)
            except Exception as exc:
                err = wrap_error("vad", exc, frame)
                raise err from err.__cause__
        self.subject.on_next(frame)
        return self._collected()

    def _collected(self) -> list[VadFrame]:
        out, self.out = self.out, []
        if self.err is not None:
            raise PartialFailure(out, self.err) if out else self.err
        return out

    def _on_conv(self, frame: AudioFrame) -> None:
        if self.err is None:
            try:
                self.out.extend(self.stage.converted(frame))
            except Exception as exc:
                self.err = wrap_error("vad", exc, frame)

    def _on_conv_error(self, exc: Exception) -> None:
        if self.err is None:
            self.err = wrap_error("vad", exc)

    def _on_conv_done(self) -> None:
        if self.err is None:
            try:
                self.out.extend(self.stage.flush())
            except Exception as exc:
                self.err = wrap_error("vad", exc)

    def end(self) -> list[VadFrame]:
        try:
            if self.direct is False:
                self.subject.on_completed()  # flushes the converters, then the stage
                return self._collected()
            return self.stage.flush()
        finally:
            self.stage.close()

    def abort(self) -> list[VadFrame]:
        self.stage.close()
        return []

    def dispose(self) -> None:
        self.conv.dispose()
        self.stage.close()


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """A window's probability, scored outside ``vad`` (a server's batched scorer).

    ``index`` is the window's place in its stream (from 0), checked against the window the
    stage stamps next, so a probability can never be used for another window.
    """

    index: int
    probability: float


class ScoredVad:
    """``vad`` split at its scorer, for a scorer that scores many streams at once.

    :meth:`cut` takes vad's input (audio at the scorer's rate, mono) and returns the windows
    now complete, ``(k, window_size)``, to be scored elsewhere in order; :attr:`element` is the
    ``vad`` element that takes their probabilities, one :class:`ScoredWindow` per window in the
    same order, and emits the :class:`VadFrame` of each (the source audio it covers included).
    At the end of the stream it scores the zero-padded last window itself with ``scorer``,
    after every window scored elsewhere, so the model state stays exact. The element runs
    once (one stream): a second subscription is an error.

    .. marble::
        cut(a), cut(b): two windows (0, 1) to score elsewhere; b's last samples wait
        -w(0, 0.9)----x(1, 0.4)-----|
        [        ScoredVad.element          ]
        -P------------Q-------------(R|)      R: the short last window, scored here
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.stage = _VadStage(lambda rate: scorer, scorer.sample_rate, "the batched scorer")
        self.cut_windows = 0  # windows handed out by cut() so far
        self._opened = False
        spec = Fusable("vad", self._open)
        self.element: Element[ScoredWindow, VadFrame] = Element(
            "vad", stages_operator([spec]), produces=Caps(frame=VadFrame), fusable=spec
        )

    def cut(self, item: AudioFrame) -> np.ndarray:
        """Keep ``item``'s audio; return the windows it completes (to score in this order)."""
        stage = self.stage
        err: Exception
        try:
            frame = stage.original(item if type(item) is AudioFrame else audio("vad", item))
            if stage.scorer is None:
                rate, size = self.scorer.sample_rate, self.scorer.window_size
                if frame.sample_rate != rate or frame.channels != 1:
                    raise ValueError(
                        f"the stream is {frame.sample_rate} Hz, {frame.channels} channel(s), but "
                        f"the batched scorer takes {rate} Hz mono; convert before vad"
                    )
                stage.scorer = self.scorer
                stage.windows.start(size, frame.start)
            windows = stage.windows.cut(frame.samples[:, 0])
        except Exception as exc:
            err = wrap_error("vad", exc, item)
            raise err from err.__cause__
        self.cut_windows += windows.shape[0]
        return windows

    def _open(self) -> Step:
        if self._opened:
            raise RuntimeError("vad: a ScoredVad runs one stream; build one per stream")
        self._opened = True
        stage = self.stage

        def push(item: ScoredWindow) -> list[VadFrame]:
            k = stage.windows.k
            if item.index != k or k >= self.cut_windows:
                raise RuntimeError(
                    f"a probability for window {item.index} came when window {k} was next "
                    f"({self.cut_windows} cut)"
                )
            return stage.stamp([item.probability])

        def end() -> list[VadFrame]:
            try:
                return stage.flush()
            finally:
                stage.close()

        def close() -> list[VadFrame]:
            stage.close()
            return []

        return Step(push, end, abort=close, dispose=stage.close)


@element("vad", kind="operator", accepts=Caps(), produces=Caps(frame=VadFrame))
def vad(
    backend: Annotated[str | ScorerFactory, Choices(BACKENDS)] = "silero",
    *,
    rate: Annotated[int | None, Range(1), Unit("Hz")] = None,
    mode: Annotated[int, Choices((0, 1, 2, 3))] = 3,
    frame_ms: Annotated[int, Range(10, 100), Unit("ms")] = 30,
    resample: bool = True,
) -> Element[AudioFrame, VadFrame]:
    """Score speech per model window; each :class:`VadFrame` carries the source audio it covers.

    Input at any rate and channel count is converted for the model with
    ``conform(Caps(rate, channels=1))`` (mix to mono, resample) and cut into the model's windows
    (512 samples at 16 kHz for Silero); the last, partial window is zero-padded, as Silero's
    ``get_speech_timestamps`` does. Each frame's ``start``/``end`` are sample indices of the
    *source* stream and ``audio`` holds the source samples of that span, so later operators cut
    utterances at the original rate and channels. The scorer state is per subscription; the
    probabilities equal the backend's own on the same audio, for any chunking of the input.

    .. marble::
        -a(48k,2ch,4800)------b(48k,2ch,4800)-----|
        [           vad("silero")                 ]
        -(PQRST...)-----------(UVW...)------------(Z|)   P = VadFrame(start, end, p, audio)

    Parameters
    ----------
    backend
        ``"silero"`` (onnxruntime, default), ``"silero-torch"``, ``"webrtc"``, ``"energy"``, or a
        factory ``rate -> Scorer`` (for example ``BatchedSileroScorer(...).stream``).
    rate
        Model rate: Silero 8000 or 16000 (default 16000), WebRTC 8000/16000/32000/48000 (default
        16000), energy: any (default: the stream's own), factory: default the stream's own.
    mode
        WebRTC aggressiveness (3: the most ready to call a window non-speech).
    frame_ms
        WebRTC window (10, 20, 30 ms) or energy window (10 to 100 ms).
    resample
        Convert the rate for the model; with ``False`` a stream at another rate is an error.

    Raises
    ------
    ConfigError
        Unknown backend, bad mode, frame length or rate.
    """
    if callable(backend) and not isinstance(backend, str):
        model_rate, factory, label = rate, backend, "the scorer"
    else:
        model_rate, factory = backend_factory(backend, rate=rate, mode=mode, frame_ms=frame_ms)
        label = f"vad(backend={backend!r}, rate={model_rate})"
    caps = Caps(sample_rate=model_rate if resample else None, channels=1)
    check_rate = None if resample else model_rate

    def open_step() -> Step:
        return _VadStep(_VadStage(factory, check_rate, label), caps).step()

    spec = Fusable("vad", open_step)
    return Element(
        "vad",
        stages_operator([spec]),
        accepts=Caps(),
        produces=Caps(frame=VadFrame),
        fusable=spec,
    )
