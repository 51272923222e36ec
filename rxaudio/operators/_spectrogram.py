"""spectrogram: streaming power/magnitude STFT, mel or log-mel rows."""

from __future__ import annotations

from typing import Annotated, Any

from ..core.caps import Caps
from ..core.element import Operator, stage_operator
from ..core.props import Choices, element
from ..dsp.features import SPECTROGRAM_KINDS, FeatureKernel, SpectrogramKernel
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


@element("spectrogram", kind="operator", accepts=Caps(), produces=Caps(frame=FeatureFrame))
def spectrogram(
    *,
    n_fft: NFft = 512,
    hop: Hop = 160,
    window: Window = "hann",
    kind: Annotated[str, Choices(SPECTROGRAM_KINDS)] = "power",
    n_mels: NMels = 64,
    fmin: FMin = 0.0,
    fmax: FMax = None,
    ref: Ref = 1.0,
    amin: Amin = 1e-10,
) -> Operator[AudioFrame, FeatureFrame]:
    """Streaming spectrogram: one row per hop, equal to librosa with ``center=False``.

    Every input chunk yields one :class:`~rxaudio.frames.FeatureFrame` holding the rows it
    completed (none for a chunk that completes no row). Row ``i`` covers samples
    ``[i * hop, i * hop + n_fft)``; ``n_fft - hop`` samples are carried between chunks, so any
    chunking gives the same rows. At completion the incomplete last window is dropped, as
    librosa's ``center=False`` does. Multi-channel audio is averaged to mono first.

    .. marble::
        -a(100)--b(700)------c(400)--|
        [ spectrogram(n_fft=512, hop=160) ]
        ---------B(rows 0-1)--C(rows 2-4)--|

    Parameters
    ----------
    n_fft
        Window and FFT length in samples; rows have ``n_fft // 2 + 1`` bins (power, magnitude).
    hop
        Samples between rows, ``1 <= hop <= n_fft``.
    window
        ``"hann"``, ``"hamming"``, ``"blackman"`` or ``"boxcar"`` (periodic, as scipy's).
    kind
        ``"power"`` ``|X|**2``, ``"magnitude"`` ``|X|``, ``"mel"`` (mel power, Slaney scale and
        norm, ``n_mels`` columns) or ``"log_mel"``: ``10 log10(max(amin, mel)) -
        10 log10(ref)`` dB. There is no ``top_db``: it clips relative to the whole signal's
        maximum, which a stream cannot know.
    n_mels
        Bands of the mel bank (``mel`` and ``log_mel``).
    fmin
        Lowest frequency of the mel bank.
    fmax
        Highest frequency of the mel bank; none: half the sample rate.
    ref
        dB reference power of ``log_mel``.
    amin
        Floor of the mel power before ``log_mel`` takes its log.

    Raises
    ------
    ConfigError
        At once: ``hop > n_fft``, unknown ``window``/``kind``, ``n_mels > n_fft // 2 + 1``.
    StreamError
        In the stream: a NaN or infinite sample, ``n_mels`` leaving mel filters empty at the
        stream's rate, ``fmax`` above Nyquist, a sample rate or channel change, overlapping
        frames, a non-audio item.
    """
    n_fft, hop, window = check_stft("spectrogram", n_fft, hop, window)
    mel = check_mel("spectrogram", n_fft, n_mels, fmin, fmax)
    params: dict[str, Any] = {"n_fft": n_fft, "hop": hop, "window": window, "kind": kind}
    if kind in ("mel", "log_mel"):
        params.update(n_mels=mel.n_mels, fmin=mel.fmin, fmax=mel.fmax)
    if kind == "log_mel":
        params.update(ref=ref, amin=amin)

    def make_kernel(rate: int) -> FeatureKernel:
        if kind in ("mel", "log_mel"):
            check_mel_rate("spectrogram", mel, n_fft, rate)
        return SpectrogramKernel(
            rate, n_fft, hop, window=window, kind=kind, mel=mel, ref=ref, amin=amin
        )

    return stage_operator(
        "spectrogram",
        lambda: FeatureStage("spectrogram", kind, n_fft, hop, params, make_kernel),
        produces=Caps(frame=FeatureFrame),
    )
