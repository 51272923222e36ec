"""Fixtures for the voice-activity tests: the silero-vad package's own models as references.

Both need torch (the silero-torch extra); a test using them carries the ``torch`` marker, so it
skips with the reason where torch is not installed."""

from __future__ import annotations

from typing import Any

import pytest


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
