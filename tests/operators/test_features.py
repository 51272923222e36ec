"""What spectrogram, mfcc and spectral share: errors, disposal, re-subscription, bad
input and options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import Element, mfcc, spectral, spectrogram
from rxaudio.testing import frame, run_marbles

from .feature_parity import _rows


@pytest.mark.parametrize(
    ("op", "marbles", "rows"),
    [
        (spectrogram(), "-x-x-#", 10),
        (spectral(), "-x-x-#", 10),
        # 10 STFT rows, 4 held back by the deltas and dropped with the error (no flush)
        (mfcc(deltas=1), "---x-#", 6),
    ],
)
def test_error_propagates_after_emitted_rows(
    op: Element[Any, Any], marbles: str, rows: int
) -> None:
    boom = RuntimeError("boom")
    out = run_marbles("-a-b-#", {"a": frame(0, 1024), "b": frame(1024, 1024)}, op, error=boom)
    assert out.marbles() == marbles
    assert sum(f.n_rows for f in out.values) == rows
    assert out.error is boom
    assert not out.completed


@pytest.mark.parametrize("op", [spectrogram(), mfcc(deltas=1), spectral()])
def test_dispose_mid_stream(op: Element[Any, Any]) -> None:
    src = {k: frame(i * 1024, 1024) for i, k in enumerate("abcd")}
    out = run_marbles("-a-b-c-d-|", src, op, dispose_at=4)
    assert not out.completed
    assert all(e.tick < 4 for e in out.events)
    assert max(f.row + f.n_rows for f in out.values) <= 1 + (2048 - 512) // 160


@pytest.mark.parametrize(
    "make", [spectrogram, mfcc, spectral, lambda: mfcc(deltas=2), lambda: spectrogram(kind="mel")]
)
def test_resubscribe_gets_fresh_state(make: Callable[[], Element[Any, Any]]) -> None:
    op = make()
    src = {"a": frame(0, 1000, value=0.3), "b": frame(1000, 1000, value=-0.2)}
    first = run_marbles("-a-b-|", src, op)
    second = run_marbles("-a-b-|", src, op)  # the same operator object, a new subscription
    assert [f.row for f in first.values] == [f.row for f in second.values]
    assert np.array_equal(_rows(first.values), _rows(second.values))
    assert first.values[0].row == 0


@pytest.mark.parametrize(
    ("make", "name"),
    [(mfcc, "mfcc"), (spectrogram, "spectrogram"), (spectral, "spectral")],
)
def test_rate_change_mid_stream_is_an_error(
    make: Callable[[], Element[Any, Any]], name: str
) -> None:
    src = {"a": frame(0, 600), "b": frame(600, 600, sample_rate=8000)}
    out = run_marbles("-a-b-|", src, make())
    assert isinstance(out.error, StreamError)
    assert "sample rate changed" in str(out.error) and "resample" in str(out.error)
    assert out.error.operator == name
    assert out.marbles() == "-x-#"  # the rows before the change were delivered


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", [lambda: mfcc(deltas=2), spectral, spectrogram])
def test_non_finite_samples_are_refused(make: Callable[[], Element[Any, Any]], bad: float) -> None:
    """One NaN used to become ten NaN rows (with deltas) and nothing else: refused at once,
    in the first chunk or a later one (the fast path), naming the sample."""
    for at in (0, 1):  # which chunk holds it
        chunks = [frame(0, 1024, value=0.1), frame(1024, 1024, value=0.1)]
        x = chunks[at].samples.copy()
        x[700, 0] = bad
        chunks[at] = AudioFrame(x, 16000, 1024 * at)
        out = run_marbles("-a-b-|", {"a": chunks[0], "b": chunks[1]}, make())
        assert isinstance(out.error, StreamError)
        assert f"sample {1024 * at + 700} is {bad}" in str(out.error)
        assert "finite" in str(out.error) and out.error.sample_index == 1024 * at
        assert all(np.isfinite(f.values).all() for f in out.values)


@pytest.mark.parametrize(
    ("factory", "kwargs", "words"),
    [
        (spectrogram, {"n_fft": 256, "hop": 512}, ["hop (512)", "n_fft (256)"]),
        (mfcc, {"n_fft": 128, "hop": 160}, ["hop (160)", "n_fft (128)"]),
        (spectral, {"hop": 0}, ["spectral: hop", "an int >= 1", "got 0"]),
        (spectrogram, {"window": "kaiser"}, ["window", "hann", "'kaiser'"]),
        (spectral, {"window": "triangle"}, ["window", "blackman"]),
        (spectrogram, {"kind": "cqt"}, ["kind", "log_mel"]),
        (spectrogram, {"kind": "mel", "n_mels": 300, "n_fft": 512}, ["n_mels", "at most 257"]),
        (mfcc, {"n_mfcc": 50, "n_mels": 40}, ["n_mfcc", "at most 40"]),
        (mfcc, {"deltas": 3}, ["mfcc: deltas", "one of 0, 1, 2", "got 3"]),
        (mfcc, {"delta_width": 4}, ["delta_width", "odd"]),
        (mfcc, {"fmin": 4000.0, "fmax": 1000.0}, ["fmax"]),
        (spectral, {"roll_percent": 1.0}, ["spectral: roll_percent", "in (0, 1)", "got 1.0"]),
        (spectrogram, {"ref": 0.0}, ["ref"]),
    ],
)
def test_bad_options_raise_at_once(
    factory: Callable[..., Any], kwargs: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        factory(**kwargs)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("make", [spectrogram, mfcc, spectral])
def test_operators_declare_feature_caps(make: Callable[[], Element[Any, Any]]) -> None:
    op = make()
    assert op.produces.kind == "feature" and op.accepts.kind == "audio"
    assert op.name == make.__name__
