"""Voice activity detection algorithms, free of Rx (plain numpy in, probabilities out).

Backends (all with ``reset()``, ``score(window)`` and ``score_many(windows)``):

* ``silero`` -- :class:`~rxaudio.vad.silero.SileroOnnx`, Silero through onnxruntime (default; never
  imports torch), 512-sample windows at 16 kHz or 256 at 8 kHz;
* ``silero-torch`` -- :class:`~rxaudio.vad.silero.SileroTorch`, silero-vad's TorchScript model (the
  ``silero-torch`` extra: torch and silero-vad);
* ``webrtc`` -- :class:`~rxaudio.vad.webrtc.WebRtcScorer`, modes 0-3, 10/20/30 ms windows;
* ``energy`` -- :class:`~rxaudio.vad.energy.EnergyScorer`, level over an adaptive noise floor.

:class:`~rxaudio.vad.silero.BatchedSileroScorer` scores many streams in one call. The streaming
decision logic lives in :mod:`rxaudio.vad.hysteresis` and :mod:`rxaudio.vad.utterance`;
evaluation in :mod:`rxaudio.vad.metrics`. Heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import Scorer, ScorerFactory

if TYPE_CHECKING:
    from .silero import BatchedSileroScorer

BACKENDS = ("silero", "silero-torch", "webrtc", "energy")

__all__ = [
    "BACKENDS",
    "BatchedSileroScorer",
    "Scorer",
    "ScorerFactory",
    "backend_factory",
]


def backend_factory(
    backend: str, *, rate: int | None = None, mode: int = 3, frame_ms: int = 30
) -> tuple[int | None, ScorerFactory]:
    """Validate a backend's options; return ``(model_rate, factory)``.

    ``model_rate`` is the rate the backend scores at (``None``: the stream's own rate, for
    ``energy`` without ``rate``). The factory builds a fresh scorer for a stream at that rate.
    Raises :class:`ConfigError` for an unknown backend, mode, frame length or rate.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"vad: unknown backend {backend!r}; use one of {', '.join(BACKENDS)} "
            "or pass a scorer factory"
        )
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise ConfigError(f"vad: rate must be a positive int (Hz) or None, got {rate!r}")
    if backend in ("silero", "silero-torch"):
        from .silero import window_sizes

        model_rate = 16000 if rate is None else rate
        window_sizes(model_rate)  # validates: 8000 or 16000
        if backend == "silero":
            from .silero import SileroOnnx

            return model_rate, lambda r: SileroOnnx(r)
        from .silero import SileroTorch, check_torch_backend

        check_torch_backend()  # one line naming the extra, at configuration time
        return model_rate, lambda r: SileroTorch(r)
    if backend == "webrtc":
        from .webrtc import WebRtcScorer, check_webrtc

        model_rate = 16000 if rate is None else rate
        check_webrtc(model_rate, mode, frame_ms)
        return model_rate, lambda r: WebRtcScorer(r, mode=mode, frame_ms=frame_ms)
    from .energy import EnergyScorer

    EnergyScorer(16000, frame_ms=frame_ms)  # validates frame_ms
    return rate, lambda r: EnergyScorer(r, frame_ms=frame_ms)


def __getattr__(name: str) -> Any:
    if name == "BatchedSileroScorer":
        from .silero import BatchedSileroScorer

        return BatchedSileroScorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
