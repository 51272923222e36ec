"""Elements declare the caps they accept and produce."""

from __future__ import annotations

from rxaudio.operators import reframe
from rxaudio.pipeline import Caps


def test_operators_declare_their_caps() -> None:
    from rxaudio.operators import Element, channels, level, resample

    r = reframe(512)
    assert isinstance(r, Element) and r.produces == Caps(frame_size=512)
    assert resample(8000).produces == Caps(sample_rate=8000)
    assert channels(2).produces == Caps(channels=2)
    assert level().produces.kind == "level"
    assert "reframe" in repr(r)
