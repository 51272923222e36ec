"""The pure hysteresis state machine against Silero's own."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxaudio.vad.hysteresis import Hysteresis, HysteresisSettings

W = 512


def segments(probs: list[float], **kw: Any) -> list[tuple[int, int]]:
    h = Hysteresis(HysteresisSettings(**kw), 16000)
    out, start = [], None
    for k, p in enumerate(probs):
        for d in h.push(k * W, (k + 1) * W, p):
            if d.kind == "start":
                start = d.start
            else:
                assert d.start == start and d.end is not None
                out.append((d.start, d.end))
    for d in h.finish(len(probs) * W):
        if d.kind == "end" and d.end is not None:
            out.append((d.start, d.end))
    return out


def reference(probs: list[float], **kw: Any) -> list[tuple[int, int]]:
    from silero_vad import get_speech_timestamps_from_probs

    args = {
        "threshold": kw.get("threshold", 0.5),
        "neg_threshold": kw.get("neg_threshold"),
        "min_speech_duration_ms": kw.get("min_speech_ms", 250),
        "min_silence_duration_ms": kw.get("min_silence_ms", 100),
    }
    ts = get_speech_timestamps_from_probs(
        probs, sampling_rate=16000, speech_pad_ms=0, audio_length_samples=len(probs) * W, **args
    )
    return [(t["start"], t["end"]) for t in ts]


# probabilities that cluster near typical thresholds, so flicker is common
prob = st.sampled_from([0.0, 0.05, 0.3, 0.36, 0.4, 0.49, 0.5, 0.51, 0.7, 0.95, 1.0])


@pytest.mark.torch  # silero_vad's module imports torch
@settings(max_examples=60)
@given(
    probs=st.lists(prob, min_size=0, max_size=120),
    threshold=st.sampled_from([0.3, 0.5, 0.7]),
    min_speech_ms=st.sampled_from([0, 64, 250, 600]),
    min_silence_ms=st.sampled_from([0, 30, 100, 300]),
)
def test_segments_equal_silero_state_machine(
    probs: list[float], threshold: float, min_speech_ms: int, min_silence_ms: int
) -> None:
    kw = {
        "threshold": threshold,
        "min_speech_ms": min_speech_ms,
        "min_silence_ms": min_silence_ms,
    }
    assert segments(probs, **kw) == reference(probs, **kw)


def test_start_is_announced_once_the_segment_is_certain() -> None:
    h = Hysteresis(HysteresisSettings(min_speech_ms=250), 16000)
    # 250 ms = 4000 samples: certain once the window ending past start + 4000 is speech
    announced = [k for k in range(12) if h.push(k * W, (k + 1) * W, 0.9)]
    assert announced == [7]  # (7 + 1) * 512 = 4096 > 4000
    assert h.speech


def test_flicker_around_threshold_stays_one_segment() -> None:
    probs = [0.9] * 10 + [0.45, 0.55] * 20 + [0.0] * 10
    assert segments(probs) == [(0, 50 * W)]


def test_short_burst_dropped_and_silence_only() -> None:
    assert segments([0.0] * 5 + [0.9] * 3 + [0.0] * 10) == []
    assert segments([0.0] * 50) == []
    assert segments([]) == []


def test_speech_at_first_and_last_window() -> None:
    assert segments([0.9] * 20) == [(0, 20 * W)]
    h = Hysteresis(HysteresisSettings(), 16000)
    for k in range(20):
        h.push(k * W, (k + 1) * W, 0.9)
    ds = h.finish(20 * W - 100)  # a partial last window
    assert [(d.kind, d.end, d.reason) for d in ds] == [("end", 20 * W - 100, "end_of_stream")]
