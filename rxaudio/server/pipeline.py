"""The server's operator chain, built once from options, and its items encoded as events.

Both ways in (the server microphone and client microphones) use this chain::

    audio -> conform(16 kHz mono) -> share() -+-> level()                 -> level
                                              +-> spectrogram(log_mel)   -> spectrogram
                                              +-> vad -> hysteresis -> buffer_utterance   -> vad,
                                                                 speech_start, speech_end, utterance

``hysteresis`` and ``buffer_utterance`` take their thresholds and durations from an Observable
of settings, so a client's ``config`` message retunes its running pipeline.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import reactivex as rx
from reactivex import Observable, abc
from reactivex import operators as ops

from ..frames import AudioFrame, LevelFrame
from ..operators import level
from ..pipeline.caps import Caps, conform
from .protocol import TUNABLE, ProtocolError, parse_options

PIPELINE_RATE = 16000
SPEC_MELS = 64
SPEC_FLOOR_DB = -100.0
SPEC_CEIL_DB = -10.0


@dataclass(frozen=True, slots=True)
class ChainOptions:
    """What a session's chain is built from (fixed at start) and its initial tunables."""

    events: tuple[str, ...] = ("level", "vad", "spectrogram")
    backend: str = "silero"
    settings: dict[str, float] = field(default_factory=dict)

    def tunable(self) -> dict[str, float]:
        """Initial tunable settings (only those given; operators default the rest)."""
        return dict(self.settings)

    def check_tunable(self, merged: dict[str, float]) -> None:
        """Validate a merged settings dict (raises :class:`ProtocolError`)."""
        parse_options(merged, context="config")


def _u8_rows(values: np.ndarray) -> str:
    """Quantise log-mel rows (dB) to uint8 over a fixed range, base64 encoded."""
    scaled = (values - SPEC_FLOOR_DB) * (255.0 / (SPEC_CEIL_DB - SPEC_FLOOR_DB))
    q = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def encode_item(item: Any, options: ChainOptions) -> dict[str, Any] | None:
    """Turn one chain output item into a protocol event (``None`` to send nothing).

    Utterances carry their samples under the private keys ``_samples``/``_rate``; the session
    writes them to a WAV file and replaces them with the file's URL.
    """
    if isinstance(item, LevelFrame):
        return {
            "type": "level",
            "t": round(item.time, 4),
            "rms_db": round(item.rms_db, 2),
            "peak_db": round(item.peak_db, 2),
        }
    return None


class Chain:
    """The chain for one session: call it on an Observable of audio frames."""

    def __init__(
        self,
        options: ChainOptions,
        *,
        settings: Observable[dict[str, float]],
        scheduler: abc.SchedulerBase,
    ) -> None:
        self.options = options
        self.settings = settings
        self.scheduler = scheduler

    def __call__(self, source: Observable[AudioFrame]) -> Observable[Any]:
        audio = source.pipe(conform(Caps(sample_rate=PIPELINE_RATE, channels=1)), ops.share())
        branches: list[Observable[Any]] = []
        if "level" in self.options.events:
            branches.append(audio.pipe(level()))
        return rx.merge(*branches)


__all__ = ["TUNABLE", "Chain", "ChainOptions", "ProtocolError", "encode_item"]
