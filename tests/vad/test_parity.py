"""Segments of vad + hysteresis + buffer_utterance equal silero's get_speech_timestamps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.frames import AudioFrame, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.testing import collect

# every test compares against silero's own get_speech_timestamps, which needs torch
pytestmark = pytest.mark.torch


def ours(x: np.ndarray, rate: int, sizes: list[int]) -> list[Utterance]:
    chunks, i, k = [], 0, 0
    while i < len(x):
        s = sizes[k % len(sizes)]
        chunks.append(
            AudioFrame(np.ascontiguousarray(x[i : i + s]).reshape(len(x[i : i + s]), -1), rate, i)
        )
        i += s
        k += 1
    chain = (vad(), hysteresis(), buffer_utterance(pre_roll_ms=0, post_roll_ms=0))
    return [u for u in collect(from_iterable(chunks).pipe(*chain)) if isinstance(u, Utterance)]


def reference(model: Any, x: np.ndarray, pad_ms: int = 0) -> list[tuple[int, int]]:
    import torch
    from silero_vad import get_speech_timestamps

    ts = get_speech_timestamps(torch.from_numpy(x), model, speech_pad_ms=pad_ms)
    return [(t["start"], t["end"]) for t in ts]


def test_bundled_sample_exact(pkg_onnx: Any, speech: np.ndarray) -> None:
    got = [(u.start, u.end) for u in ours(speech, 16000, [1024])]
    assert got == reference(pkg_onnx, speech)
    assert len(got) >= 3


def test_within_one_window_of_default_padding(pkg_onnx: Any, speech: np.ndarray) -> None:
    got = [(u.start, u.end) for u in ours(speech, 16000, [4096])]
    ref = reference(pkg_onnx, speech, pad_ms=30)
    assert len(got) == len(ref)
    for (a, b), (c, d) in zip(got, ref, strict=True):
        assert abs(a - c) <= 512 and abs(b - d) <= 512


@settings(max_examples=8)
@given(st.lists(st.integers(64, 40000), min_size=1, max_size=12))
def test_any_chunking(pkg_onnx: Any, speech: np.ndarray, sizes: list[int]) -> None:
    # chunks down to one sample are covered on 3 s in tests/operators/test_vad.py (17 s of
    # 1-sample frames would take most of this folder's time budget)
    expect = reference(pkg_onnx, speech)
    assert [(u.start, u.end) for u in ours(speech, 16000, sizes)] == expect


def test_48k_stereo_within_one_window(pkg_onnx: Any, speech: np.ndarray) -> None:
    import soxr

    x48 = np.asarray(soxr.resample(speech, 16000, 48000), dtype=np.float32)
    got = ours(np.stack([x48, x48], axis=1), 48000, [4800])
    ref = reference(pkg_onnx, speech)
    assert len(got) == len(ref)
    for u, (c, d) in zip(got, ref, strict=True):
        assert u.sample_rate == 48000 and u.samples.shape[1] == 2
        assert abs(u.start - 3 * c) <= 3 * 512 and abs(u.end - 3 * d) <= 3 * 512
