"""``conform``: converts rate, channels and frame size, or passes through."""

from __future__ import annotations

import numpy as np
import soxr

from rxaudio.operators import conform
from rxaudio.pipeline import Caps
from rxaudio.sources import from_array
from rxaudio.testing import collect, concat, frames_close, ramp_frames, run_marbles


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
