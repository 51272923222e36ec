"""The offline segmenter equals the operator chain."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.frames import AudioFrame, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.testing import collect
from rxaudio.vad.hysteresis import HysteresisSettings
from rxaudio.vad.offline import OfflineSegmenter
from rxaudio.vad.utterance import UtteranceSettings

from ..conftest import FakeScorer


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
