"""The numpy kernels against their references (librosa, scipy), and their bounded state."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxaudio.dsp.cepstral import StreamingDelta, dct_matrix, derivative_weights, power_to_db
from rxaudio.dsp.features import (
    MelSpec,
    MfccKernel,
    SpectralKernel,
    SpectrogramKernel,
    compiled_module,
)
from rxaudio.dsp.mel import empty_filters, hz_to_mel, max_mels, mel_filters, mel_to_hz
from rxaudio.dsp.stft import StreamingSTFT, get_window
from rxaudio.frames import FeatureFrame

# the numpy kernels, and the compiled one where it is built (see test_the_compiled_kernel_is_built)
BOTH_PATHS = [
    pytest.param(False, id="numpy"),
    pytest.param(
        True,
        id="compiled",
        marks=pytest.mark.skipif(compiled_module() is None, reason="compiled kernel not built"),
    ),
]

librosa = pytest.importorskip("librosa")
scipy_signal = pytest.importorskip("scipy.signal")
scipy_fft = pytest.importorskip("scipy.fft")


@pytest.mark.parametrize(
    ("rate", "n_fft", "n_mels", "fmin", "fmax", "htk", "norm"),
    [
        (8000, 256, 40, 0.0, None, False, True),
        (16000, 512, 40, 0.0, None, False, True),
        (16000, 512, 80, 20.0, 7600.0, False, True),
        (22050, 2048, 128, 0.0, None, False, True),
        (44100, 1024, 64, 50.0, 16000.0, True, True),
        (48000, 1024, 96, 0.0, None, False, False),
        (16000, 400, 26, 300.0, 3400.0, True, False),
    ],
)
def test_mel_bank_equals_librosa(
    rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool, norm: bool
) -> None:
    ours = mel_filters(rate, n_fft, n_mels, fmin, fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(
        sr=rate,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        htk=htk,
        norm="slaney" if norm else None,
    )
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert np.array_equal(ours, ref)
    assert not ours.flags.writeable


@given(st.floats(0.0, 24000.0), st.booleans())
def test_mel_scale_equals_librosa(f: float, htk: bool) -> None:
    assert np.isclose(hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk), rtol=1e-12)
    m = float(hz_to_mel(f, htk=htk))
    assert np.isclose(mel_to_hz(m, htk=htk), librosa.mel_to_hz(m, htk=htk), rtol=1e-12)
    assert np.isclose(mel_to_hz(m, htk=htk), f, rtol=1e-9, atol=1e-9)


def test_empty_filters_agree_with_librosa_warning() -> None:
    assert empty_filters(16000, 512, 40) == []
    assert len(empty_filters(48000, 512, 128)) > 0
    with pytest.warns(UserWarning, match="Empty filters"):
        librosa.filters.mel(sr=48000, n_fft=512, n_mels=128)
    best = max_mels(48000, 512)
    assert empty_filters(48000, 512, best) == [] and empty_filters(48000, 512, best + 1)


@pytest.mark.parametrize(
    ("rate", "n_fft", "fmin", "fmax", "htk"),
    [
        (8000, 256, 0.0, None, False),
        (48000, 512, 0.0, None, False),
        (22050, 400, 300.0, 8000.0, True),
    ],
)
def test_empty_filters_equal_the_built_bank(
    rate: int, n_fft: int, fmin: float, fmax: float | None, htk: bool
) -> None:
    """The O(n_mels) check names the same filters as the bank itself (librosa's test)."""
    for n_mels in range(1, n_fft // 2 + 2, 7):
        bank = mel_filters(rate, n_fft, n_mels, fmin, fmax, htk=htk, norm=False)
        mel_f = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax or rate / 2, htk=htk)
        ref = np.flatnonzero(~((mel_f[:-2] == 0) | (bank.max(axis=1) > 0))).tolist()
        assert empty_filters(rate, n_fft, n_mels, fmin, fmax, htk=htk) == ref, n_mels


def test_max_mels_bisects_without_building_banks(monkeypatch: pytest.MonkeyPatch) -> None:
    """n_fft 8192 with 4000 mels used to search down one n_mels at a time, building a bank for
    each (79 s before the error); now a few O(n_mels) checks and no bank at all."""
    import rxaudio.dsp.mel as mel_mod

    built = []
    real = mel_mod._weights
    monkeypatch.setattr(mel_mod, "_weights", lambda *a: built.append(a) or real(*a))
    calls = []
    real_empty = mel_mod.empty_filters
    monkeypatch.setattr(
        mel_mod, "empty_filters", lambda *a, **k: calls.append(a) or real_empty(*a, **k)
    )
    best = mel_mod.max_mels(16000, 8192)
    assert built == [] and len(calls) <= 14
    assert real_empty(16000, 8192, best) == [] and real_empty(16000, 8192, best + 1)
    assert best < 4000  # the case of the report: refused, with this bound in the message


@pytest.mark.parametrize("name", ["hann", "hamming", "blackman", "boxcar"])
@pytest.mark.parametrize("n", [256, 400, 512])
def test_windows_equal_scipy_periodic(name: str, n: int) -> None:
    assert np.allclose(
        get_window(name, n), scipy_signal.get_window(name, n, fftbins=True), atol=1e-15
    )


def test_unknown_window_names_the_choices() -> None:
    with pytest.raises(ValueError, match="hann, hamming, blackman, boxcar"):
        get_window("kaiser", 64)


@pytest.mark.parametrize(("n_mfcc", "n_mels"), [(13, 40), (20, 128), (40, 40)])
def test_dct_matrix_equals_scipy_ortho_dct(n_mfcc: int, n_mels: int) -> None:
    x = np.random.default_rng(0).standard_normal((7, n_mels))
    ref = scipy_fft.dct(x, type=2, norm="ortho", axis=1)[:, :n_mfcc]
    assert np.allclose(x @ dct_matrix(n_mfcc, n_mels).T, ref, atol=1e-12)


@pytest.mark.parametrize(("width", "order"), [(3, 1), (5, 1), (9, 1), (5, 2), (9, 2), (11, 2)])
def test_derivative_weights_equal_savgol(width: int, order: int) -> None:
    ref = scipy_signal.savgol_coeffs(width, order, deriv=order, use="dot")
    assert np.allclose(derivative_weights(width, order), ref, atol=1e-12)


def test_power_to_db_equals_librosa_with_fixed_ref() -> None:
    s = np.abs(np.random.default_rng(1).standard_normal((5, 9))) ** 3
    s[0, 0] = 0.0
    for ref in (1.0, 0.01):
        want = librosa.power_to_db(s, ref=ref, amin=1e-10, top_db=None)
        assert np.allclose(power_to_db(s, ref=ref), want, atol=1e-10)


@given(st.integers(1, 40), st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_streaming_delta_any_chunking_equals_librosa(n_rows: int, cuts: list[int]) -> None:
    x = np.random.default_rng(n_rows).standard_normal((n_rows, 3))
    d = StreamingDelta(5, (1, 2))
    edges = sorted({c % n_rows for c in cuts} - {0})
    parts, start, nxt = [], 0, 0
    for e in [*edges, n_rows]:
        first, out = d.push(x[start:e])
        assert first == nxt
        nxt += out.shape[0]
        parts.append(out)
        start = e
    first, out = d.flush()
    assert first == nxt
    got = np.concatenate([*parts, out])
    assert got.shape == (n_rows, 9)
    assert np.allclose(got[:, :3], x, atol=1e-6)
    if n_rows >= 5:
        assert np.allclose(got[:, 3:6], librosa.feature.delta(x.T, width=5).T, atol=1e-5)
        assert np.allclose(got[:, 6:], librosa.feature.delta(x.T, width=5, order=2).T, atol=1e-5)
    elif n_rows >= 2:  # librosa refuses; we give the slope of the least-squares line
        slope = np.polyfit(np.arange(n_rows), x, 1)[0]
        assert np.allclose(got[:, 3:6], slope, atol=1e-5)
    else:
        assert np.all(got[:, 3:] == 0)


@pytest.mark.parametrize("compiled", BOTH_PATHS)
def test_state_stays_bounded_on_a_long_stream(compiled: bool) -> None:
    """Ten minutes at 16 kHz in 1024-sample chunks: what a kernel holds never grows."""
    rng = np.random.default_rng(2)
    chunk = (0.1 * rng.standard_normal(1024)).astype(np.float32)
    k = MfccKernel(16000, 512, 160, mel=MelSpec(n_mels=40), deltas=2, compiled=compiled)
    s = SpectralKernel(16000, 512, 160)
    rows = 0
    for _ in range(16000 * 600 // 1024):
        first, out = k.push(chunk)
        assert first == rows
        rows += out.shape[0]
        s.push(chunk)
        for stft in (k.spec.stft, s.stft):  # carried samples, and the buffer holding them
            assert stft._carry < 512 and stft._sbuf.shape[0] <= 2 * (512 + 1024)
        if compiled:
            assert k.compiled.carry < 512
        assert k.delta is not None and k.delta._buf is not None
        assert k.delta._buf.shape[0] <= max(4 * 9, 2 * 7 + 9)  # never grown
        assert k.delta._n <= k.delta._buf.shape[0]
    assert rows == k.rows - 4


def test_steady_state_push_allocates_only_its_output() -> None:
    """Once warm, a chunk costs no work arrays: samples, spectrum, power and mel rows live in
    buffers reused from chunk to chunk; what is allocated is the rows handed out."""
    import tracemalloc

    chunk = (0.1 * np.random.default_rng(4).standard_normal(1024)).astype(np.float32)
    k = MfccKernel(16000, 512, 160, mel=MelSpec(n_mels=40))
    for _ in range(8):  # both row counts a 1024-sample chunk gives (6 and 7) are met
        k.push(chunk)
    tracemalloc.start()
    try:
        for _ in range(5):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            _, rows = k.push(chunk)
            peak = tracemalloc.get_traced_memory()[1] - before
            # the rows (7 x 13 float32 = 364 bytes) and array headers; one 7 x 257 work array
            # alone would be 7 kB
            assert peak < rows.nbytes + 1500, peak
    finally:
        tracemalloc.stop()


def test_stft_frames_are_librosa_frames() -> None:
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    s = StreamingSTFT(400, 128)
    got = np.concatenate([s.frames(x[i : i + 333]).copy() for i in range(0, 5000, 333)])
    ref = librosa.util.frame(x, frame_length=400, hop_length=128).T
    assert np.array_equal(got, ref)
    with pytest.raises(ValueError, match="must not exceed"):
        StreamingSTFT(256, 512)


def test_spectrogram_kernel_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'cqt'"):
        SpectrogramKernel(16000, 512, 160, kind="cqt")


def test_feature_frame_to_dict_is_compact_json() -> None:
    import json

    v = np.array([[1.23456, -80.0], [2.0, 0.5]], dtype=np.float32)
    f = FeatureFrame("log_mel", v, 320, 16000, 160, 512, 2, ("mel_0", "mel_1"), {"n_mels": 2})
    d = f.to_dict(2)
    assert d == {
        "type": "spectrogram",
        "kind": "log_mel",
        "t": 0.02,
        "hop": 0.01,
        "window": 0.032,
        "row": 2,
        "rows": 2,
        "bins": 2,
        "values": [[1.23, -80.0], [2.0, 0.5]],
    }
    assert "values" not in f.to_dict(values=False)
    full = f.to_dict(with_columns=True)
    assert full["columns"] == ["mel_0", "mel_1"] and full["params"] == {"n_mels": 2}
    assert full["latency"] == 0
    json.dumps(full, allow_nan=False)
    assert list(f.starts) == [320, 480] and f.end == 480 + 512
    assert not f.values.flags.writeable
    from rxaudio.errors import FormatError

    with pytest.raises(FormatError, match="float32"):
        FeatureFrame("mfcc", v.astype(np.float64), 0, 16000, 160, 512)
    with pytest.raises(FormatError, match="no rows"):
        FeatureFrame("mfcc", np.zeros((0, 2), np.float32), 0, 16000, 160, 512)
    with pytest.raises(FormatError, match="3 column names for 2"):
        FeatureFrame("mfcc", v, 0, 16000, 160, 512, 0, ("a", "b", "c"))


def test_operators_and_kernels_do_not_import_librosa_or_scipy() -> None:
    code = (
        "import sys, numpy as np\n"
        "from rxaudio.operators import mfcc, spectral, spectrogram\n"
        "from rxaudio.dsp.features import MfccKernel, SpectralKernel\n"
        "k = MfccKernel(16000, 512, 160, deltas=2); k.push(np.ones(4000, np.float32))\n"
        "SpectralKernel(16000, 512, 160).push(np.ones(4000, np.float32))\n"
        "bad = [m for m in ('librosa', 'scipy', 'numba', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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


@pytest.mark.parametrize("compiled", BOTH_PATHS)
def test_many_different_chunk_sizes_do_not_pile_up_buffers(compiled: bool) -> None:
    """Work buffers are sized by the largest chunk, not kept per chunk size: a stream whose
    chunks come in 200 different sizes holds what its largest chunk needs."""
    import tracemalloc

    rng = np.random.default_rng(9)
    sizes = rng.permutation(np.arange(1, 201) * 160)
    x = (0.1 * rng.standard_normal(int(sizes.max()))).astype(np.float32)
    kernels = [
        MfccKernel(16000, 512, 160, mel=MelSpec(n_mels=40), compiled=compiled),
        SpectrogramKernel(16000, 512, 160, kind="log_mel", mel=MelSpec(n_mels=40)),
        SpectralKernel(16000, 512, 160),
    ]
    tracemalloc.start()
    try:
        for _ in range(2):  # the largest chunk first (twice, the second after a carry):
            for k in kernels:  # every buffer at its final size
                k.push(x)
        base = tracemalloc.get_traced_memory()[0]
        for n in sizes:
            for k in kernels:
                k.push(x[:n])
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # 200 sizes x (window copy + spectra + power + mel) per size would be ~300 MB
    assert held < 50_000, held


def test_the_compiled_kernel_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supported install (``make test``, ``pip install -e .``) builds the extension: the
    benchmarked fast path is the one these tests run."""
    import importlib

    importlib.import_module("rxaudio.dsp._melkernel")  # ImportError: not built
    monkeypatch.delenv("RXAUDIO_NO_COMPILED", raising=False)
    assert MfccKernel(16000, 512, 160).compiled is not None
