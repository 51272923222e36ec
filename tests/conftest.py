"""Shared fixtures. Component-specific fixtures live in the conftest of their test folder."""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from rxaudio.data import speech_sample, speech_segments

settings.register_profile(
    "default",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def speech_path() -> str:
    """Path of the bundled 16 kHz mono speech sample."""
    return speech_sample()


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    """The bundled speech sample as float32 (n,) at 16 kHz."""
    import soundfile as sf

    x, sr = sf.read(speech_sample(), dtype="float32")
    assert sr == 16000
    return x


@pytest.fixture(scope="session")
def speech_truth() -> list[dict[str, float]]:
    """True speech segments of the sample (seconds)."""
    return speech_segments()


@pytest.fixture(scope="session")
def speech8k(speech: np.ndarray) -> np.ndarray:
    """The bundled sample at 8 kHz."""
    import soxr

    return np.asarray(soxr.resample(speech, 16000, 8000), dtype=np.float32)


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
