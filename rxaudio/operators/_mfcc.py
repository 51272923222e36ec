"""mfcc: streaming MFCCs (+ deltas) from log-mel rows, equal to librosa with ``center=False``."""

from __future__ import annotations

from typing import Any

from ..core.caps import Caps
from ..core.check import finite, positive_int
from ..core.element import Operator, stage_operator
from ..core.props import element
from ..dsp.features import FeatureKernel, MfccKernel
from ..errors import ConfigError
from ..frames import AudioFrame, FeatureFrame
from ._features import FeatureStage, check_mel, check_mel_rate, check_stft


@element("mfcc", kind="operator", accepts=Caps(), produces=Caps(frame=FeatureFrame))
def mfcc(
    *,
    n_mfcc: int = 13,
    n_mels: int = 40,
    n_fft: int = 512,
    hop: int = 160,
    deltas: int = 0,
    delta_width: int = 9,
    window: str = "hann",
    fmin: float = 0.0,
    fmax: float | None = None,
    lifter: float = 0.0,
    ref: float = 1.0,
    amin: float = 1e-10,
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
    n_mels, fmin, fmax
        Mel bank (Slaney scale and norm; ``fmax`` defaults to half the sample rate).
    n_fft, hop, window
        STFT options, as :func:`spectrogram`.
    deltas
        0, 1 or 2: derivative orders appended (columns ``dmfcc_i``, ``ddmfcc_i``).
    delta_width
        Odd number of rows in the delta window, at least 3.
    lifter
        librosa's sinusoidal liftering (0: none).
    ref, amin
        dB reference power and floor of the log-mel rows.

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
    if isinstance(deltas, bool) or deltas not in (0, 1, 2):
        raise ConfigError(f"mfcc: deltas must be 0, 1 or 2, got {deltas!r}")
    width = positive_int("mfcc", "delta_width", delta_width)
    if width < 3 or width % 2 == 0:
        raise ConfigError(f"mfcc: delta_width must be odd and >= 3, got {width}")
    lifter = finite("mfcc", "lifter", lifter, 0.0)
    ref = finite("mfcc", "ref", ref, 1e-30)
    amin = finite("mfcc", "amin", amin, 1e-30)
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
