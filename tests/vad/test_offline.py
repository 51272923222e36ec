"""The offline fast path of ``rxaudio segment`` equals the operator chain, byte for byte."""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.apps._segment import segment_file
from rxaudio.apps.cli import main
from rxaudio.frames import AudioFrame, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.testing import collect
from rxaudio.vad.hysteresis import HysteresisSettings
from rxaudio.vad.offline import OfflineSegmenter
from rxaudio.vad.spans import SpanBuffer
from rxaudio.vad.utterance import UtteranceSettings

from .conftest import FakeScorer

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "make_devset.py")


def _args(**kw: Any) -> argparse.Namespace:
    base = dict(
        backend="silero", mode=3, frame_ms=30, threshold=0.5, neg_threshold=None,
        min_speech_ms=250, min_silence_ms=100, pre_roll_ms=300, post_roll_ms=200, min_ms=0,
        max_ms=30000,
    )  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def _same_outputs(path: str, tmp: Path, args: argparse.Namespace) -> int:
    """Run both paths on ``path``; assert every output file is byte-identical; return count."""
    fast, slow = tmp / "fast", tmp / "slow"
    fast.mkdir(parents=True)
    slow.mkdir(parents=True)
    a = segment_file(path, "x", str(fast), args, streaming=False)
    b = segment_file(path, "x", str(slow), args, streaming=True)
    assert a == b
    names = sorted(os.listdir(fast))
    assert names == sorted(os.listdir(slow))
    assert {"x.jsonl", "x.rttm", "x.txt"} <= set(names)
    for n in names:
        assert (fast / n).read_bytes() == (slow / n).read_bytes(), n
    return int(a["utterances"])


def test_fast_path_equals_chain_on_the_bundled_sample(tmp_path: Path, speech_path: str) -> None:
    assert _same_outputs(speech_path, tmp_path / "d", _args()) >= 3
    # long utterances split at max_ms, no pre-roll clipping at the file start, min_ms drops
    n = _same_outputs(speech_path, tmp_path / "s", _args(max_ms=1400, pre_roll_ms=350, min_ms=200))
    assert n >= 6


@pytest.mark.parametrize("backend", ["webrtc", "energy"])
def test_fast_path_equals_chain_other_backends(
    tmp_path: Path, speech_path: str, backend: str
) -> None:
    assert _same_outputs(speech_path, tmp_path, _args(backend=backend)) >= 1


def test_fast_path_equals_chain_on_devset_clips_at_several_rates(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_devset", SCRIPT)
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    for i, (snr, rate, channels) in enumerate(
        [(10, 8000, 1), (5, 44100, 2), (0, 48000, 1), (20, 22050, 1)]
    ):
        x, _truth, _kind = dev.make_clip(400 + i, snr, rate, n_sentences=3)
        if channels == 2:  # a different right channel: the mono mix must match too
            x = np.stack((x, 0.5 * np.roll(x, 37)), axis=1)
        path = str(tmp_path / f"clip{rate}.wav")
        sf.write(path, x, rate, subtype="FLOAT")
        args = _args(max_ms=2500) if i % 2 else _args()
        assert _same_outputs(path, tmp_path / str(rate), args) >= 2, rate


def test_cli_streaming_flag(tmp_path: Path, speech_path: str) -> None:
    for flag, out in (([], "a"), (["--streaming"], "b")):
        d = str(tmp_path / out)
        assert main(["segment", speech_path, "--out", d, "--no-progress", *flag]) == 0
    a = sorted(os.listdir(tmp_path / "a"))
    assert a == sorted(os.listdir(tmp_path / "b")) and len(a) > 3
    for n in a:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()


def _chain(
    x: np.ndarray, rate: int, blocks: list[int], hs: HysteresisSettings, us: UtteranceSettings
) -> list[Utterance]:
    frames, pos = [], 0
    for n in blocks:
        if pos < len(x):
            frames.append(AudioFrame(x[pos : pos + n], rate, pos))
            pos += n
    if pos < len(x):
        frames.append(AudioFrame(x[pos:], rate, pos))
    ops = (
        vad(lambda r: FakeScorer(r)),
        hysteresis(hs.threshold, hs.neg_threshold, hs.min_speech_ms, hs.min_silence_ms),
        buffer_utterance(us.pre_roll_ms, us.post_roll_ms, us.min_ms, us.max_ms, max_gap_ms=None),
    )
    return [u for u in collect(from_iterable(frames).pipe(*ops)) if isinstance(u, Utterance)]


def _offline(
    x: np.ndarray, rate: int, blocks: list[int], hs: HysteresisSettings, us: UtteranceSettings
) -> list[Utterance]:
    seg = OfflineSegmenter(rate, lambda r: FakeScorer(r), hs, us)
    out: list[Utterance] = []
    pos = 0
    for n in [*blocks, len(x)]:
        if pos < len(x):
            blk = x[pos : pos + n]
            seg.source(pos, blk)
            out += seg.converted(pos, blk[:, 0], rate)
            pos += blk.shape[0]
    out += seg.finish()
    return out


@settings(max_examples=40)
@given(
    levels=st.lists(
        st.sampled_from([0.0, 0.2, 0.34, 0.36, 0.49, 0.5, 0.8, 1.0]), min_size=1, max_size=300
    ),
    runs=st.lists(st.integers(1, 40), min_size=1, max_size=300),
    tail=st.integers(0, 3),
    blocks=st.lists(st.integers(1, 200), min_size=1, max_size=20),
    max_ms=st.sampled_from([1400.0, 2500.0, 30000.0]),
    min_ms=st.sampled_from([0.0, 300.0]),
    min_silence_ms=st.sampled_from([0.0, 100.0, 400.0]),
)
def test_offline_segmenter_equals_the_operators(
    levels: list[float],
    runs: list[int],
    tail: int,
    blocks: list[int],
    max_ms: float,
    min_ms: float,
    min_silence_ms: float,
) -> None:
    """Any probability sequence (flicker, long speech, speech at both ends), any blocks: the
    same utterances, the same samples."""
    rate = 100  # 4-sample windows of 40 ms; FakeScorer's probability is the window's mean
    per_window = np.repeat(levels, [runs[i % len(runs)] for i in range(len(levels))])
    x = np.repeat(per_window, 4).astype(np.float32)
    x = x[: max(1, len(x) - tail)].reshape(-1, 1)  # a partial, zero-padded last window
    hs = HysteresisSettings(0.5, None, 250, min_silence_ms)
    us = UtteranceSettings(300, 200, min_ms, max_ms, None)
    want = _chain(x, rate, blocks, hs, us)
    got = _offline(x, rate, blocks, hs, us)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.start, g.end, g.audio_start, g.audio_end, g.reason, g.index) == (
            w.start, w.end, w.audio_start, w.audio_end, w.reason, w.index,
        )  # fmt: skip
        assert g.sample_rate == w.sample_rate
        np.testing.assert_array_equal(g.samples, w.samples)


