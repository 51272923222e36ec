"""``null``: counts and discards, a receipt at the end (and before an error), per subscription."""

from __future__ import annotations

from rxaudio.frames import CountReceipt
from rxaudio.sinks import to_null
from rxaudio.testing import frame, run_marbles


def test_null_counts_and_emits_one_receipt_at_the_end() -> None:
    out = run_marbles("-a-b-c-|", {"a": frame(0, 4), "b": frame(4, 4), "c": "an event"}, to_null())
    assert out.marbles() == "-------(x|)"
    (r,) = out.values
    assert r == CountReceipt(items=3, samples=8, sample_rate=16000, reason="completed")
    assert r.seconds == 8 / 16000
    assert r.to_dict() == {
        "type": "count",
        "items": 3,
        "samples": 8,
        "seconds": 0.0005,
        "sample_rate": 16000,
        "reason": "completed",
    }


def test_null_receipt_before_an_error_and_fresh_counts_per_subscription() -> None:
    boom = RuntimeError("boom")
    sink = to_null()
    out = run_marbles("-a-#", {"a": frame()}, sink, error=boom)
    assert [e.kind for e in out.events] == ["N", "E"] and out.error is boom
    assert out.values[0].reason == "error" and out.values[0].items == 1
    again = run_marbles("-|", {}, sink)
    assert again.values == [CountReceipt(items=0)]
    assert again.values[0].seconds == 0.0


def test_null_disposed_mid_stream_emits_nothing() -> None:
    out = run_marbles("-a-a-a-|", {"a": frame()}, to_null(), dispose_at=3)
    assert out.values == [] and not out.completed
