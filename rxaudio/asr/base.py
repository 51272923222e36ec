"""The recogniser interface: plain numpy audio in, text (and word times) out; no Rx.

A backend is one class. It declares the rate it listens at, checks its options at once
(:meth:`Recognizer.check`, called when the ``transcribe`` element is built), loads its model in
``__init__`` (called on the recognition thread, once per stream) and turns one utterance into a
:class:`Recognition`::

    class MyRecognizer:
        name = "mine"
        sample_rate = 16000
        holds_gil = False  # True: its C code keeps the GIL while decoding (run in a process)

        @classmethod
        def check(cls, **options: Any) -> None: ...     # raise ConfigError for bad options
        def __init__(self, **options: Any) -> None: ...  # load the model
        def recognize(self, samples: NDArray[np.float32]) -> Recognition: ...

Register it under the entry-point group ``rxaudio.asr`` (``mine = "package.module:MyRecognizer"``)
and ``transcribe backend=mine`` finds it. Options, samples and results cross a process
boundary when ``holds_gil`` is true, so they must pickle (the class itself by reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from ..dsp.resample import resample_offline
from ..errors import FormatError


@dataclass(frozen=True, slots=True)
class WordTiming:
    """One word: ``[start, end)`` in seconds from the first sample given, confidence 0-1 or
    ``None``."""

    word: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Recognition:
    """What a recogniser heard in one utterance."""

    text: str
    words: tuple[WordTiming, ...] = ()
    confidence: float | None = None


class Recognizer(Protocol):
    """A speech recogniser backend (see the module docstring)."""

    name: ClassVar[str]
    sample_rate: ClassVar[int]

    @classmethod
    def check(cls, **options: Any) -> None:
        """Validate the options (ConfigError naming the bad one) without loading the model."""
        ...

    def recognize(self, samples: NDArray[np.float32]) -> Recognition:
        """Recognise one utterance: mono float32 samples in [-1, 1] at :attr:`sample_rate`."""
        ...

    # optional: ``reset(self) -> None`` forgets what earlier utterances taught it (adaptive
    # state); called when a warm recogniser process is lent to a new stream


def prepare(samples: NDArray[np.float32], rate: int, target_rate: int) -> NDArray[np.float32]:
    """An utterance's ``(n, channels)`` samples as the mono ``target_rate`` signal a recogniser
    takes: channels averaged, resampled whole with soxr (the ``resample`` operator's filter), so
    the result does not depend on how the stream was chunked. Raises :class:`FormatError` for
    NaN or infinite samples."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if not np.isfinite(x).all():
        raise FormatError("the audio holds NaN or inf samples; clean it (np.nan_to_num) first")
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    if rate != target_rate:
        mono = resample_offline(mono.reshape(-1, 1), rate, target_rate)[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32)
