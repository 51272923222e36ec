"""``spectrogram``: marbles in virtual time, and parity with librosa for any chunking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from reactivex import from_iterable

from rxaudio.errors import StreamError
from rxaudio.frames import AudioFrame
from rxaudio.operators import spectrogram
from rxaudio.testing import collect, concat, frame, run_marbles

from .feature_parity import PATHS, PINNED, _db, _rows, _signal, _stream, kernel_path, signals

HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)


def _power_row(x: np.ndarray, start: int) -> np.ndarray:
    seg = x[start : start + 512].astype(np.float64)
    return np.abs(np.fft.rfft(seg * HANN)) ** 2


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


def test_stream_not_starting_at_zero_keeps_sample_indices() -> None:
    src = {"a": frame(16000, 1000)}
    (f,) = run_marbles("-a-|", src, spectrogram()).values
    assert f.start == 16000 and f.row == 0
    assert list(f.starts) == [16000, 16160, 16320, 16480]
    assert np.isclose(f.times[1], 1.01)


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


librosa = pytest.importorskip("librosa")


@PATHS
@example(case=PINNED[0], window="hann", n_mels=40)
@example(case=PINNED[1], window="hamming", n_mels=40)
@example(case=PINNED[2], window="blackman", n_mels=20)
@given(signals, st.sampled_from(["hann", "hamming", "blackman"]), st.sampled_from([20, 40]))
def test_log_mel_and_mel_equal_librosa(path: str, case: Any, window: str, n_mels: int) -> None:
    with kernel_path(path):
        (rate, n_fft, hop), seed, seconds, cuts = case
        x = _signal(rate, seed, seconds)
        ref = librosa.feature.melspectrogram(
            y=x, sr=rate, n_fft=n_fft, hop_length=hop, window=window, center=False, n_mels=n_mels
        ).T
        log_mel = _stream(
            x,
            rate,
            cuts,
            spectrogram(n_fft=n_fft, hop=hop, window=window, kind="log_mel", n_mels=n_mels),
        )
        assert log_mel.shape == ref.shape
        assert np.abs(log_mel - _db(ref)).max() < 1e-4
        mel = _stream(
            x,
            rate,
            cuts[::-1],
            spectrogram(n_fft=n_fft, hop=hop, window=window, kind="mel", n_mels=n_mels),
        )
        assert np.abs(_db(mel) - _db(ref)).max() < 1e-4


@PATHS
@given(signals)
def test_power_and_magnitude_equal_librosa_stft(path: str, case: Any) -> None:
    with kernel_path(path):
        (rate, n_fft, hop), seed, seconds, cuts = case
        x = _signal(rate, seed, seconds)
        mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, center=False)).T
        power = _stream(x, rate, cuts, spectrogram(n_fft=n_fft, hop=hop, kind="power"))
        assert power.shape == mag.shape
        assert np.abs(_db(power) - _db(mag**2)).max() < 1e-4
        ours = _stream(x, rate, cuts, spectrogram(n_fft=n_fft, hop=hop, kind="magnitude"))
        assert (
            np.abs(
                librosa.amplitude_to_db(ours, top_db=None)
                - librosa.amplitude_to_db(mag, top_db=None)
            ).max()
            < 1e-4
        )


def test_librosa_default_top_db_differs_on_signals_with_more_than_80_db_range() -> None:
    """Why parity is stated for top_db=None: librosa's default clips relative to the maximum
    of the whole signal, which the stream cannot know in advance."""
    x = _signal(16000, 3, 0.5)  # holds digital silence: -100 dB floor vs ~0 dB peak
    ours = _stream(x, 16000, [], spectrogram(kind="log_mel"))
    clipped = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=x, sr=16000, n_fft=512, hop_length=160, center=False, n_mels=64
        )
    ).T
    assert ours.min() < clipped.min() - 1.0
    assert np.isclose(clipped.min(), clipped.max() - 80.0)
