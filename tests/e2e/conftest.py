"""Fixtures for end-to-end tests with real components (PortAudio through PulseAudio)."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def load_virtual_mic() -> ModuleType:
    """The shared helper module (loaded by path: test folders are not packages here)."""
    name = "rxaudio_tests_virtual_mic"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("virtual_mic.py")
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


vm = load_virtual_mic()


def short_root(path: Path) -> str:
    """``path``, or a shorter temporary folder: a unix socket path must stay under 108 bytes."""
    return str(path) if len(str(path)) <= 80 else tempfile.mkdtemp(prefix="rxaudio-pulse-")


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running PulseAudio with a pipe source fed by a real-time feeder thread."""
    with vm.virtual_microphone(short_root(tmp_path_factory.mktemp("pulse"))) as mic:
        yield mic