def test_offline_history_trims_like_the_chain() -> None:
    """A segment that is confirmed only seconds after its onset (probability between the two
    thresholds after a dip): the history is trimmed once a second during the silence before it
    and kept back to the pending onset after it; its WAV starts where the chain's does, with the
    whole pre-roll, whatever the phase of the trim."""
    rate = 100
    hs = HysteresisSettings(0.5, None, 250, 100)
    us = UtteranceSettings(300, 200, 0, 30000, None)
    for quiet in range(40, 160, 9):
        levels = [0.0] * quiet + [0.8, 0.34] + [0.4] * 100 + [0.8] * 20 + [0.0] * 30
        x = np.repeat(np.array(levels, dtype=np.float32), 4).reshape(-1, 1)
        for blocks in ([400], [37, 1000]):
            want = _chain(x, rate, blocks, hs, us)
            got = _offline(x, rate, blocks, hs, us)
            assert [(u.start, u.audio_start, u.audio_end) for u in got] == [
                (u.start, u.audio_start, u.audio_end) for u in want
            ]
            assert len(want) == 1
            assert want[0].audio_start == want[0].start - 30  # the whole pre-roll


def test_offline_error_closes_with_error_reason() -> None:
    hs, us = HysteresisSettings(), UtteranceSettings(max_gap_ms=None)
    seg = OfflineSegmenter(100, lambda r: FakeScorer(r), hs, us)
    x = np.ones((200, 1), dtype=np.float32)  # speech from the first window on
    seg.source(0, x)
    assert seg.converted(0, x[:, 0], 100) == []
    (u,) = seg.finish("error")
    assert (u.start, u.reason, u.audio_start, u.audio_end) == (0, "error", 0, 200)
    assert seg.finish() == []  # once
    assert FakeScorer.instances[-1].closed


def test_span_buffer_load_and_reveal() -> None:
    buf = SpanBuffer()
    a = np.arange(10, dtype=np.float32).reshape(-1, 1)
    buf.load(100, a)
    buf.load(110, a + 10)
    assert buf.loaded_end == 120 and buf.end - buf.start == 0
    buf.reveal(103, 108)
    assert (buf.start, buf.end) == (103, 108)
    np.testing.assert_array_equal(buf.take(0, 1000)[:, 0], np.arange(3, 8))
    buf.reveal(108, 115)
    np.testing.assert_array_equal(buf.take(104, 113)[:, 0], np.arange(4, 13))
    buf.trim(112)
    assert buf.start == 112
    np.testing.assert_array_equal(buf.take(0, 1000)[:, 0], np.arange(12, 15))
    with pytest.raises(ValueError, match="must continue at sample 115"):
        buf.reveal(116, 118)
    with pytest.raises(ValueError, match="end by the loaded sample 120"):
        buf.reveal(115, 121)
    with pytest.raises(ValueError, match="load consecutive blocks"):
        buf.load(121, a)
