"""mfcc: streaming MFCCs (+ deltas) from log-mel rows, equal to librosa with ``center=False``."""

from __future__ import annotations

from typing import Annotated, Any

from ..core.caps import Caps
from ..core.check import positive_int
from ..core.element import Operator, stage_operator
from ..core.props import Choices, Range, element
from ..dsp.features import FeatureKernel, MfccKernel
from ..errors import ConfigError
from ..frames import AudioFrame, FeatureFrame
from ._features import (
    Amin,
    FeatureStage,
    FMax,
    FMin,
    Hop,
    NFft,
    NMels,
    Ref,
    Window,
    check_mel,
    check_mel_rate,
    check_stft,
)


@element("mfcc", kind="operator", accepts=Caps(), produces=Caps(frame=FeatureFrame))
def mfcc(
    *,
    n_mfcc: Annotated[int, Range(1)] = 13,
    n_mels: NMels = 40,
    n_fft: NFft = 512,
    hop: Hop = 160,
    deltas: Annotated[int, Choices((0, 1, 2))] = 0,
    delta_width: Annotated[int, Range(3)] = 9,
    window: Window = "hann",
    fmin: FMin = 0.0,
    fmax: FMax = None,
    lifter: Annotated[float, Range(0.0)] = 0.0,
    ref: Ref = 1.0,
    amin: Amin = 1e-10,
) -> Operator[AudioFrame, FeatureFrame]:
    """Streaming MFCCs, optionally with deltas and delta-deltas, one row per hop.

    Row ``i`` is the orthonormal DCT-II of the log-mel row ``i`` (``power_to_db`` with fixed
    ``ref`` and no ``top_db``) keeping ``n_mfcc`` coefficients: librosa's
    ``mfcc(S=power_to_db(melspectrogram(y, center=False, ...), top_db=None))`` on the whole
    signal, for any chunking. With ``deltas`` (1: delta, 2: delta and delta-delta) each row
    gains ``n_mfcc`` columns per order, equal to ``librosa.feature.delta(width=delta_width)``
    on every row (edges included when the stream has at least ``delta_width`` rows); rows then
    come out ``latency = delta_width // 2`` rows late (4 rows, 40 ms at hop 160 and 16 kHz;
    only the first ``latency`` rows of a stream wait longer, until row ``delta_width - 1``
    exists, since their deltas use the stream's first full window) and completion flushes the
    held rows.

    .. marble::
        -a(1024)--b(1024)------c(100)---|
        [       mfcc(deltas=1)        ]
        ----------B(rows 0-5)--C(row 6)--(D(rows 7-10)|)

    Parameters
    ----------
    n_mfcc
        Coefficients per row, at most ``n_mels``.
    n_mels
        Bands of the mel bank (Slaney scale and norm).
    fmin
        Lowest frequency of the mel bank.
    fmax
        Highest frequency of the mel bank; none: half the sample rate.
    n_fft
        Window and FFT length in samples, as :func:`spectrogram`.
    hop
        Samples between rows, ``1 <= hop <= n_fft``.
    window
        Window function, as :func:`spectrogram`.
    deltas
        Derivative orders appended (columns ``dmfcc_i``, ``ddmfcc_i``).
    delta_width
        Rows in the delta window, odd.
    lifter
        librosa's sinusoidal liftering (0: none).
    ref
        dB reference power of the log-mel rows.
    amin
        Floor of the mel power before the log-mel rows take its log.

    Raises
    ------
    ConfigError
        At once: ``hop > n_fft``, ``n_mfcc > n_mels``, ``n_mels > n_fft // 2 + 1``, bad
        ``deltas``/``delta_width``/``window``.
    StreamError
        In the stream: a NaN or infinite sample, empty mel filters at the stream's rate, a
        sample rate change, overlap.
    """
    n_fft, hop, window = check_stft("mfcc", n_fft, hop, window)
    mel = check_mel("mfcc", n_fft, n_mels, fmin, fmax)
    n_mfcc = positive_int("mfcc", "n_mfcc", n_mfcc, maximum=mel.n_mels)
    width = delta_width
    if width % 2 == 0:
        raise ConfigError(f"mfcc: delta_width must be odd and >= 3, got {width}")
    params: dict[str, Any] = {
        "n_mfcc": n_mfcc,
        "n_mels": mel.n_mels,
        "n_fft": n_fft,
        "hop": hop,
        "window": window,
        "fmin": mel.fmin,
        "fmax": mel.fmax,
        "deltas": deltas,
        "delta_width": width,
        "lifter": lifter,
        "ref": ref,
        "amin": amin,
    }

    def make_kernel(rate: int) -> FeatureKernel:
        check_mel_rate("mfcc", mel, n_fft, rate)
        return MfccKernel(
            rate,
            n_fft,
            hop,
            n_mfcc=n_mfcc,
            mel=mel,
            window=window,
            deltas=deltas,
            delta_width=width,
            lifter=lifter,
            ref=ref,
            amin=amin,
        )

    return stage_operator(
        "mfcc",
        lambda: FeatureStage("mfcc", "mfcc", n_fft, hop, params, make_kernel),
        produces=Caps(frame=FeatureFrame),
    )
