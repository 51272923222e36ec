"""Fixtures for the CLI tests: the virtual microphone (shared helper in tests/e2e) and helpers."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _load(name: str, path: Path) -> ModuleType:
    """Import a helper module by path under a fixed name (test folders are not packages, and
    pytest runs with --import-mode=importlib); test modules then ``import`` it by that name."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


# the same name tests/e2e uses, so one module (and one server at a time) per process
vm = _load("rxaudio_tests_virtual_mic", Path(__file__).parents[1] / "e2e" / "virtual_mic.py")
_load("rxaudio_tests_cli", Path(__file__).with_name("cli_helpers.py"))


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running PulseAudio with a pipe source fed by a real-time feeder thread."""
    root = str(tmp_path_factory.mktemp("pulse"))
    if len(root) > 80:  # a unix socket path must stay under 108 bytes
        root = tempfile.mkdtemp(prefix="rxaudio-pulse-")
    with vm.virtual_microphone(root) as mic:
        yield mic


@pytest.fixture
def no_sound_server_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess that sees no PulseAudio server (so no devices here)."""
    conf = tmp_path / "client.conf"
    conf.write_text("autospawn = no\n")
    return dict(
        os.environ,
        PULSE_SERVER=f"unix:{tmp_path}/no-server-here",
        PULSE_CLIENTCONFIG=str(conf),
    )
