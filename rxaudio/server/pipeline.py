"""The server's operator chain, built once from options, and its items encoded as events.

Both ways in (the server microphone and client microphones) use this chain, in two phases::

    audio -> conform(16 kHz mono) -> reframe(512)              (phase 1, on arrival)
          -> [WindowBatcher: one Silero call for the next window of every session]
          -> share() -+-> vad -> hysteresis -> buffer_utterance -> vad, speech_start,
                      |                                            speech_end, utterance
                      +-> reframe(1600) -> level()               -> level        (10/s)
                      +-> reframe(1600) -> spectrogram(log_mel)  -> spectrogram  (10/s)

Phase 1 cuts every session's audio into the model's 512-sample windows. The
:class:`WindowBatcher` then scores the pending window of every session in one batched
onnxruntime call (``BatchedSileroScorer.score_batch``) and hands each window on to its session's
phase 2, whose ``vad`` operator takes the precomputed probability through a
:class:`PrefetchScorer`. The ``vad``, ``hysteresis``, ``buffer_utterance``, ``level`` and
``spectrogram`` operators are the library's own; ``hysteresis`` and ``buffer_utterance`` follow
an Observable of settings, so a client's ``config`` message retunes its running pipeline.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import reactivex as rx
from reactivex import Observable, abc
from reactivex import operators as ops

from ..errors import ConfigError
from ..frames import (
    AudioFrame,
    FeatureFrame,
    LevelFrame,
    SettingsRejected,
    SpeechEnd,
    SpeechStart,
    Utterance,
    VadFrame,
)
from ..operators import buffer_utterance, hysteresis, level, reframe, spectrogram, vad
from .metrics import ServerMetrics

if TYPE_CHECKING:
    from ..vad.silero import BatchedSileroScorer, BatchedStream

PIPELINE_RATE = 16000
WINDOW = 512  # Silero's window at 16 kHz
DISPLAY_BLOCK = 1600  # level and spectrogram every 100 ms
SPEC_MELS = 64
SPEC_FLOOR_DB = -60.0  # log-mel dB mapped to 0..255 for the page
SPEC_CEIL_DB = 40.0
HYSTERESIS_KEYS = ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms")
UTTERANCE_KEYS = ("pre_roll_ms", "post_roll_ms", "max_ms")
BACKENDS = ("silero", "webrtc", "energy")


Settings = dict[str, float | None]
"""Live settings by name; ``neg_threshold`` None means derived from ``threshold``."""


def default_settings() -> Settings:
    """The operators' own defaults for every live setting (``neg_threshold``: None = derived)."""
    from dataclasses import asdict

    from ..vad.hysteresis import HysteresisSettings
    from ..vad.utterance import UtteranceSettings

    both = {**asdict(HysteresisSettings()), **asdict(UtteranceSettings())}
    return {k: both[k] for k in (*HYSTERESIS_KEYS, *UTTERANCE_KEYS)}


def check_settings(settings: Mapping[str, Any]) -> None:
    """Validate merged live settings with the operators' own rules (raises ConfigError)."""
    from ..vad.hysteresis import HysteresisSettings
    from ..vad.utterance import UtteranceSettings

    HysteresisSettings(**{k: settings[k] for k in HYSTERESIS_KEYS if k in settings}).checked()
    UtteranceSettings(**{k: settings[k] for k in UTTERANCE_KEYS if k in settings}).checked()


@dataclass(frozen=True, slots=True)
class ChainOptions:
    """What a session's chain is built from (fixed at start) and its initial live settings."""

    events: tuple[str, ...] = ("level", "vad", "spectrogram")
    backend: str = "silero"
    settings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"serve: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        check_settings(self.settings)


