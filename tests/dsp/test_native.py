"""The compiled STFT/mel/MFCC kernel: built, equal to the numpy path, chunking-invariant, strict
about its input. Parity with librosa itself is in ``tests/operators/test_spectrogram.py`` and
``test_mfcc.py`` (run on both paths)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxaudio.dsp.features import (
    MelSpec,
    MfccKernel,
    SpectrogramKernel,
    compiled_module,
    use_compiled,
)

KINDS = ["power", "magnitude", "mel", "log_mel", "mfcc"]

# the supported install builds the extension (test_the_compiled_kernel_is_built in
# tests/dsp/test_features.py fails without it); the tests of its behaviour skip where it is
# missing or turned off, so `RXAUDIO_NO_COMPILED=1 pytest` runs everything else on the numpy
# kernels
pytestmark = pytest.mark.skipif(
    compiled_module() is None, reason="compiled kernel not built or RXAUDIO_NO_COMPILED set"
)


def _kernel(kind: str, rate: int, n_fft: int, hop: int, compiled: bool, **kw: Any) -> Any:
    if kind == "mfcc":
        return MfccKernel(rate, n_fft, hop, mel=MelSpec(n_mels=40), compiled=compiled, **kw)
    mel = MelSpec(n_mels=40) if kind in ("mel", "log_mel") else None
    return SpectrogramKernel(rate, n_fft, hop, kind=kind, mel=mel, compiled=compiled, **kw)


def _run(k: Any, x: np.ndarray, cuts: list[int]) -> np.ndarray:
    edges = sorted({c % len(x) for c in cuts} - {0})
    parts, start, nxt = [], 0, 0
    for e in [*edges, len(x)]:
        first, rows = k.push(x[start:e])
        assert first == nxt and rows.dtype == np.float32
        nxt += rows.shape[0]
        parts.append(rows)
        start = e
    first, rows = k.flush()
    assert first == nxt
    return np.concatenate([*parts, rows])


def _signal(rate: int, seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(80, rate / 8) * t)
    x += rng.uniform(0.001, 0.1) * rng.standard_normal(n)
    a = int(rng.integers(0, n // 2))
    x[a : a + n // 5] = 0.0  # digital silence: the amin floor
    return x.astype(np.float32)


# every kind at the usual sizes; the smallest FFT the extension takes, where no mel bank fits
EQUAL_CASES = [
    (kind, *cfg)
    for cfg in [(8000, 256, 80), (16000, 512, 160), (48000, 2048, 480)]
    for kind in KINDS
] + [("power", 16000, 16, 16), ("magnitude", 16000, 16, 7)]


@pytest.mark.parametrize(("kind", "rate", "n_fft", "hop"), EQUAL_CASES)
def test_compiled_equals_numpy_path(kind: str, rate: int, n_fft: int, hop: int) -> None:
    """Same rows as the numpy kernel up to float32 rounding (the numpy path rounds the STFT to
    complex64 as librosa does; the compiled one stays in float64 until the output)."""
    x = _signal(rate, 1, 1.0)
    ours = _run(_kernel(kind, rate, n_fft, hop, True), x, [1000, 2500, 2501, 7000])
    ref = _run(_kernel(kind, rate, n_fft, hop, False), x, [333])
    assert ours.shape == ref.shape and ours.shape[0] == 1 + (len(x) - n_fft) // hop
    if kind in ("power", "mel"):  # compare in dB, where the tolerance is stated
        ours, ref = 10 * np.log10(np.maximum(ours, 1e-10)), 10 * np.log10(np.maximum(ref, 1e-10))
    elif kind == "magnitude":
        ours, ref = 20 * np.log10(np.maximum(ours, 1e-5)), 20 * np.log10(np.maximum(ref, 1e-5))
    assert np.all(np.abs(ours - ref) <= 1e-4 + 1e-6 * np.abs(ref)), np.abs(ours - ref).max()


@given(
    st.sampled_from(KINDS),
    st.integers(0, 2**31),
    st.lists(st.integers(0, 10**6), max_size=30),
    st.lists(st.integers(0, 10**6), max_size=30),
)
def test_any_chunking_gives_bit_identical_rows(
    kind: str, seed: int, cuts_a: list[int], cuts_b: list[int]
) -> None:
    """A frame's rows do not depend on which vector lane, group or call computes it."""
    x = _signal(16000, seed, 0.6)
    a = _run(_kernel(kind, 16000, 512, 160, True), x, cuts_a)
    b = _run(_kernel(kind, 16000, 512, 160, True), x, cuts_b)
    assert np.array_equal(a, b)


