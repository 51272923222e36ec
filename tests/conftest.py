"""Shared fixtures. Component-specific fixtures live in the conftest of their test folder."""

from __future__ import annotations

import os

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
