"""The feature kernels: bounded state, allocation, no librosa/scipy at run time."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rxaudio.dsp.features import (
    MelSpec,
    MfccKernel,
    SpectralKernel,
    SpectrogramKernel,
    compiled_module,
)

# the numpy kernels, and the compiled one where it is built (see test_the_compiled_kernel_is_built)
BOTH_PATHS = [
    pytest.param(False, id="numpy"),
    pytest.param(
        True,
        id="compiled",
        marks=pytest.mark.skipif(compiled_module() is None, reason="compiled kernel not built"),
    ),
]


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


def test_spectrogram_kernel_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'cqt'"):
        SpectrogramKernel(16000, 512, 160, kind="cqt")


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