@given(st.integers(0, 2**31), st.lists(st.integers(0, 10**6), max_size=20))
def test_deltas_on_the_compiled_path_are_chunking_invariant(seed: int, cuts: list[int]) -> None:
    x = _signal(16000, seed, 0.5)
    a = _run(_kernel("mfcc", 16000, 512, 160, True, deltas=2), x, cuts)
    b = _run(_kernel("mfcc", 16000, 512, 160, True, deltas=2), x, [])
    c = _run(_kernel("mfcc", 16000, 512, 160, False, deltas=2), x, [])
    assert np.array_equal(a, b)
    assert np.all(np.abs(a - c) <= 1e-4 + 1e-6 * np.abs(c))


def test_one_large_chunk_grows_the_buffer_and_equals_small_chunks() -> None:
    x = _signal(16000, 5, 7.0)
    whole = _run(_kernel("log_mel", 16000, 512, 160, True), x, [])
    small = _run(_kernel("log_mel", 16000, 512, 160, True), x, list(range(0, len(x), 100)))
    assert np.array_equal(whole, small)


def test_strided_and_float64_chunks_are_converted() -> None:
    x = _signal(16000, 6, 0.5)
    want = _run(_kernel("mfcc", 16000, 512, 160, True), x, [])
    k = _kernel("mfcc", 16000, 512, 160, True)
    stereo = np.stack([x, -x], axis=1)  # column 0 is a strided view
    _, a = k.push(stereo[:3000, 0])
    _, b = k.push(x[3000:].astype(np.float64))
    assert np.array_equal(np.concatenate([a, b]), want)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_is_refused_and_changes_nothing(compiled: bool, bad: float) -> None:
    x = _signal(16000, 7, 0.5)
    want = _run(_kernel("log_mel", 16000, 512, 160, compiled), x, [2000])
    k = _kernel("log_mel", 16000, 512, 160, compiled)
    _, a = k.push(x[:2000])
    poisoned = x[2000:].copy()
    poisoned[1234] = bad
    with pytest.raises(FloatingPointError, match="sample 1234 of the chunk is not finite"):
        k.push(poisoned)
    _, b = k.push(x[2000:])  # as if the bad chunk had never come
    assert np.array_equal(np.concatenate([a, b]), want)


def test_only_power_of_two_sizes_run_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SpectrogramKernel(16000, 400, 160, kind="power").compiled is None  # numpy serves
    with pytest.raises(RuntimeError, match="power of two"):
        SpectrogramKernel(16000, 400, 160, kind="power", compiled=True)
    assert not use_compiled(512, 0.0, None)  # amin 0: log10(0) needs numpy's -inf
    monkeypatch.setenv("RXAUDIO_NO_COMPILED", "1")
    assert compiled_module() is None
    assert MfccKernel(16000, 512, 160).compiled is None
    with pytest.raises(RuntimeError, match=r"not built .* or RXAUDIO_NO_COMPILED is set"):
        MfccKernel(16000, 512, 160, compiled=True)


def test_the_extension_checks_its_arguments() -> None:
    mod = compiled_module()
    w = np.hanning(512)
    with pytest.raises(ValueError, match="power of two"):
        mod.Kernel(400, 160, np.hanning(400), 0)
    with pytest.raises(ValueError, match="hop"):
        mod.Kernel(512, 600, w, 0)
    with pytest.raises(ValueError, match="window has the wrong shape"):
        mod.Kernel(512, 160, np.hanning(256), 0)
    with pytest.raises(TypeError, match="window must be a 1-D float64"):
        mod.Kernel(512, 160, w.astype(np.float32), 0)
    with pytest.raises(ValueError, match="needs a mel filter bank"):
        mod.Kernel(512, 160, w, 3)
    with pytest.raises(ValueError, match="mode"):
        mod.Kernel(512, 160, w, 9)
    with pytest.raises(ValueError, match="amin"):
        mod.Kernel(512, 160, w, 0, amin=0.0)
    k = mod.Kernel(512, 160, w, 0)
    x = np.zeros(1000, np.float32)
    with pytest.raises(ValueError, match=r"shape \(4, 257\)"):
        k.push(x, np.empty((3, 257), np.float32))
    with pytest.raises(TypeError, match="float32"):
        k.push(x.astype(np.int16), np.empty((4, 257), np.float32))
    assert k.carry == 0 and k.rows == 0  # nothing consumed by the refused calls
    assert k.push(x, np.empty((4, 257), np.float32)) == 4
    assert k.carry == 1000 - 4 * 160 and k.rows == 4 and k.rows_for(100) == 0


