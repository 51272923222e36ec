"""Mel scale and filter banks against librosa."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxaudio.dsp.mel import empty_filters, hz_to_mel, max_mels, mel_filters, mel_to_hz

librosa = pytest.importorskip("librosa")


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
