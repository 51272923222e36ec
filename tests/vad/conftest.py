"""Fixtures for the voice-activity tests: the package's own models as references, test frames."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest

from rxaudio.frames import AudioFrame, VadFrame


@pytest.fixture(scope="session")
def pkg_onnx() -> Any:
    """The silero-vad package's own ONNX wrapper (imports torch)."""
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


@pytest.fixture(scope="session")
def pkg_jit() -> Any:
    """The silero-vad package's own TorchScript model."""
    from silero_vad import load_silero_vad

    return load_silero_vad()


@pytest.fixture(scope="session")
def speech8k(speech: np.ndarray) -> np.ndarray:
    """The bundled sample at 8 kHz."""
    import soxr

    return np.asarray(soxr.resample(speech, 16000, 8000), dtype=np.float32)


@pytest.fixture
def vf() -> Callable[..., VadFrame]:
    """``vf(k, p, n=512, rate=16000)``: the k-th window with probability p and ramp audio."""

    def make(k: int, p: float, n: int = 512, rate: int = 16000) -> VadFrame:
        start = k * n
        col = (np.arange(start, start + n) % 1000 / 1000.0).astype(np.float32)
        audio = AudioFrame(col.reshape(-1, 1), rate, start)
        return VadFrame(start, start + n, rate, p, audio, None, k)

    return make


class FakeScorer:
    """Deterministic scorer: probability = clipped mean of the window; counts its calls."""

    instances: ClassVar[list[FakeScorer]] = []

    def __init__(self, rate: int, window: int = 4) -> None:
        self.sample_rate = rate
        self.window_size = window
        self.calls = 0
        self.closed = False
        FakeScorer.instances.append(self)

    def reset(self) -> None:
        self.calls = 0

    def score(self, window: np.ndarray) -> float:
        self.calls += 1
        return float(np.clip(np.mean(window), 0.0, 1.0))

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        return np.array([self.score(w) for w in windows], dtype=np.float32)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_scorer() -> type[FakeScorer]:
    """The FakeScorer class (instances recorded in ``FakeScorer.instances``)."""
    FakeScorer.instances = []
    return FakeScorer