@given(
    st.integers(0, 2**31),
    st.integers(1, 60),
    st.sampled_from([3, 5, 9]),
    st.lists(st.integers(1, 12), min_size=1, max_size=30),
)
def test_compiled_deltas_equal_the_numpy_deltas(
    seed: int, n_rows: int, width: int, sizes: list[int]
) -> None:
    """``StreamingDelta`` with the C sums and with the numpy product: the same rows (float32
    rounding apart), and the C ones bit-identical however the rows are pushed."""
    from rxaudio.dsp.cepstral import StreamingDelta

    x = np.random.default_rng(seed).standard_normal((n_rows, 5))

    def run(compiled: bool, sizes: list[int]) -> np.ndarray:
        d = StreamingDelta(width, (1, 2))
        assert d._compiled is not None
        if not compiled:
            d._compiled = None
        parts, start, i = [], 0, 0
        while start < n_rows:
            step = sizes[i % len(sizes)]
            parts.append(d.push(x[start : start + step])[1])
            start, i = start + step, i + 1
        parts.append(d.flush()[1])
        return np.concatenate(parts)

    c = run(True, sizes)
    assert np.array_equal(c, run(True, [1]))
    assert np.allclose(c, run(False, sizes), rtol=1e-6, atol=1e-6)


def test_compiled_deltas_check_their_arguments() -> None:
    deltas = compiled_module().deltas
    hist = np.zeros((10, 3))
    w = np.ones((2, 5))
    with pytest.raises(TypeError, match="float64"):
        deltas(hist.astype(np.float32), w, np.zeros((2, 9), np.float32), 2, 2, 7)
    with pytest.raises(ValueError, match="out of range"):  # a window would start before row 0
        deltas(hist, w, np.zeros((2, 9), np.float32), 0, 1, 7)
    with pytest.raises(ValueError, match="out of range"):  # ... or end past the last row
        deltas(hist, w, np.zeros((2, 9), np.float32), 7, 2, 8)
    with pytest.raises(ValueError, match="out of range"):  # columns for 2 orders of 3
        deltas(hist, w, np.zeros((2, 6), np.float32), 2, 2, 7)
    out = np.zeros((10, 9), np.float32)
    hist[:] = np.arange(10)[:, None]
    deltas(hist, w, out, 0, 2, 7)  # edge rows take the clamped centre's window
    assert np.array_equal(out[:, 0], np.arange(10))
    assert np.array_equal(out[:, 3], [10, 10, 10, 15, 20, 25, 30, 35, 35, 35])


def test_a_kernel_whose_init_failed_refuses_work() -> None:
    """Not a hang, not a crash: a half-built kernel says so."""
    mod = compiled_module()
    bare = mod.Kernel.__new__(mod.Kernel)
    with pytest.raises(RuntimeError, match="not initialised"):
        bare.push(np.zeros(1000, np.float32), np.zeros((4, 257), np.float32))
    k = mod.Kernel.__new__(mod.Kernel)
    with pytest.raises(ValueError, match="needs a mel filter bank"):
        k.__init__(512, 160, np.hanning(512), 3)  # fails after the window was read
    with pytest.raises(RuntimeError, match="not initialised"):
        k.push(np.zeros(1000, np.float32), np.zeros((4, 40), np.float32))
    with pytest.raises(RuntimeError, match="not initialised"):
        k.rows_for(1000)
    with pytest.raises(RuntimeError, match="already initialised"):
        k.__init__(512, 160, np.hanning(512), 0)