class PrefetchScorer:
    """A :class:`~rxaudio.vad.base.Scorer` for one session of a batched Silero model.

    The :class:`WindowBatcher` scores windows ahead (in batches across sessions) and queues
    ``(window, probability)`` here; ``score`` returns the queued probability after checking it
    belongs to the same window. A window nobody scored ahead (the zero-padded last one at the
    end of a stream) is scored on its own, in order, so the model state stays exact.
    """

    def __init__(self, shared: BatchedSileroScorer) -> None:
        self.stream: BatchedStream = shared.stream()
        self.sample_rate = self.stream.sample_rate
        self.window_size = self.stream.window_size
        self.ready: deque[tuple[np.ndarray, float]] = deque()

    @property
    def handle(self) -> int:
        """The stream's handle in the shared scorer."""
        return self.stream.handle

    def reset(self) -> None:
        """Forget queued probabilities and the stream state."""
        self.ready.clear()
        self.stream.reset()

    def score(self, window: np.ndarray) -> float:
        """The probability of ``window`` (precomputed when the batcher scored it)."""
        if self.ready:
            w, p = self.ready.popleft()
            if not np.array_equal(w, window):
                raise RuntimeError(
                    "PrefetchScorer: the window scored ahead is not the window vad asked for; "
                    "the session's phase-1 framing and vad's framing disagree"
                )
            return p
        return self.stream.score(window)

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        """One :meth:`score` per row."""
        return np.array([self.score(w) for w in windows], dtype=np.float32)

    def close(self) -> None:
        """Unregister from the shared scorer."""
        self.ready.clear()
        self.stream.close()


class WindowSink(Protocol):
    """What the batcher needs of a session."""

    scorer: PrefetchScorer | None

    def push_window(self, frame: AudioFrame, arrival: float) -> None:
        """Continue phase 2 with a scored window."""
        ...

    def fail(self, exc: Exception) -> None:
        """The batch holding one of its windows could not be scored."""
        ...


