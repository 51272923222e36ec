"""Marble tests in virtual time for spectrogram, mfcc and spectral, and their bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from reactivex import from_iterable

from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import AudioFrame, FeatureFrame
from rxaudio.operators import Element, mfcc, spectral, spectrogram
from rxaudio.testing import collect, concat, frame, run_marbles

HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)


def _power_row(x: np.ndarray, start: int) -> np.ndarray:
    seg = x[start : start + 512].astype(np.float64)
    return np.abs(np.fft.rfft(seg * HANN)) ** 2


def _rows(values: list[FeatureFrame]) -> np.ndarray:
    return np.concatenate([v.values for v in values])


def test_spectrogram_normal_flow_small_chunk_and_completion() -> None:
    # a: 100 samples (no row yet), b: 700 (rows 0, 1), c: 400 (rows 2, 3, 4), tail dropped
    src = {"a": frame(0, 100), "b": frame(100, 700), "c": frame(800, 400)}
    out = run_marbles("-a-b-c-|", src, spectrogram(n_fft=512, hop=160))
    assert out.marbles() == "---x-x-|"
    first, second = out.values
    assert (first.row, first.n_rows, first.start) == (0, 2, 0)
    assert (second.row, second.n_rows, second.start) == (2, 3, 320)
    assert list(second.starts) == [320, 480, 640]
    assert second.values.shape == (3, 257)
    x = concat(list(src.values()))[:, 0]
    for f in (first, second):
        for i, s in enumerate(f.starts):
            assert np.allclose(f.values[i], _power_row(x, int(s)), rtol=1e-5, atol=1e-12)
    assert first.kind == "power" and first.columns[0] == "bin_0"
    assert first.params["n_fft"] == 512 and first.latency == 0


def test_chunk_smaller_than_hop_emits_nothing_until_a_row_completes() -> None:
    src = {k: frame(i * 100, 100) for i, k in enumerate("abcdef")}
    out = run_marbles("-a-b-c-d-e-f-|", src, spectrogram(n_fft=512, hop=160, kind="log_mel"))
    # 512 samples are complete with e (sample 500) only after f: rows 0 at 600
    assert out.marbles() == "-----------x-|"
    (row0,) = out.values
    assert row0.row == 0 and row0.n_rows == 1 and row0.values.shape == (1, 64)
    assert row0.kind == "log_mel"


def test_mfcc_flushes_delta_rows_at_completion() -> None:
    # 2000 samples -> 1 + (2000 - 512) // 160 = 10 rows; deltas hold back 4 rows
    src = {"a": frame(0, 1024), "b": frame(1024, 976)}
    out = run_marbles("-a-b-|", src, mfcc(deltas=2))
    # after a: 4 STFT rows, fewer than the 9-row delta window, none final; after b: 10 rows,
    # rows 0..5 final; completion releases rows 6..9
    assert out.marbles() == "---x-(x|)"
    assert [(f.row, f.n_rows) for f in out.values] == [(0, 6), (6, 4)]
    assert all(f.values.shape[1] == 39 and f.latency == 4 for f in out.values)
    assert out.values[0].columns[13] == "dmfcc_0" and out.values[0].columns[26] == "ddmfcc_0"


def test_mfcc_rows_arrive_latency_rows_late() -> None:
    src = {k: frame(i * 800, 800) for i, k in enumerate("abc")}
    out = run_marbles("-a-b-c-|", src, mfcc(deltas=1, delta_width=5))
    # STFT rows after each chunk: 2, 7, 12 ; deltas need 2 more rows (and 5 rows before any)
    assert [(f.row, f.n_rows) for f in out.values] == [(0, 5), (5, 5), (10, 2)]
    assert out.marbles() == "---x-x-(x|)"


def test_spectral_columns_and_flow() -> None:
    src = {"a": frame(0, 100), "b": frame(100, 700)}
    out = run_marbles("-a-b-|", src, spectral())
    assert out.marbles() == "---x-|"
    (f,) = out.values
    assert f.columns == ("centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms")
    x = concat(list(src.values()))[:, 0].astype(np.float64)
    assert np.allclose(f.values[:, 5], [np.sqrt(np.mean(x[s : s + 512] ** 2)) for s in (0, 160)])


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


def test_stream_not_starting_at_zero_keeps_sample_indices() -> None:
    src = {"a": frame(16000, 1000)}
    (f,) = run_marbles("-a-|", src, spectrogram()).values
    assert f.start == 16000 and f.row == 0
    assert list(f.starts) == [16000, 16160, 16320, 16480]
    assert np.isclose(f.times[1], 1.01)


def test_gap_is_filled_with_silence_and_overlap_refused() -> None:
    gap = run_marbles("-a-b-|", {"a": frame(0, 600, value=0.1), "b": frame(1000, 600)}, spectral())
    rows = _rows(gap.values)
    assert rows.shape[0] == 1 + (1600 - 512) // 160
    bad = run_marbles("-a-b-|", {"a": frame(0, 600), "b": frame(300, 600)}, spectral())
    assert isinstance(bad.error, StreamError)
    assert "overlap" in str(bad.error) and bad.error.sample_index == 300


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


def test_huge_but_finite_samples_are_not_refused() -> None:
    # the fast check sums a chunk: 1024 x 1e36 overflows float32, yet every sample is finite
    # (the rows overflow too, as librosa's would: only the refusal is under test)
    src = {"a": frame(0, 1024, value=0.1), "b": frame(1024, 1024, value=1e36)}
    with np.errstate(all="ignore"):
        out = run_marbles("-a-b-|", src, spectral())
    assert out.error is None and sum(f.n_rows for f in out.values) == 1 + (2048 - 512) // 160


def test_non_audio_item_is_an_error() -> None:
    out = run_marbles("-a-|", {"a": "not audio"}, spectrogram())
    assert isinstance(out.error, StreamError) and "expected AudioFrame" in str(out.error)


def test_multichannel_is_averaged_to_mono() -> None:
    rng = np.random.default_rng(1)
    st = rng.standard_normal((2000, 2)).astype(np.float32) * 0.1
    mono = st.mean(axis=1, dtype=np.float32).reshape(-1, 1)
    a = collect(from_iterable([AudioFrame(st, 16000)]).pipe(spectrogram(kind="log_mel")))
    b = collect(from_iterable([AudioFrame(mono, 16000)]).pipe(spectrogram(kind="log_mel")))
    assert np.array_equal(_rows(a), _rows(b))


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


def test_too_many_mels_for_the_rate_is_a_clear_stream_error() -> None:
    op = mfcc(n_mels=128, n_mfcc=13, n_fft=512)  # fine for the factory, too many at 48 kHz
    out = run_marbles("-a-|", {"a": frame(0, 1024, sample_rate=48000)}, op)
    assert isinstance(out.error, StreamError)
    msg = str(out.error)
    assert "n_mels=128" in msg and "48000 Hz" in msg and "n_mels <= 90" in msg
    ok = run_marbles("-a-|", {"a": frame(0, 1024, sample_rate=48000)}, mfcc(n_mels=90))
    assert ok.completed and ok.error is None


def test_fmax_above_nyquist_is_a_stream_error() -> None:
    out = run_marbles("-a-|", {"a": frame(0, 1024, sample_rate=8000)}, mfcc(fmax=6000.0))
    assert isinstance(out.error, StreamError) and "Nyquist" in str(out.error)


@pytest.mark.parametrize("make", [spectrogram, mfcc, spectral])
def test_operators_declare_feature_caps(make: Callable[[], Element[Any, Any]]) -> None:
    op = make()
    assert op.produces.kind == "feature" and op.accepts.kind == "audio"
    assert op.name == make.__name__


def test_mfcc_marble_of_the_docs() -> None:
    src = {"a": frame(0, 1024), "b": frame(1024, 1024), "c": frame(2048, 100)}
    out = run_marbles("-a-b-c-|", src, mfcc(deltas=1))
    assert out.marbles() == "---x-x-(x|)"
    assert [(f.row, f.n_rows) for f in out.values] == [(0, 6), (6, 1), (7, 4)]
    assert [f.start for f in out.values] == [0, 960, 1120]


def test_mfcc_chunks_smaller_than_a_hop() -> None:
    src = {k: frame(i * 100, 100) for i, k in enumerate("abcdefgh")}
    out = run_marbles("-a-b-c-d-e-f-g-h-|", src, mfcc())
    # row 0 needs samples 0-511 (complete with f), row 1 160-671 (g), row 2 320-831 (never)
    assert out.marbles() == "-----------x-x---|"
    assert [(f.row, f.start, f.n_rows) for f in out.values] == [(0, 0, 1), (1, 160, 1)]
    x = concat(list(src.values()))[:, 0]
    whole = collect(from_iterable([AudioFrame(x.reshape(-1, 1), 16000)]).pipe(mfcc()))
    assert np.array_equal(_rows(out.values), _rows(whole))
