"""WebRTC's GMM voice activity detector (``webrtcvad``), as a scorer of 0/1 probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import F32, check_window, score_each

RATES = (8000, 16000, 32000, 48000)
FRAME_MS = (10, 20, 30)
MODES = (0, 1, 2, 3)


class WebRtcScorer:
    """WebRTC VAD: each window is speech (1.0) or not (0.0).

    Parameters
    ----------
    sample_rate
        8000, 16000, 32000 or 48000 Hz.
    mode
        Aggressiveness 0 (least) to 3 (most likely to call audio non-speech).
    frame_ms
        Window length: 10, 20 or 30 ms.
    """

    def __init__(self, sample_rate: int = 16000, *, mode: int = 3, frame_ms: int = 30) -> None:
        check_webrtc(sample_rate, mode, frame_ms)
        import webrtcvad

        self.sample_rate = sample_rate
        self.mode = mode
        self.frame_ms = frame_ms
        self.window_size = sample_rate * frame_ms // 1000
        self._vad: Any = webrtcvad.Vad(mode)

    def reset(self) -> None:
        """New detector (webrtcvad keeps adaptive state inside)."""
        import webrtcvad

        self._vad = webrtcvad.Vad(self.mode)

    def score(self, window: F32) -> float:
        """1.0 when WebRTC calls the window speech, else 0.0."""
        w = check_window("webrtc", window, self.window_size)
        pcm = np.rint(np.clip(w * 32768.0, -32768, 32767)).astype("<i2").tobytes()
        return 1.0 if self._vad.is_speech(pcm, self.sample_rate) else 0.0

    def score_many(self, windows: F32) -> F32:
        """One ``score`` per row."""
        return score_each(self, windows)


def check_webrtc(sample_rate: int, mode: int, frame_ms: int) -> None:
    """Validate WebRTC options (raises :class:`ConfigError`)."""
    if mode not in MODES or isinstance(mode, bool):
        raise ConfigError(f"webrtc: mode must be 0, 1, 2 or 3, got {mode!r}")
    if frame_ms not in FRAME_MS or isinstance(frame_ms, bool):
        raise ConfigError(f"webrtc: frame_ms must be 10, 20 or 30, got {frame_ms!r}")
    if sample_rate not in RATES:
        raise ConfigError(
            f"webrtc: sample rate must be one of 8000, 16000, 32000, 48000 Hz, got "
            f"{sample_rate!r}; set vad(rate=16000) to resample"
        )
