"""Windows and the streaming STFT against scipy, librosa and numpy."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.dsp.stft import StreamingSTFT, get_window

librosa = pytest.importorskip("librosa")


scipy_signal = pytest.importorskip("scipy.signal")


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman", "boxcar"])
@pytest.mark.parametrize("n", [256, 400, 512])
def test_windows_equal_scipy_periodic(name: str, n: int) -> None:
    assert np.allclose(
        get_window(name, n), scipy_signal.get_window(name, n, fftbins=True), atol=1e-15
    )


def test_unknown_window_names_the_choices() -> None:
    with pytest.raises(ValueError, match="hann, hamming, blackman, boxcar"):
        get_window("kaiser", 64)


def test_stft_frames_are_librosa_frames() -> None:
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    s = StreamingSTFT(400, 128)
    got = np.concatenate([s.frames(x[i : i + 333]).copy() for i in range(0, 5000, 333)])
    ref = librosa.util.frame(x, frame_length=400, hop_length=128).T
    assert np.array_equal(got, ref)
    with pytest.raises(ValueError, match="must not exceed"):
        StreamingSTFT(256, 512)


@pytest.mark.parametrize(("n_fft", "hop"), [(512, 160), (401, 100), (256, 256)])
def test_stft_spectrum_and_power_equal_numpy(n_fft: int, hop: int) -> None:
    x = np.random.default_rng(4).standard_normal(3000).astype(np.float32)
    s = StreamingSTFT(n_fft, hop)
    fr = s.frames(x).copy()
    ref = np.fft.rfft(fr * scipy_signal.get_window("hann", n_fft, fftbins=True), axis=1)
    spec = s.spectrum(fr)
    assert spec.dtype == np.complex64
    assert np.allclose(spec, ref, rtol=1e-6, atol=1e-5)
    assert np.allclose(s.power(fr), np.abs(ref) ** 2, rtol=1e-5, atol=1e-8)
    # a chunk with more rows than before grows the work buffers
    big = s.frames(np.tile(x, 3))
    assert np.allclose(s.spectrum(big)[-1], np.fft.rfft(big[-1] * s.window), atol=1e-4)
