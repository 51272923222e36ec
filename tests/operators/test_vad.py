"""The vad operator: marbles with a fake scorer, conversion, source audio, errors."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame, VadFrame
from rxaudio.operators import vad
from rxaudio.sources import from_array
from rxaudio.testing import collect, frame, run_marbles
from rxaudio.vad.silero import BatchedSileroScorer, SileroOnnx


def test_marbles_windows_probabilities_and_source_audio(fake_scorer: Any) -> None:
    a = frame(0, 6, value=0.8)
    b = frame(6, 4, value=0.2)
    out = run_marbles("-a-b-|", {"a": a, "b": b}, vad(fake_scorer))
    vs = out.values
    assert [(v.start, v.end) for v in vs] == [(0, 4), (4, 8), (8, 10)]
    assert out.ticks == [1.0, 3.0, 5.0]  # the last (partial) window comes at completion
    # the partial window is zero-padded for the scorer: (0.2 + 0.2 + 0 + 0) / 4
    assert [round(v.probability, 3) for v in vs] == [0.8, 0.5, 0.1]
    assert [v.index for v in vs] == [0, 1, 2]
    whole = np.concatenate([v.audio.samples for v in vs if v.audio is not None])
    assert np.array_equal(whole, np.concatenate([a.samples, b.samples]))
    assert out.completed
    assert fake_scorer.instances[0].closed  # released at completion


def test_last_partial_window_is_zero_padded(fake_scorer: Any) -> None:
    out = run_marbles("-a|", {"a": frame(0, 6, value=1.0)}, vad(fake_scorer))
    last = out.values[-1]
    assert (last.start, last.end) == (4, 6)
    assert last.probability == pytest.approx(0.5)  # 2 ones + 2 padded zeros


def test_marbles_error_propagation(fake_scorer: Any) -> None:
    boom = RuntimeError("read failed")
    out = run_marbles("-a-#", {"a": frame(0, 8, value=0.5)}, vad(fake_scorer), error=boom)
    assert len(out.values) == 2 and out.error is boom


def test_marbles_dispose_mid_stream_releases_the_scorer() -> None:
    shared = BatchedSileroScorer(16000)
    frames = {k: frame(i * 512, 512, value=0.0) for i, k in enumerate("abcd")}
    out = run_marbles("-a-b-c-d-|", frames, vad(shared.stream, rate=16000), dispose_at=4)
    assert len(out.values) == 2 and not out.completed
    assert len(shared) == 0  # the stream was unregistered on dispose


def test_resubscribe_fresh_state(fake_scorer: Any) -> None:
    op = vad(fake_scorer)
    lk = {"a": frame(0, 6, value=0.8), "b": frame(6, 6, value=0.2)}
    one = run_marbles("-a-b-|", lk, op).values
    two = run_marbles("-a-b-|", lk, op).values
    assert [(v.start, v.probability) for v in one] == [(v.start, v.probability) for v in two]
    assert len(fake_scorer.instances) == 2  # a scorer per subscription


@settings(max_examples=15)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_any_chunking_same_probabilities(speech: np.ndarray, sizes: list[int]) -> None:
    x = speech[: 16000 * 3]
    ref = SileroOnnx(16000)
    n = -(-len(x) // 512)
    pad = np.zeros(n * 512, dtype=np.float32)
    pad[: len(x)] = x
    expect = [ref.score(w) for w in pad.reshape(n, 512)]
    chunks, i, k = [], 0, 0
    while i < len(x):
        s = sizes[k % len(sizes)]
        chunks.append(AudioFrame(x[i : i + s].reshape(-1, 1), 16000, i))
        i += s
        k += 1
    from reactivex import from_iterable

    got = collect(from_iterable(chunks).pipe(vad()))
    assert np.max(np.abs(np.array([v.probability for v in got]) - expect)) < 1e-5
    assert got[-1].end == len(x)


def test_converts_rate_and_channels_keeps_source_audio(speech: np.ndarray) -> None:
    import soxr

    x48 = np.asarray(soxr.resample(speech[: 16000 * 4], 16000, 48000), dtype=np.float32)
    stereo = np.stack([x48, 0.5 * x48], axis=1)
    got: list[VadFrame] = collect(from_array(stereo, 48000, block_size=4800).pipe(vad()))
    assert all(v.sample_rate == 48000 for v in got)
    assert all(v.audio is not None and v.audio.channels == 2 for v in got)
    assert [v.end - v.start for v in got[:3]] == [1536, 1536, 1536]  # 512 at 16 kHz
    spans = np.concatenate([v.audio.samples for v in got if v.audio is not None])
    assert np.array_equal(spans, stereo)  # every source sample exactly once, in order
    # the probabilities follow the 16 kHz original closely
    ref = collect(from_array(speech[: 16000 * 4], 16000).pipe(vad()))
    diff = np.abs(np.array([v.probability for v in got]) - [v.probability for v in ref])
    assert np.median(diff) < 0.01


def test_8k_stream_into_a_16k_only_setting_is_refused() -> None:
    x = np.zeros(8000, dtype=np.float32)
    with pytest.raises(StreamError, match=r"8000 Hz but vad\(backend='silero', rate=16000\)"):
        collect(from_array(x, 8000).pipe(vad("silero", resample=False)))
    # with conversion (the default) it works, and rate=8000 runs the 8 kHz model natively
    assert collect(from_array(x, 8000).pipe(vad("silero")))
    assert collect(from_array(x, 8000).pipe(vad("silero", rate=8000, resample=False)))


def test_nan_and_wrong_items_are_errors() -> None:
    bad = np.zeros((600, 1), dtype=np.float32)
    bad[100] = np.nan
    out = run_marbles("-a|", {"a": AudioFrame(bad, 16000, 0)}, vad())
    assert isinstance(out.error, StreamError) and "NaN or inf" in str(out.error)
    out = run_marbles("-a|", {"a": "text"}, vad())
    assert out.error is not None and "expected AudioFrame" in str(out.error)


@pytest.mark.parametrize(
    "backend", ["webrtc", "energy", pytest.param("silero-torch", marks=pytest.mark.torch)]
)
def test_other_backends_run(speech: np.ndarray, backend: str) -> None:
    got = collect(from_array(speech[: 16000 * 3], 16000, block_size=1000).pipe(vad(backend)))
    assert got and all(0.0 <= v.probability <= 1.0 for v in got)
    assert got[-1].end == 16000 * 3


@pytest.mark.parametrize("missing", [("torch",), ("silero_vad",), ("torch", "silero_vad")])
def test_silero_torch_without_torch_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: tuple[str, ...]
) -> None:
    # a None entry in sys.modules is how Python spells "not installed" to find_spec; where torch
    # really is missing (the Python 3.13 CI run) this changes nothing
    for m in missing:
        monkeypatch.setitem(sys.modules, m, None)
    with pytest.raises(ConfigError) as e:
        vad("silero-torch")
    msg = str(e.value)
    assert "\n" not in msg
    assert "pip install 'rxaudio[silero-torch]'" in msg
    names = {"torch": "torch", "silero_vad": "silero-vad"}
    assert all(names[m] in msg for m in missing)
    assert "silero_vad" not in msg


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"backend": "nope"}, "^vad: backend must be one of 'silero', .*'energy', got 'nope'$"),
        ({"backend": "webrtc", "mode": 5}, r"^vad: mode must be one of 0, 1, 2, 3, got 5$"),
        ({"backend": "webrtc", "frame_ms": 15}, "frame_ms must be 10, 20 or 30"),
        ({"backend": "silero", "rate": 44100}, "8000 or 16000"),
        ({"backend": "energy", "rate": -1}, r"^vad: rate must be an int >= 1 Hz or none, got -1$"),
    ],
)
def test_bad_options(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        vad(**kw)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.sampled_from([8, 16, 24, 3, 5, 13, 40]), st.sampled_from([0, 0, 0, 4, 8])),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([1, 2]),
)
def test_each_window_carries_exactly_its_source_audio_for_any_chunking(
    chunks: list[tuple[int, int]], channels: int
) -> None:
    """Windows that cover exactly one input frame carry that frame (the live fast path); the
    others a slice of the kept audio: either way the samples of ``[start, end)`` (a gap as
    silence), the same frames as one big block gives."""
    from reactivex import from_iterable

    rng = np.random.default_rng(len(chunks))
    frames, whole, t = [], [], 0
    for size, gap in chunks:
        if gap and frames:
            whole.append(np.zeros((gap, channels), dtype=np.float32))
            t += gap
        x = rng.uniform(0.0, 1.0, (size, channels)).astype(np.float32)
        frames.append(AudioFrame(x, 16000, t))
        whole.append(x)
        t += size
    signal = np.concatenate(whole)

    class Mean:  # the window's mean: a probability that depends on its samples
        sample_rate, window_size = 16000, 8

        def score(self, window: np.ndarray) -> float:
            return float(np.mean(window))

        def score_many(self, windows: np.ndarray) -> np.ndarray:
            return np.array([self.score(w) for w in windows], dtype=np.float32)

        def reset(self) -> None:
            pass

    def scorer(rate: int) -> Any:
        return Mean()

    got = collect(from_iterable(frames).pipe(vad(scorer)))
    one = collect(from_iterable([AudioFrame(signal, 16000, 0)]).pipe(vad(scorer)))
    assert [(v.start, v.end, v.index, v.probability) for v in got] == [
        (v.start, v.end, v.index, v.probability) for v in one
    ]
    for v in got:
        assert v.audio is not None and v.audio.start == v.start
        assert np.array_equal(v.audio.samples, signal[v.start : v.end])
