"""Silero VAD: the ONNX models shipped inside rxaudio, and the TorchScript one from ``silero-vad``.

:class:`SileroOnnx` runs ``silero_vad.onnx`` with onnxruntime and never imports torch. The ONNX
files live in ``rxaudio/vad/models/`` (copied unchanged from the ``silero-vad`` package, whose
licence and version are noted beside them), so the default backend needs neither torch nor the
``silero-vad`` package, which requires torch. It carries the model state and the 64-sample (32 at
8 kHz) context between windows exactly as the package's ``OnnxWrapper``/``VADIterator`` do, so
the probabilities are identical. Runs of 16 kHz windows are scored with the shipped
``silero_vad_16k_sequence.onnx`` in one call (bit-identical output; its ``h``/``c`` are the two
halves of the streaming model's ``state``).

:class:`SileroTorch` runs the TorchScript model shipped in the ``silero-vad`` package (the
``silero-torch`` extra; imports torch on construction). :func:`check_torch_backend` says in one
line what to install when either is missing.
:class:`BatchedSileroScorer` scores one window of many independent streams in one call.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import F32, check_window

RATES = (8000, 16000)
# The streaming model is faster for a single window; a run of this many or more windows goes
# through the sequence model (measured break-even on 2 cores: about 2 windows).
SEQUENCE_MIN_WINDOWS = 2


MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
TORCH_EXTRA = "pip install 'rxaudio[silero-torch]'"


def model_path(name: str) -> str:
    """Path of an ONNX model file shipped with rxaudio (``rxaudio/vad/models/``)."""
    path = os.path.join(MODELS_DIR, name)
    if not os.path.exists(path):
        raise ConfigError(
            f"silero backend: model file {name} missing from rxaudio's package "
            f"({MODELS_DIR}); reinstall rxaudio (pip install --force-reinstall 'rxaudio[vad]')"
        )
    return path


def check_torch_backend() -> None:
    """Raise :class:`ConfigError` (one line naming the extra) unless ``backend=silero-torch`` can
    run: torch and the ``silero-vad`` package installed. Imports neither."""
    missing = [m for m in ("torch", "silero_vad") if importlib.util.find_spec(m) is None]
    if missing:
        names = " and ".join("silero-vad" if m == "silero_vad" else m for m in missing)
        raise ConfigError(
            f"vad backend silero-torch needs {names}, not installed; install the extra: "
            f"{TORCH_EXTRA} (torch pinned first for the CPU build: pip install torch==2.13.0), "
            "or use backend=silero (onnxruntime, no torch)"
        )


def torch_model_path(name: str = "silero_vad.jit") -> str:
    """Path of the TorchScript model shipped in the ``silero-vad`` package (without importing
    it: its ``__init__`` imports torch)."""
    check_torch_backend()
    spec = importlib.util.find_spec("silero_vad")
    where = list(spec.submodule_search_locations or ()) if spec is not None else []
    path = os.path.join(where[0], "data", name) if where else name
    if not where or not os.path.exists(path):
        raise ConfigError(
            f"vad backend silero-torch: model file {name} missing from the silero-vad package; "
            f"reinstall it ({TORCH_EXTRA})"
        )
    return path


@functools.lru_cache(maxsize=8)
def _session(name: str) -> Any:
    """One onnxruntime session per model file and process (sessions are thread-safe)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(
        model_path(name), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def window_sizes(sample_rate: int) -> tuple[int, int]:
    """``(window, context)`` samples for a Silero rate: 512/64 at 16 kHz, 256/32 at 8 kHz."""
    if sample_rate not in RATES:
        raise ConfigError(
            f"silero: sample rate must be 8000 or 16000 Hz, got {sample_rate!r}; "
            "resample first (vad() does it for you)"
        )
    return (512, 64) if sample_rate == 16000 else (256, 32)


class SileroOnnx:
    """Silero VAD through onnxruntime, one stream.

    Parameters
    ----------
    sample_rate
        8000 or 16000 Hz (windows of 256 or 512 samples).
    sequence
        Score runs of windows (``score_many``) with the whole-sequence model at 16 kHz.
    """

    def __init__(self, sample_rate: int = 16000, *, sequence: bool = True) -> None:
        self.sample_rate = sample_rate
        self.window_size, self.context_size = window_sizes(sample_rate)
        self._session = _session("silero_vad.onnx")
        self._seq = (
            _session("silero_vad_16k_sequence.onnx")
            if sequence and (sample_rate == 16000)
            else None
        )
        self._sr = np.array(sample_rate, dtype=np.int64)
        self.reset()

    def _binding(self, i: int) -> Any:
        # IOBinding reads and writes these numpy buffers in place: no per-call allocation or
        # input validation (about 5 us less per window than InferenceSession.run). The state
        # ping-pongs between two buffers, since an output must not alias an input.
        b = self._session.io_binding()
        b.bind_cpu_input("input", self._x)
        b.bind_cpu_input("state", self._st[i])
        b.bind_cpu_input("sr", self._sr)
        b.bind_output("output", "cpu", 0, np.float32, [1, 1], self._out.ctypes.data)
        b.bind_output("stateN", "cpu", 0, np.float32, [2, 1, 128], self._st[1 - i].ctypes.data)
        return b

    def reset(self) -> None:
        """Zero the model state and context (a new stream)."""
        if not hasattr(self, "_bind"):
            self._x = np.zeros((1, self.context_size + self.window_size), dtype=np.float32)
            self._st = [np.zeros((2, 1, 128), dtype=np.float32) for _ in range(2)]
            self._out = np.zeros((1, 1), dtype=np.float32)
            self._bind = [self._binding(0), self._binding(1)]
        self._x[:] = 0.0
        self._cur = 0
        self._st[0][:] = 0.0

    def score(self, window: F32) -> float:
        """Speech probability of one window (``window_size`` samples)."""
        w = check_window("silero", window, self.window_size)
        c = self.context_size
        self._x[0, c:] = w
        self._session.run_with_iobinding(self._bind[self._cur])
        self._cur = 1 - self._cur
        self._x[0, :c] = w[-c:]  # the next window's context
        return float(self._out[0, 0])

    def score_many(self, windows: F32) -> F32:
        """Probabilities of consecutive windows ``(k, window_size)``; equal to ``score`` per row."""
        w = np.asarray(windows, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != self.window_size:
            raise ValueError(
                f"silero: windows must have shape (k, {self.window_size}), got {w.shape}"
            )
        k = w.shape[0]
        if k == 0:
            return np.zeros(0, dtype=np.float32)
        if self._seq is None or k < SEQUENCE_MIN_WINDOWS:
            return np.array([self.score(row) for row in w], dtype=np.float32)
        c = self.context_size
        ctx = np.empty((k, c), dtype=np.float32)
        ctx[0] = self._x[0, :c]
        ctx[1:] = w[:-1, -c:]
        inp = np.ascontiguousarray(np.concatenate((ctx, w), axis=1))
        state = self._st[self._cur]
        probs, h, cell = self._seq.run(
            ["speech_probs", "hn", "cn"],
            {"input": inp, "h": state[0:1], "c": state[1:2]},
        )
        state[0] = h[0]
        state[1] = cell[0]
        self._x[0, :c] = w[-1, -c:]
        return np.asarray(probs, dtype=np.float32).reshape(-1)


class SileroTorch:
    """Silero VAD through torch on the ``silero-vad`` package's TorchScript model, one stream.

    The JIT model keeps its own context and state (``model.reset_states()`` zeroes them), as the
    package's ``VADIterator`` relies on. Each instance loads its own model copy, since the
    state lives inside the model. Imports torch (about 1.4 s).
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.window_size, _ = window_sizes(sample_rate)
        path = torch_model_path("silero_vad.jit")  # ConfigError naming the extra if missing
        import torch

        self._torch = torch
        # torch.jit.load is untyped in torch's stubs
        self._model = torch.jit.load(  # type: ignore[no-untyped-call]
            path, map_location="cpu"
        )
        self._model.eval()
        self.reset()

    def reset(self) -> None:
        """Zero the model state and context."""
        self._model.reset_states()

    def score(self, window: F32) -> float:
        """Speech probability of one window."""
        w = check_window("silero-torch", window, self.window_size)
        with self._torch.no_grad():
            out = self._model(self._torch.from_numpy(w.copy()), self.sample_rate)
        return float(out.item())

    def score_many(self, windows: F32) -> F32:
        """One ``score`` per row."""
        return np.array([self.score(row) for row in windows], dtype=np.float32)


class BatchedSileroScorer:
    """Silero VAD for many independent streams, one onnxruntime call per batch of windows.

    Each registered stream keeps its own model state and context; scoring the current window of
    N streams together gives the same probabilities as N separate :class:`SileroOnnx` scorers
    (within 1e-5: onnxruntime's batched kernels may round differently). Thread-safe: streams
    can be registered, scored and removed from any thread.

    Usage (for example in a server that collects each client's next window per tick)::

        shared = BatchedSileroScorer(16000)
        a, b = shared.register(), shared.register()
        probs = shared.score_batch({a: window_a, b: window_b})   # {a: p_a, b: p_b}
        shared.unregister(a)

    or, per client pipeline, ``vad(backend=shared.stream)``: :meth:`stream` returns a
    :class:`Scorer` bound to a fresh stream (scoring one window per call).

    Parameters
    ----------
    sample_rate
        8000 or 16000 Hz.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = sample_rate
        self.window_size, self.context_size = window_sizes(sample_rate)
        self._session = _session("silero_vad.onnx")
        self._sr = np.array(sample_rate, dtype=np.int64)
        self._lock = threading.Lock()
        # every stream's state and context as one row of two arrays, so that a batch gathers
        # and scatters them with one indexed copy each instead of a Python loop of copies
        self._rows: dict[int, int] = {}  # handle -> row
        self._free: list[int] = []  # rows of unregistered streams, reused first
        self._state_rows: F32 = np.zeros((2, 0, 128), dtype=np.float32)
        self._context_rows: F32 = np.zeros((0, self.context_size), dtype=np.float32)
        self._next = 0

    def register(self) -> int:
        """Add a stream with fresh state; return its handle."""
        with self._lock:
            h = self._next
            self._next += 1
            if not self._free:  # grow by half again (amortised), at least 8 rows
                have = self._context_rows.shape[0]
                grow = max(8, have // 2)
                self._state_rows = np.concatenate(
                    (self._state_rows, np.zeros((2, grow, 128), dtype=np.float32)), axis=1
                )
                self._context_rows = np.concatenate(
                    (self._context_rows, np.zeros((grow, self.context_size), dtype=np.float32))
                )
                self._free.extend(range(have + grow - 1, have - 1, -1))
            row = self._rows[h] = self._free.pop()
            self._state_rows[:, row] = 0.0
            self._context_rows[row] = 0.0
            return h

    def unregister(self, handle: int) -> None:
        """Forget a stream (unknown handles are ignored)."""
        with self._lock:
            row = self._rows.pop(handle, None)
            if row is not None:
                self._free.append(row)

    def reset(self, handle: int) -> None:
        """Zero one stream's state."""
        with self._lock:
            self._known(handle)
            row = self._rows[handle]
            self._state_rows[:, row] = 0.0
            self._context_rows[row] = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    def _known(self, handle: int) -> None:
        if handle not in self._rows:
            raise KeyError(f"BatchedSileroScorer: unknown stream handle {handle}; register() it")

    def score_batch(self, windows: Mapping[int, F32]) -> dict[int, float]:
        """Score the next window of each given stream in one call: ``{handle: probability}``.

        Each stream appears at most once per call (its windows must be consecutive in time).
        """
        if not windows:
            return {}
        handles = list(windows)
        n, ctx, size = len(handles), self.context_size, self.window_size
        with self._lock:
            rows = self._rows
            for h in handles:
                if h not in rows:
                    self._known(h)
            idx = np.fromiter((rows[h] for h in handles), dtype=np.intp, count=n)
            x = np.empty((n, ctx + size), dtype=np.float32)
            for i, h in enumerate(handles):
                w = windows[h]
                if not (type(w) is np.ndarray and w.dtype == np.float32 and w.shape == (size,)):
                    w = check_window("BatchedSileroScorer", w, size)
                x[i, ctx:] = w
            x[:, :ctx] = self._context_rows[idx]
            state = self._state_rows[:, idx]  # fancy indexing: a copy
            out, new_state = self._session.run(None, {"input": x, "state": state, "sr": self._sr})
            self._state_rows[:, idx] = new_state
            self._context_rows[idx] = x[:, size:]
        return dict(zip(handles, out[:, 0].tolist(), strict=True))

    def score(self, handle: int, window: F32) -> float:
        """Score one window of one stream (a batch of one)."""
        return self.score_batch({handle: window})[handle]

    def stream(self, sample_rate: int | None = None) -> BatchedStream:
        """A :class:`Scorer` bound to a newly registered stream (for ``vad(backend=...)``)."""
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ConfigError(
                f"BatchedSileroScorer runs at {self.sample_rate} Hz, asked for {sample_rate} Hz; "
                f"use vad(backend=shared.stream, rate={self.sample_rate})"
            )
        return BatchedStream(self)


class BatchedStream:
    """One stream of a :class:`BatchedSileroScorer`, usable wherever a Scorer is."""

    def __init__(self, shared: BatchedSileroScorer) -> None:
        self.shared = shared
        self.sample_rate = shared.sample_rate
        self.window_size = shared.window_size
        self.handle = shared.register()

    def reset(self) -> None:
        """Zero this stream's state."""
        self.shared.reset(self.handle)

    def score(self, window: F32) -> float:
        """Score this stream's next window."""
        return self.shared.score(self.handle, window)

    def score_many(self, windows: F32) -> F32:
        """One ``score`` per row."""
        return np.array([self.score(row) for row in windows], dtype=np.float32)

    def close(self) -> None:
        """Unregister from the shared scorer."""
        self.shared.unregister(self.handle)