class WindowBatcher:
    """Collects each session's next 512-sample window and scores them in one call.

    ``add`` queues a window. When every registered stream has a window waiting, ``run`` is
    scheduled at once (``call_soon``); otherwise it waits at most ``max_wait`` seconds for the
    others, so clients whose frames arrive at different moments still share a call. ``run``
    goes round by round (one window per session per call, as the model state requires) until
    nothing is pending. A lone client therefore waits for nobody; many clients trade at most
    ``max_wait`` of latency for a batch that costs a fraction of separate calls.
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
        self.pending: dict[WindowSink, deque[tuple[AudioFrame, float]]] = {}
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._now = False

    def add(self, sink: WindowSink, frame: AudioFrame, arrival: float) -> None:
        """Queue ``frame`` (one full window) of ``sink`` for the next batch."""
        self.pending.setdefault(sink, deque()).append((frame, arrival))
        if len(self.pending) >= len(self.shared):  # everyone is here: no reason to wait
            if not self._now:
                if self._timer is not None:
                    self._timer.cancel()
                self._now = True
                self._timer = self.loop.call_soon(self.run)
        elif self._timer is None:
            self._timer = self.loop.call_later(self.max_wait, self.run)

    def drop(self, sink: WindowSink) -> None:
        """Forget a session's pending windows."""
        self.pending.pop(sink, None)

    def run(self) -> None:
        """Score and forward everything pending, one window per session per call."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._now = False
        while self.pending:
            batch: list[tuple[WindowSink, AudioFrame, float]] = []
            for sink in list(self.pending):
                q = self.pending[sink]
                frame, arrival = q.popleft()
                if not q:
                    del self.pending[sink]
                if sink.scorer is not None:
                    batch.append((sink, frame, arrival))
            if not batch:
                continue
            windows = {}
            for sink, frame, _ in batch:
                assert sink.scorer is not None
                windows[sink.scorer.handle] = frame.samples[:, 0]
            try:
                probs = self.shared.score_batch(windows)
            except Exception as exc:  # never let one bad batch stop the loop
                for sink, _, _ in batch:
                    self.drop(sink)
                    sink.fail(exc)
                continue
            self.metrics.batch.observe(len(batch))
            for sink, frame, arrival in batch:
                assert sink.scorer is not None
                sink.scorer.ready.append((frame.samples[:, 0], probs[sink.scorer.handle]))
                sink.push_window(frame, arrival)


def _u8_rows(values: np.ndarray) -> str:
    """Quantise log-mel rows (dB) to uint8 over a fixed range, base64 encoded (row-major)."""
    scaled = (values - SPEC_FLOOR_DB) * (255.0 / (SPEC_CEIL_DB - SPEC_FLOOR_DB))
    q = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def encode_item(item: Any, events: tuple[str, ...]) -> dict[str, Any] | None:
    """Turn one chain output item into a protocol event (``None`` to send nothing).

    Times are seconds of the session's audio. Utterances carry their samples under the private
    keys ``_samples``/``_rate``; the session writes them to a WAV file and replaces them with
    the file's URL.
    """
    if isinstance(item, VadFrame):
        if "vad" not in events:
            return None
        return {
            "type": "vad",
            "t": round(item.time, 4),
            "end": round(item.end / item.sample_rate, 4),
            "p": round(float(item.probability), 4),
            "speech": bool(item.speech),
        }
    if isinstance(item, SpeechStart):
        return {"type": "speech_start", "t": round(item.time, 4)}
    if isinstance(item, SpeechEnd):
        return {
            "type": "speech_end",
            "start": round(item.start / item.sample_rate, 4),
            "t": round(item.time, 4),
            "duration": round((item.end - item.start) / item.sample_rate, 4),
            "reason": item.reason,
        }
    if isinstance(item, Utterance):
        r = item.sample_rate
        return {
            "type": "utterance",
            "start": round(item.start / r, 4),
            "end": round(item.end / r, 4),
            "duration": round(item.duration, 4),
            "audio_start": round(item.audio_start / r, 4),
            "audio_end": round(item.audio_end / r, 4),
            "reason": item.reason,
            "_samples": item.samples,
            "_rate": r,
        }
    if isinstance(item, LevelFrame):
        return {
            "type": "level",
            "t": round(item.time, 4),
            "rms_db": round(item.rms_db, 2),
            "peak_db": round(item.peak_db, 2),
        }
    if isinstance(item, FeatureFrame):
        return {
            "type": "spectrogram",
            "t": round(item.time, 4),
            "hop": round(item.hop / item.sample_rate, 6),
            "rows": item.n_rows,
            "bins": int(item.values.shape[1]),
            "db_range": [SPEC_FLOOR_DB, SPEC_CEIL_DB],
            "data": _u8_rows(item.values),
        }
    if isinstance(item, SettingsRejected):
        return {"type": "error", "code": "bad_config", "message": item.message}
    return None


def _pick(keys: tuple[str, ...]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def pick(s: Mapping[str, Any]) -> dict[str, Any]:
        return {k: s[k] for k in keys if k in s}

    return pick


class Chain:
    """Phase 2 of one session: call it on the Observable of its 16 kHz, 512-sample windows."""

    def __init__(
        self,
        options: ChainOptions,
        *,
        settings: Observable[Settings],
        scheduler: abc.SchedulerBase,
        scorer: PrefetchScorer | None,
    ) -> None:
        self.options = options
        self.settings = settings
        self.scheduler = scheduler
        self.scorer = scorer

    def _vad(self) -> Callable[[Observable[AudioFrame]], Observable[VadFrame]]:
        scorer = self.scorer
        if scorer is None:
            return vad(self.options.backend)

        def factory(rate: int) -> PrefetchScorer:
            return scorer

        return vad(factory, rate=PIPELINE_RATE)

    def __call__(self, windows: Observable[AudioFrame]) -> Observable[Any]:
        from ..vad.hysteresis import HysteresisSettings
        from ..vad.utterance import UtteranceSettings

        s = self.options.settings
        h = HysteresisSettings(**_pick(HYSTERESIS_KEYS)(s))
        u = UtteranceSettings(**_pick(UTTERANCE_KEYS)(s))
        audio = windows.pipe(ops.share())
        speech = audio.pipe(
            self._vad(),
            hysteresis(
                h.threshold,
                h.neg_threshold,
                h.min_speech_ms,
                h.min_silence_ms,
                settings=self.settings.pipe(ops.map(_pick(HYSTERESIS_KEYS))),
            ),
            buffer_utterance(
                u.pre_roll_ms,
                u.post_roll_ms,
                u.min_ms,
                u.max_ms,
                passthrough=True,
                settings=self.settings.pipe(ops.map(_pick(UTTERANCE_KEYS))),
                scheduler=self.scheduler,
            ),
        )
        branches: list[Observable[Any]] = [speech]
        events = self.options.events
        if "level" in events or "spectrogram" in events:
            display = audio.pipe(reframe(DISPLAY_BLOCK), ops.share())
            if "level" in events:
                branches.append(display.pipe(level()))
            if "spectrogram" in events:
                branches.append(display.pipe(spectrogram(kind="log_mel", n_mels=SPEC_MELS)))
        return rx.merge(*branches)
