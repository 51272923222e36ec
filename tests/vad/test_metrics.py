"""Segment metrics: perfect and partial matches, onsets and offsets."""

from __future__ import annotations

import pytest

from rxaudio.vad.metrics import evaluate


def test_metrics_perfect_and_partial() -> None:
    ref = [(1.0, 2.0), (3.0, 4.0)]
    s = evaluate(ref, ref, duration=5.0)
    assert (s.f1, s.missed_s, s.false_alarm_s, s.onset_error_s) == (1.0, 0.0, 0.0, 0.0)
    hyp = [(1.2, 2.0), (4.5, 4.8)]  # late onset, one miss, one false alarm
    s = evaluate(ref, hyp, duration=5.0)
    assert s.missed_s == pytest.approx(1.2)
    assert s.false_alarm_s == pytest.approx(0.3)
    assert s.precision == pytest.approx(0.8 / 1.1)
    assert s.recall == pytest.approx(0.4)
    assert s.false_alarms_per_min == pytest.approx(12.0)  # 1 false alarm in 5 s
    assert s.onset_error_s == pytest.approx(0.2)


def test_late_starts_use_the_first_utterance_of_a_segment() -> None:
    ref = [(1.0, 3.0)]
    hyp = [(1.05, 1.8), (2.0, 3.0)]  # split at a pause; the second starts late by design
    ok = evaluate(ref, hyp, hyp_audio=[(0.75, 2.0), (1.7, 3.2)])
    assert ok.late_starts_pct == 0.0
    clipped = evaluate(ref, hyp, hyp_audio=[(1.05, 2.0), (1.7, 3.2)])
    assert clipped.late_starts_pct == 100.0


def test_onset_and_offset_of_a_split_sentence() -> None:
    # one sentence found in two pieces: the first starts 0.04 s late, the last ends 0.05 s late;
    # matching the most-overlapping piece used to report a 0.7 s onset error
    ref = [(1.0, 4.0)]
    hyp = [(1.04, 1.6), (1.7, 4.05)]
    s = evaluate(ref, hyp, duration=5.0)
    assert s.onset_error_s == pytest.approx(0.04)
    assert s.offset_error_s == pytest.approx(0.05)
    # and the other way round: the long piece first
    s = evaluate(ref, [(0.9, 3.2), (3.3, 3.9)], duration=5.0)
    assert (s.onset_error_s, s.offset_error_s) == pytest.approx((0.1, 0.1))
