from __future__ import annotations

import numpy as np
import pytest
import soxr

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import conform, gain, reframe
from rxaudio.pipeline import Caps
from rxaudio.sources import from_array
from rxaudio.testing import collect, concat, frame, frames_close, ramp_frames, run_marbles


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


def test_conform_converts_rate_channels_and_size() -> None:
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((48000, 2))).astype(np.float32)
    out = collect(from_array(x, 48000, block_size=480).pipe(conform(Caps(16000, 1, 512))))
    assert all(f.sample_rate == 16000 and f.channels == 1 for f in out)
    assert all(f.n == 512 for f in out[:-1])
    ref = soxr.resample(x.mean(axis=1, dtype=np.float32), 48000, 16000, quality="HQ")
    assert np.max(np.abs(concat(out)[:, 0] - ref)) < 1e-5


def test_conform_is_a_passthrough_when_caps_match() -> None:
    frames = ramp_frames([512, 512])
    out = run_marbles("-a-b-|", dict(zip("ab", frames, strict=True)), conform(Caps(16000, 1, 512)))
    assert all(frames_close(a, b) for a, b in zip(out.values, frames, strict=True))


def test_marble_result_rendering_and_error() -> None:
    boom = ValueError("x")
    src = {"a": frame(), "b": frame(4), "c": frame(8)}
    out = run_marbles("-a-(b,c)-#", src, gain(0), error=boom)
    # a group takes the ticks of its characters (RxPY semantics): the error lands at tick 9
    assert out.marbles() == "-x-(xx)-----#"
    assert [f.start for f in out.values] == [0, 4, 8]
    assert out.error is boom and not out.completed
    assert out.ticks == [1.0, 3.0, 3.0]


def test_stream_error_names_operator_and_index() -> None:
    out = run_marbles("-a-b-|", {"a": frame(0, 4), "b": frame(2, 4)}, reframe(4))
    err = out.error
    assert isinstance(err, StreamError)
    assert err.operator == "reframe" and err.sample_index == 2
    assert str(err).startswith("reframe at sample 2:")


def test_collect_reraises() -> None:
    with pytest.raises(StreamError, match="frame starts at sample 2"):
        collect(run_marbles_source())


def run_marbles_source():  # type: ignore[no-untyped-def]
    from reactivex import from_iterable

    return from_iterable([frame(0, 4), frame(2, 4)]).pipe(reframe(4))


def test_operators_declare_their_caps() -> None:
    from rxaudio.operators import Element, channels, level, resample

    r = reframe(512)
    assert isinstance(r, Element) and r.produces == Caps(frame_size=512)
    assert resample(8000).produces == Caps(sample_rate=8000)
    assert channels(2).produces == Caps(channels=2)
    assert level().produces.kind == "level"
    assert "reframe" in repr(r)


def test_negotiate_inserts_conversion_only_where_needed() -> None:
    from rxaudio.operators import Element, level, map_operator
    from rxaudio.pipeline import negotiate

    seen: list[AudioFrame] = []

    def probe(f: AudioFrame) -> AudioFrame:
        seen.append(f)
        return f

    needs = map_operator("needs16k", probe, accepts=Caps(16000, 1, 512))
    assert isinstance(needs, Element)
    x = (0.1 * np.random.default_rng(0).standard_normal((9600, 2))).astype(np.float32)
    out = collect(from_array(x, 48000, block_size=700).pipe(negotiate(needs, level())))
    assert seen and all(f.sample_rate == 16000 and f.channels == 1 for f in seen)
    assert all(f.n == 512 for f in seen[:-1])
    assert len(out) == len(seen)
    # nothing to convert: elements run as written
    plain = collect(from_array(x, 48000, block_size=700).pipe(negotiate(gain(0), level())))
    assert len(plain) == int(np.ceil(9600 / 700))
    with pytest.raises(ConfigError, match="accepts audio frames but receives level"):
        negotiate(level(), needs)


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
