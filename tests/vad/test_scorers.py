"""VAD algorithms without Rx: parity with the silero-vad package, batching, WebRTC, energy."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from rxaudio.errors import ConfigError
from rxaudio.vad import backend_factory
from rxaudio.vad.energy import EnergyScorer
from rxaudio.vad.silero import BatchedSileroScorer, SileroOnnx, SileroTorch
from rxaudio.vad.webrtc import WebRtcScorer


def windows(x: np.ndarray, w: int) -> np.ndarray:
    n = -(-len(x) // w)
    pad = np.zeros(n * w, dtype=np.float32)
    pad[: len(x)] = x
    return pad.reshape(n, w)


def package_probs(model: Any, x: np.ndarray, rate: int) -> np.ndarray:
    """Per-window probabilities as the package's VADIterator computes them (a fresh stream,
    then ``model(window, rate).item()`` per window)."""
    import torch

    model.reset_states()
    w = 512 if rate == 16000 else 256
    return np.array([model(torch.from_numpy(row.copy()), rate).item() for row in windows(x, w)])


@pytest.mark.torch
@pytest.mark.parametrize("rate", [16000, 8000])
def test_onnx_equals_package(
    pkg_onnx: Any, speech: np.ndarray, speech8k: np.ndarray, rate: int
) -> None:
    x = speech if rate == 16000 else speech8k
    pkg_onnx.reset_states()
    ref = package_probs(pkg_onnx, x, rate)
    ours = SileroOnnx(rate)
    got = np.array([ours.score(w) for w in windows(x, ours.window_size)])
    assert got.shape == ref.shape
    assert np.max(np.abs(got - ref)) < 1e-4
    assert ref.max() > 0.9 and ref.min() < 0.1  # real speech and real silence in the sample


def test_sequence_scoring_equals_window_by_window(speech: np.ndarray) -> None:
    a, b = SileroOnnx(16000), SileroOnnx(16000)
    ws = windows(speech, 512)
    one = np.array([a.score(w) for w in ws])
    # runs of several lengths, including single windows, carry state across calls
    parts, i = [], 0
    for k in (1, 7, 1, 100, 3, 2000):
        parts.append(b.score_many(ws[i : i + k]))
        i += k
    many = np.concatenate(parts)
    assert np.max(np.abs(many - one)) < 1e-5


@pytest.mark.torch
def test_torch_equals_package_jit(pkg_jit: Any, speech: np.ndarray) -> None:
    pkg_jit.reset_states()
    x = speech[: 16000 * 5]
    ref = package_probs(pkg_jit, x, 16000)
    ours = SileroTorch(16000)
    got = ours.score_many(windows(x, 512))
    assert np.max(np.abs(got - ref)) < 1e-4
    ours.reset()
    assert abs(ours.score(windows(x, 512)[0]) - ref[0]) < 1e-6


def test_batched_equals_single(speech: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    n_streams = 6
    signals = [
        np.roll(speech, 3000 * i) * (0.3 + 0.2 * i) + 0.01 * rng.standard_normal(len(speech))
        for i in range(n_streams)
    ]
    signals = [s.astype(np.float32) for s in signals]
    shared = BatchedSileroScorer(16000)
    handles = [shared.register() for _ in range(n_streams)]
    singles = [SileroOnnx(16000) for _ in range(n_streams)]
    ws = [windows(s, 512) for s in signals]
    worst = 0.0
    for k in range(120):
        # streams come and go: stream 5 skips odd windows' ticks (scored on its own later)
        active = [i for i in range(n_streams) if not (i == 5 and k % 2)]
        batch = {handles[i]: ws[i][k] for i in active}
        got = shared.score_batch(batch)
        for i in active:
            worst = max(worst, abs(got[handles[i]] - singles[i].score(ws[i][k])))
        if 5 not in active:
            worst = max(worst, abs(shared.score(handles[5], ws[5][k]) - singles[5].score(ws[5][k])))
    assert worst < 1e-5
    shared.unregister(handles[0])
    assert len(shared) == n_streams - 1
    with pytest.raises(KeyError, match="unknown stream handle"):
        shared.score(handles[0], ws[0][0])
    with pytest.raises(ValueError, match="512 samples"):
        shared.score(handles[1], np.zeros(100, dtype=np.float32))


def test_batched_streams_come_and_go_and_keep_their_own_state(speech: np.ndarray) -> None:
    # more streams than the first rows, some leaving mid-way: a new stream reuses a row and
    # starts from zero state and context, the others go on as if alone (and a reset zeroes one)
    shared = BatchedSileroScorer(16000)
    ws = windows(speech, 512)
    live: dict[int, tuple[SileroOnnx, int]] = {}  # handle -> (its own scorer, its next window)
    worst = 0.0
    for k in range(60):
        if k % 3 == 0:  # a new stream every third tick, starting at its own offset
            live[shared.register()] = (SileroOnnx(16000), (7 * k) % 40)
        if k % 5 == 4:  # the oldest leaves
            oldest = min(live)
            del live[oldest]
            shared.unregister(oldest)
        if k == 30:
            h = max(live)
            shared.reset(h)
            live[h][0].reset()
        got = shared.score_batch({h: ws[j] for h, (_, j) in live.items()})
        for h, (ref, j) in list(live.items()):
            worst = max(worst, abs(got[h] - ref.score(ws[j])))
            live[h] = (ref, j + 1)
    assert len(shared) == len(live)
    assert worst < 1e-5


def test_batched_stream_is_a_scorer(speech: np.ndarray) -> None:
    shared = BatchedSileroScorer(16000)
    s = shared.stream(16000)
    ref = SileroOnnx(16000)
    ws = windows(speech[:16000], 512)
    assert np.allclose(s.score_many(ws), [ref.score(w) for w in ws], atol=1e-5)
    s.close()
    assert len(shared) == 0
    with pytest.raises(ConfigError, match="16000 Hz"):
        shared.stream(8000)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_webrtc_modes_and_frames(
    speech: np.ndarray, speech_truth: list[dict[str, Any]], mode: int, frame_ms: int
) -> None:
    s = WebRtcScorer(16000, mode=mode, frame_ms=frame_ms)
    assert s.window_size == 16 * frame_ms
    probs = s.score_many(windows(speech, s.window_size))
    assert set(np.unique(probs)) <= {0.0, 1.0}
    t = (np.arange(len(probs)) + 0.5) * frame_ms / 1000
    inside = np.zeros(len(probs), dtype=bool)
    for seg in speech_truth:
        inside |= (t >= seg["start"]) & (t < seg["end"])
    # speech is mostly detected; pure silence (the first second) is not
    assert probs[inside].mean() > 0.6
    assert probs[t < 0.9].mean() < 0.2


def test_energy_tracks_noise_floor() -> None:
    rng = np.random.default_rng(0)
    rate = 16000
    noise = (0.01 * rng.standard_normal(rate * 6)).astype(np.float32)  # -40 dBFS
    x = noise.copy()
    t = np.arange(rate) / rate
    x[rate * 3 : rate * 4] += (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    s = EnergyScorer(rate)
    probs = s.score_many(windows(x, s.window_size))
    sec = np.arange(len(probs)) * 0.03
    assert probs[(sec > 3.05) & (sec < 3.95)].min() > 0.99
    assert probs[(sec > 0.5) & (sec < 2.9)].max() < 0.5  # steady noise is never speech
    assert abs(s.floor_db - (-40.0)) < 6.0
    s.reset()
    assert s.floor_db == -120.0
    assert s.score(np.zeros(480, dtype=np.float32)) == 0.0  # digital silence


def test_scorer_bad_input() -> None:
    with pytest.raises(ValueError, match="512 samples"):
        SileroOnnx(16000).score(np.zeros(256, dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(k, 512\)"):
        SileroOnnx(16000).score_many(np.zeros((2, 300), dtype=np.float32))
    with pytest.raises(ConfigError, match="8000 or 16000"):
        SileroOnnx(44100)
    with pytest.raises(ConfigError, match="mode must be 0, 1, 2 or 3"):
        WebRtcScorer(16000, mode=4)
    with pytest.raises(ConfigError, match="frame_ms must be 10, 20 or 30"):
        WebRtcScorer(16000, frame_ms=25)
    with pytest.raises(ConfigError, match="8000, 16000, 32000, 48000"):
        WebRtcScorer(22050)
    with pytest.raises(ConfigError, match="frame_ms"):
        EnergyScorer(16000, frame_ms=5)
    with pytest.raises(ConfigError, match="margin_db"):
        EnergyScorer(16000, margin_db=float("nan"))
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        backend_factory("nope")
    with pytest.raises(ConfigError, match="8000 or 16000"):
        backend_factory("silero", rate=22050)


def test_onnx_backend_never_imports_torch(speech_path: str) -> None:
    code = (
        "import sys, soundfile as sf\n"
        "from rxaudio.sources import from_file\n"
        "from rxaudio.operators import vad, hysteresis, buffer_utterance\n"
        "from rxaudio.testing import collect\n"
        f"out = collect(from_file({speech_path!r}).pipe(vad(), hysteresis(), buffer_utterance()))\n"
        "assert len(out) >= 3, out\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'onnxruntime' in sys.modules\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
