"""Shared fixtures. Component-specific fixtures live in the conftest of their test folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

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


def find(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# torch is optional (the silero-torch extra): the default install and the Python 3.13 CI run have
# none. Tests marked `torch` (the JIT backend, silero's own reference code) skip there, saying why.
TORCH_MISSING = [p for p, m in (("torch", "torch"), ("silero-vad", "silero_vad")) if not find(m)]
NEEDS_TORCH = (
    f"needs {' and '.join(TORCH_MISSING)} (the silero-torch extra), not installed here: "
    "silero's own reference code and the JIT backend run only with torch"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not TORCH_MISSING:
        return
    skip = pytest.mark.skip(reason=NEEDS_TORCH)
    for item in items:
        if item.get_closest_marker("torch") is not None:
            item.add_marker(skip)


def _from_text(name: str, options: dict[str, str]) -> Any:
    """Build element ``name`` from text options (``{"rate": "16000"}``) as a launch string does:
    each option parsed and checked by its declaration, then the factory called."""
    from rxaudio.errors import ConfigError
    from rxaudio.pipeline import registry

    info = registry.get(name)
    kwargs = {}
    for key, text in options.items():
        p = info.prop(key)
        if p.type is object:
            raise ConfigError(f"{name}: {p.name} cannot be set from text (set it from Python)")
        kwargs[p.name] = p.parse(name, text)
    return info.factory(**kwargs)


@pytest.fixture
def from_text() -> Any:
    """``from_text(name, {"option": "text"})``: an element built from text options."""
    return _from_text


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


# --- a real redis-server (sinks, sources, worker, server) ---------------------------------

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1:``port`` keeping its files in ``directory``.

    ``start()`` may be called again after ``kill()``: the same port, the same folder, so with
    ``appendonly`` the data written before the kill comes back.
    """

    def __init__(self, directory: Path, port: int, *, appendonly: bool = True) -> None:
        self.dir, self.port, self.appendonly = directory, port, appendonly
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers PING (``RuntimeError`` when it dies)."""
        assert REDIS_SERVER is not None
        cmd = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(self.dir),
        ]  # fmt: skip
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        import redis

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited ({self.proc.returncode}): "
                    + (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                )
            try:
                if redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping():
                    return
            except redis.exceptions.RedisError:
                pass  # not listening yet, or still loading its data
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-stream, as in a crash."""
        if self.proc is not None:
            self.thaw()
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it does not go)."""
        if self.proc is None:
            return
        self.thaw()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` (``--save "" --appendonly yes``) on a free loopback port."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    folder = tmp_path / "redis"
    folder.mkdir()
    for attempt in range(5):  # a free port can be taken between asking and binding
        server = RedisServer(folder, free_port())
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 4:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dead_url() -> str:
    """A redis:// URL on loopback where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"
