"""Caps: intersecting, accepting, and typing by frame class."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame
from rxaudio.pipeline import Caps


def test_caps_accepts_and_intersect() -> None:
    caps = Caps(sample_rate=16000, channels=1, frame_size=512)
    assert caps.accepts(AudioFrame(np.zeros((512, 1), np.float32), 16000))
    assert not caps.accepts(AudioFrame(np.zeros((512, 2), np.float32), 16000))
    assert Caps(sample_rate=16000).intersect(Caps(channels=1)) == Caps(16000, 1)
    with pytest.raises(ConfigError, match="sample_rate"):
        Caps(sample_rate=16000).intersect(Caps(sample_rate=8000))
    with pytest.raises(ConfigError):
        Caps(channels=0)
    assert str(caps) == "audio/x-raw,rate=16000,channels=1,frame=512"


def test_caps_are_typed_by_frame_class() -> None:
    from rxaudio.errors import ConfigError
    from rxaudio.frames import LevelFrame, SpeechEnd, SpeechStart, VadFrame
    from rxaudio.operators import buffer_utterance, hysteresis, level, vad
    from rxaudio.pipeline import negotiate

    v = Caps(frame=VadFrame)
    assert v.kind == "vad" and not v.is_audio and str(v) == "rxaudio/vad"
    mixed = Caps(frame=(VadFrame, SpeechStart, SpeechEnd))
    assert mixed.can_take(v) and not v.can_take(mixed)
    assert Caps().is_audio and Caps().can_take(Caps(16000))
    with pytest.raises(ConfigError, match="only audio caps"):
        Caps(16000, frame=VadFrame)
    with pytest.raises(ConfigError, match="frame class"):
        Caps(frame="vad")  # type: ignore[arg-type]
    # what each element declares is what it emits: hysteresis adds speech events
    assert hysteresis().produces.can_take(Caps(frame=SpeechStart))
    assert buffer_utterance().accepts.can_take(hysteresis().produces)
    assert vad().produces == v and level().produces == Caps(frame=LevelFrame)
    negotiate(vad(), hysteresis(), buffer_utterance())  # links
    with pytest.raises(ConfigError, match="hysteresis accepts vad frames but receives level"):
        negotiate(level(), hysteresis())