def test_byte_order_and_item_type_are_checked_exactly() -> None:
    mod = compiled_module()
    k = mod.Kernel(512, 160, np.hanning(512), 0)
    x = np.random.default_rng(8).standard_normal(1000).astype(np.float32)
    with pytest.raises(TypeError, match="float32"):
        k.push(x.astype(">f4"), np.empty((4, 257), np.float32))
    for bad in (np.empty((4, 257), ">f4"), np.empty((4, 257), np.complex64)):
        with pytest.raises(ValueError, match="float32 or float64"):
            k.push(x, bad)
    with pytest.raises(TypeError, match="window must be a 1-D float64"):
        mod.Kernel(512, 160, np.hanning(512).astype(">f8"), 0)
    # through the Python kernel a foreign byte order is converted, not misread
    want = _run(_kernel("log_mel", 16000, 512, 160, True), x, [])
    got = _run(_kernel("log_mel", 16000, 512, 160, True), x.astype(">f4"), [])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_chunk_changes_nothing(kind: str, compiled: bool) -> None:
    x = _signal(16000, 10, 0.3)
    want = _run(_kernel(kind, 16000, 512, 160, compiled), x, [1000, 3000])
    k = _kernel(kind, 16000, 512, 160, compiled)
    parts = []
    for a, b in [(0, 1000), (1000, 1000), (1000, 3000), (3000, 3000), (3000, len(x))]:
        _, rows = k.push(x[a:b])
        assert rows.dtype == np.float32 and rows.ndim == 2
        parts.append(rows)
    parts.append(k.flush()[1])
    assert np.array_equal(np.concatenate(parts), want)


@given(
    st.integers(0, 2**31),
    st.sampled_from([(8000, 256, 80), (16000, 512, 160), (16000, 400, 128), (48000, 1024, 480)]),
    st.sampled_from([0.85, 0.5, 0.99]),
    st.sampled_from([2.0, 1.0, 3.0]),
    st.lists(st.integers(0, 10**6), max_size=10),
)
def test_compiled_spectral_equals_the_numpy_descriptors(
    seed: int, cfg: tuple[int, int, int], roll: float, p: float, cuts: list[int]
) -> None:
    """Rolloff and zero-crossing rate identical (the same float32 comparison, the same
    counts), the float64 ones within float32 rounding; any chunking bit-identical."""
    from rxaudio.dsp.features import SpectralKernel

    rate, n_fft, hop = cfg
    x = _signal(rate, seed, 0.4)
    kw = {"roll_percent": roll, "p": p}
    c = _run(SpectralKernel(rate, n_fft, hop, compiled=True, **kw), x, cuts)
    assert np.array_equal(c, _run(SpectralKernel(rate, n_fft, hop, compiled=True, **kw), x, []))
    ref = _run(SpectralKernel(rate, n_fft, hop, compiled=False, **kw), x, cuts)
    assert np.array_equal(c[:, 2], ref[:, 2]) and np.array_equal(c[:, 4], ref[:, 4])
    assert np.allclose(c[:, [0, 1, 3, 5]], ref[:, [0, 1, 3, 5]], rtol=1e-5, atol=1e-6)


def test_compiled_spectral_checks_its_arguments() -> None:
    spectral_c = compiled_module().spectral
    mag = np.ones((2, 257), np.float32)
    frames = np.ones((2, 512), np.float32)
    freqs = np.linspace(0, 8000, 257)
    out = np.empty((2, 6), np.float32)
    with pytest.raises(TypeError, match="float32"):
        spectral_c(mag.astype(np.float64), frames, freqs, out, 0.85, 2.0, 1e-10, 1e-10)
    with pytest.raises(ValueError, match="out of range"):
        spectral_c(mag, frames[:1], freqs, out, 0.85, 2.0, 1e-10, 1e-10)
    with pytest.raises(ValueError, match="out of range"):
        spectral_c(mag, frames, freqs, out, 0.85, 0.0, 1e-10, 1e-10)
    spectral_c(mag, frames, freqs, out, 0.5, 2.0, 1e-10, 1e-10)
    # flat spectrum: centroid at the middle, rolloff at half the bins, flatness 1, no crossings
    assert np.allclose(out[:, 0], 4000.0) and np.allclose(out[:, 3], 1.0)
    assert np.all(out[:, 2] == freqs[128]) and np.all(out[:, 4] == 0) and np.allclose(out[:, 5], 1)


