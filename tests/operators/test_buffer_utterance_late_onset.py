"""A segment confirmed long after its onset keeps its pre-roll (buffer_utterance + hysteresis).

After a dip below ``neg_threshold``, probabilities between ``neg_threshold`` and ``threshold``
keep a segment open but unconfirmed for as long as they last; its ``SpeechStart`` then comes
arbitrarily late, and the cutter must still have the audio back to onset - pre-roll.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import reactivex as rx
from hypothesis import given, settings
from hypothesis import strategies as st

from rxaudio.frames import AudioFrame, SpeechStart, Utterance, VadFrame
from rxaudio.operators import buffer_utterance, hysteresis
from rxaudio.testing import collect
from rxaudio.vad.hysteresis import Hysteresis, HysteresisSettings

W = 512
RATE = 16000
LATE = [0.05] * 50 + [0.9] * 3 + [0.2] + [0.4] * 150 + [0.9] * 20 + [0.05] * 30


def ramp(a: int, b: int) -> np.ndarray:
    return (np.arange(a, b) % 1000 / 1000.0).astype(np.float32)


def frames(probs: list[float]) -> list[VadFrame]:
    out = []
    for k, p in enumerate(probs):
        a = k * W
        out.append(VadFrame(a, a + W, RATE, p, AudioFrame(ramp(a, a + W).reshape(-1, 1), RATE, a)))
    return out


def run(probs: list[float], min_speech_ms: float = 250, **kw: Any) -> list[Any]:
    return collect(
        rx.from_iterable(frames(probs)).pipe(
            hysteresis(min_speech_ms=min_speech_ms), buffer_utterance(passthrough=True, **kw)
        )
    )


def utts(values: list[Any]) -> list[Utterance]:
    return [v for v in values if isinstance(v, Utterance)]


def test_late_confirmation_keeps_the_onset_and_pre_roll() -> None:
    h = Hysteresis(HysteresisSettings(), RATE)
    first = next(k for k, p in enumerate(LATE) if h.push(k * W, (k + 1) * W, p))
    assert first == 204  # the SpeechStart comes 154 windows (4.9 s) after the onset
    values = run(LATE)
    (s,) = [v for v in values if isinstance(v, SpeechStart)]
    (u,) = utts(values)
    assert s.start == u.start == 50 * W
    assert u.audio_start == 50 * W - 4800  # the whole pre-roll, not cut at 3 s of history
    assert np.array_equal(u.samples[:, 0], ramp(u.audio_start, u.audio_end))


def test_late_confirmation_with_long_min_speech() -> None:
    (u,) = utts(run(LATE, min_speech_ms=5000))
    assert u.start == 50 * W and u.audio_start == 50 * W - 4800


def test_pending_longer_than_max_ms_is_bounded() -> None:
    # pending for 20 s with max_ms = 5 s: the history stays bounded, the utterance starts where
    # its audio does (never before it), and pieces are at most max_ms (plus a window)
    probs = [0.05] * 10 + [0.9] * 3 + [0.2] + [0.4] * 625 + [0.9] * 20 + [0.05] * 30
    values = run(probs, max_ms=5000)
    us = utts(values)
    assert us and all(u.audio_start <= u.start < u.end <= u.audio_end for u in us)
    assert all(u.audio_end - u.audio_start <= 5000 * 16 + W for u in us)
    for u in us:
        assert np.array_equal(u.samples[:, 0], ramp(u.audio_start, u.audio_end))


LEVELS = st.sampled_from([0.05, 0.2, 0.4, 0.6, 0.9])


@settings(max_examples=40)
@given(
    runs=st.lists(st.tuples(LEVELS, st.integers(1, 60)), min_size=1, max_size=12),
    min_speech_ms=st.sampled_from([0, 100, 250, 1000, 5000]),
    pre_roll_ms=st.sampled_from([0, 300, 2000]),
    max_ms=st.sampled_from([3500, 30_000]),
)
def test_audio_never_starts_after_the_onset(
    runs: list[tuple[float, int]], min_speech_ms: float, pre_roll_ms: float, max_ms: float
) -> None:
    probs = [p for p, n in runs for _ in range(n)]
    values = run(
        probs, min_speech_ms=min_speech_ms, pre_roll_ms=pre_roll_ms, max_ms=max_ms, max_gap_ms=None
    )
    # each onset, and the end of the last window before its (possibly late) confirmation
    onsets: dict[int, int] = {}
    last_end = 0
    for v in values:
        if isinstance(v, SpeechStart):
            onsets[v.start] = last_end
        elif isinstance(v, VadFrame):
            last_end = v.end
    for u in utts(values):
        assert u.audio_start <= u.start
        if u.start in onsets:  # not a continuation after a split: the whole pre-roll is there,
            # unless it reaches further back than max_ms from the confirmation (memory bound)
            want = max(0, u.start - round(16 * pre_roll_ms), onsets[u.start] - round(16 * max_ms))
            assert u.audio_start == want
        assert np.array_equal(u.samples[:, 0], ramp(u.audio_start, u.audio_end))
        # bounded: split once the open utterance reaches max_ms (then the 200 ms post-roll)
        assert u.audio_end - u.audio_start <= 16 * (max_ms + 200) + W
