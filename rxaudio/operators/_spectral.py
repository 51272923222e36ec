"""spectral: per-row spectral descriptors from one streaming STFT, equal to librosa's."""

from __future__ import annotations

from typing import Annotated, Any

from ..core.caps import Caps
from ..core.element import Operator, stage_operator
from ..core.props import Range, element
from ..dsp.features import FeatureKernel, SpectralKernel
from ..frames import AudioFrame, FeatureFrame
from ._features import FeatureStage, Hop, NFft, Window, check_stft


@element("spectral", kind="operator", accepts=Caps(), produces=Caps(frame=FeatureFrame))
def spectral(
    *,
    n_fft: NFft = 512,
    hop: Hop = 160,
    window: Window = "hann",
    roll_percent: Annotated[float, Range(0.0, 1.0, lo_open=True, hi_open=True)] = 0.85,
    p: Annotated[float, Range(1.0)] = 2.0,
) -> Operator[AudioFrame, FeatureFrame]:
    """Spectral descriptors per row: centroid, bandwidth, rolloff, flatness, zcr, rms.

    One magnitude STFT (no second FFT) and the same time-domain frames give six columns, each
    equal to its librosa function with ``center=False`` on the whole signal, for any chunking:

    ========== ====================================================== =====
    column     librosa                                                unit
    ========== ====================================================== =====
    centroid   ``feature.spectral_centroid(y, sr, n_fft, hop_length)`` Hz
    bandwidth  ``feature.spectral_bandwidth(..., p=p)``                Hz
    rolloff    ``feature.spectral_rolloff(..., roll_percent=...)``     Hz
    flatness   ``feature.spectral_flatness(...)`` (power 2, amin 1e-10) 0..1
    zcr        ``feature.zero_crossing_rate(y, frame_length=n_fft)``   0..1
    rms        ``feature.rms(y=y, frame_length=n_fft)`` (unwindowed)   linear
    ========== ====================================================== =====

    .. marble::
        -a(100)--b(700)------c(400)--|
        [ spectral(n_fft=512, hop=160) ]
        ---------B(rows 0-1)--C(rows 2-4)--|

    Parameters
    ----------
    n_fft
        Window and FFT length in samples, as :func:`spectrogram`.
    hop
        Samples between rows, ``1 <= hop <= n_fft``.
    window
        Window function, as :func:`spectrogram`.
    roll_percent
        Fraction of the spectral magnitude below the rolloff frequency.
    p
        Order of the bandwidth's deviation norm.

    Raises
    ------
    ConfigError
        At once: ``hop > n_fft``, unknown ``window``, ``roll_percent`` outside (0, 1), ``p < 1``.
    StreamError
        In the stream: a NaN or infinite sample, a sample rate or channel change, overlapping
        frames, a non-audio item.
    """
    n_fft, hop, window = check_stft("spectral", n_fft, hop, window)
    roll = roll_percent
    params: dict[str, Any] = {
        "n_fft": n_fft,
        "hop": hop,
        "window": window,
        "roll_percent": roll,
        "p": p,
    }

    def make_kernel(rate: int) -> FeatureKernel:
        return SpectralKernel(rate, n_fft, hop, window=window, roll_percent=roll, p=p)

    return stage_operator(
        "spectral",
        lambda: FeatureStage("spectral", "spectral", n_fft, hop, params, make_kernel),
        produces=Caps(frame=FeatureFrame),
    )