def test_the_baseline_build_matches(tmp_path: Any) -> None:
    """On x86-64 the hot loops are compiled twice (AVX2+FMA and baseline) and the CPU picks
    one; this machine runs the first. Build the baseline alone and hold it to the same rules:
    equal to the installed build within float rounding, chunking-invariant, rolloff and
    zero-crossing counts identical."""
    import importlib.machinery
    import importlib.util
    import shutil
    import subprocess
    import sysconfig
    from pathlib import Path

    import rxaudio.dsp as dsp

    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "no C compiler: scripts/setup.sh installs gcc"
    src = Path(dsp.__file__).with_name("_melkernel.c")
    so = tmp_path / ("_melkernel" + sysconfig.get_config_var("EXT_SUFFIX"))
    inc = sysconfig.get_paths()["include"]
    subprocess.run(
        [
            gcc,
            "-O3",
            "-fno-math-errno",
            "-Wno-psabi",
            "-DRXAUDIO_NO_CLONES",
            "-shared",
            "-fPIC",
            f"-I{inc}",
            str(src),
            "-o",
            str(so),
            "-lm",
        ],
        check=True,
    )
    loader = importlib.machinery.ExtensionFileLoader("baseline._melkernel", str(so))
    spec = importlib.util.spec_from_file_location("baseline._melkernel", so, loader=loader)
    assert spec is not None
    base = importlib.util.module_from_spec(spec)
    loader.exec_module(base)
    installed = compiled_module()

    x = _signal(16000, 11, 1.0)
    ref = MfccKernel(16000, 512, 160, mel=MelSpec(n_mels=40), deltas=2)
    assert ref.compiled is not None
    w, bank = ref.spec.stft.window, np.ascontiguousarray(ref.spec.basis.T, dtype=np.float64)
    args = (np.ascontiguousarray(ref.dct.T), ref.offset)

    def rows(mod: Any, cuts: list[int]) -> np.ndarray:
        k = mod.Kernel(512, 160, w, 4, bank, *args)
        out, start = [], 0
        for e in [*cuts, len(x)]:
            o = np.empty((k.rows_for(e - start), 13), np.float32)
            k.push(x[start:e], o)
            out.append(o)
            start = e
        return np.concatenate(out)

    b = rows(base, [1000, 5000])
    assert np.array_equal(b, rows(base, list(range(333, len(x), 333))))
    assert np.allclose(b, rows(installed, []), rtol=1e-6, atol=2e-5)

    mag = (np.abs(np.random.default_rng(12).standard_normal((9, 257))) ** 3).astype(np.float32)
    frames = np.random.default_rng(13).standard_normal((9, 512)).astype(np.float32)
    freqs = np.linspace(0.0, 8000.0, 257)
    o1, o2 = np.empty((9, 6), np.float32), np.empty((9, 6), np.float32)
    base.spectral(mag, frames, freqs, o1, 0.85, 2.0, 1e-10, 1e-10)
    installed.spectral(mag, frames, freqs, o2, 0.85, 2.0, 1e-10, 1e-10)
    assert np.array_equal(o1[:, [2, 4]], o2[:, [2, 4]])
    assert np.allclose(o1, o2, rtol=1e-6, atol=1e-6)


def test_adversarial_arguments_are_refused_not_crashing() -> None:
    """Indices and sizes chosen to wrap a signed sum or product are refused (they used to
    read or write outside the arrays)."""
    import sys

    mod = compiled_module()
    big = sys.maxsize
    h = np.arange(12.0).reshape(3, 4)
    w = np.ones((1, 3))
    for row0, lo, hi in [(big, 1, 1), (0, big, big), (0, -big - 1, -big - 1), (-1, 1, 1)]:
        with pytest.raises((ValueError, OverflowError)):
            mod.deltas(h, w, np.zeros((1, 8), np.float32), row0, lo, hi)
    with pytest.raises(ValueError, match="out of range"):
        mod.deltas(h, w, np.zeros((0, 8), np.float32), 1, 1, 1)
    k = mod.Kernel(512, 160, np.hanning(512), 0)
    k.push(np.zeros(100, np.float32), np.zeros((0, 257), np.float32))  # 100 samples carried
    with pytest.raises(ValueError, match="out of range"):
        k.rows_for(big)  # carry + count would wrap
    with pytest.raises(ValueError, match="out of range"):
        k.rows_for(-1)
    mag, frames = np.ones((1, 257), np.float32), np.ones((1, 512), np.float32)
    for roll in (0.0, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="out of range"):
            mod.spectral(
                mag, frames, np.arange(257.0), np.empty((1, 6), np.float32), roll, 2.0, 1e-10, 1e-10
            )


def test_zero_crossings_use_librosa_float32_threshold() -> None:
    """A sample exactly at -float32(1e-10) counts as zero, as librosa compares in float32."""
    from rxaudio.dsp.features import SpectralKernel

    x = np.full(512, 0.5, np.float32)
    x[100] = np.float32(-1e-10)
    x[300] = -0.25
    c = SpectralKernel(16000, 512, 512, compiled=True).push(x)[1]
    n = SpectralKernel(16000, 512, 512, compiled=False).push(x)[1]
    assert c[0, 4] == n[0, 4] == np.float32(2 / 512)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        SpectralKernel(16000, 512, 160, roll_percent=1.0)
