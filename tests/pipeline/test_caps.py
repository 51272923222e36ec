"""Caps negotiation: conversions inserted only where needed."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame
from rxaudio.operators import gain
from rxaudio.pipeline import Caps
from rxaudio.sources import from_array
from rxaudio.testing import collect


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
