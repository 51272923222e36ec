"""``mfcc``: marbles in virtual time, and parity with librosa for any chunking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.errors import StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import mfcc, spectral, spectrogram
from rxaudio.testing import collect, concat, frame, run_marbles

from .feature_parity import (
    PATHS,
    PINNED,
    _db,
    _rows,
    _signal,
    _stream,
    kernel_path,
    librosa_spectral,
    signals,
)


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


librosa = pytest.importorskip("librosa")


def _librosa_mfcc(
    x: np.ndarray, rate: int, n_fft: int, hop: int, n_mfcc: int, n_mels: int, lifter: float = 0.0
) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=x, sr=rate, n_fft=n_fft, hop_length=hop, center=False, n_mels=n_mels
    )
    return np.asarray(librosa.feature.mfcc(S=_db(mel), n_mfcc=n_mfcc, lifter=lifter))


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    """1e-4 absolute. Only values of magnitude 256 and up (``mfcc_0`` of very quiet rows,
    about -632 for digital silence) get float32's own resolution on top: there one float32
    step is 3e-5 to 6e-5, and librosa's float32 DCT lands up to two steps from the correctly
    rounded value (measured: 1.2e-4 on silent rows, where its floor also reads -100.00001 dB)."""
    diff, mag = np.abs(ours - ref), np.abs(ref)
    assert np.all(diff[mag < 256] <= 1e-4), diff[mag < 256].max()
    assert np.all(diff <= 1e-4 + 1e-6 * mag), diff.max()


@PATHS
@example(case=PINNED[0], sizes=(13, 40), lifter=0.0)
@example(case=PINNED[1], sizes=(20, 32), lifter=22.0)
@example(case=PINNED[2], sizes=(13, 40), lifter=0.0)
@given(signals, st.sampled_from([(13, 40), (20, 32)]), st.sampled_from([0.0, 22.0]))
def test_mfcc_equals_librosa(path: str, case: Any, sizes: tuple[int, int], lifter: float) -> None:
    with kernel_path(path):
        (rate, n_fft, hop), seed, seconds, cuts = case
        n_mfcc, n_mels = sizes
        x = _signal(rate, seed, seconds)
        ref = _librosa_mfcc(x, rate, n_fft, hop, n_mfcc, n_mels, lifter)
        ours = _stream(
            x, rate, cuts, mfcc(n_mfcc=n_mfcc, n_mels=n_mels, n_fft=n_fft, hop=hop, lifter=lifter)
        )
        assert ours.shape == ref.T.shape
        # librosa lifts its float32 coefficients by up to 1 + lifter / 2, scaling their rounding
        # error alike: compare un-lifted values (the lift factors themselves are the same formula)
        k = np.arange(1, n_mfcc + 1)
        gain = 1 + (lifter / 2) * np.sin(np.pi * k / lifter) if lifter else np.ones(n_mfcc)
        _close(ours / gain, ref.T / gain)


@PATHS
@given(signals, st.sampled_from([5, 9]))
def test_mfcc_deltas_equal_librosa_delta(path: str, case: Any, width: int) -> None:
    with kernel_path(path):
        (rate, n_fft, hop), seed, seconds, cuts = case
        x = _signal(rate, seed, seconds)
        ref = _librosa_mfcc(x, rate, n_fft, hop, 13, 40)
        d1 = librosa.feature.delta(ref, width=width, order=1)
        d2 = librosa.feature.delta(ref, width=width, order=2)
        ours = _stream(x, rate, cuts, mfcc(n_fft=n_fft, hop=hop, deltas=2, delta_width=width))
        assert ours.shape == (ref.shape[1], 39)
        _close(ours[:, :13], ref.T)
        # the delta stage alone, on our own coefficients: interior and edges alike (mode="interp")
        # (our rows are float32-rounded coefficients; the deltas were computed before rounding)
        own = ours[:, :13].T.astype(np.float64)
        tol = 1e-5 + 4e-7 * np.abs(own).max()
        assert np.allclose(ours[:, 13:26], librosa.feature.delta(own, width=width).T, atol=tol)
        assert np.allclose(
            ours[:, 26:], librosa.feature.delta(own, width=width, order=2).T, atol=tol
        )
        # end to end: the coefficients' float32 differences, weighted by the delta filter
        bound = 5e-4 + 1e-6 * np.abs(ref).max()
        assert np.abs(ours[:, 13:26] - d1.T).max() < bound
        assert np.abs(ours[:, 26:] - d2.T).max() < bound


@PATHS
def test_speech_sample_in_1024_blocks_equals_librosa(path: str, speech: np.ndarray) -> None:
    with kernel_path(path):
        x = speech
        cuts = list(range(1024, len(x), 1024))
        ref = _librosa_mfcc(x, 16000, 512, 160, 13, 40)
        ours = _stream(x, 16000, cuts, mfcc(deltas=1))
        _close(ours[:, :13], ref.T)
        _close(ours[:, 13:], librosa.feature.delta(ref).T)
        mel = librosa.feature.melspectrogram(
            y=x, sr=16000, n_fft=512, hop_length=160, center=False, n_mels=64
        )
        log_mel = _stream(x, 16000, cuts, spectrogram(kind="log_mel"))
        assert np.abs(log_mel - _db(mel).T).max() < 1e-4
        _close(
            _stream(x, 16000, cuts, spectral())[:, 5],
            librosa_spectral(x, 16000, 512, 160, 0.85)[:, 5],
        )
