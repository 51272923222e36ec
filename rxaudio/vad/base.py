"""The scorer interface every VAD backend implements (no Rx, plain numpy).

A scorer turns fixed-size mono windows at its own ``sample_rate`` into speech probabilities in
[0, 1], carrying whatever state the algorithm needs from one window to the next. ``reset()``
forgets that state (a new stream).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]


class Scorer(Protocol):
    """A stateful speech scorer over consecutive windows of one stream.

    Attributes
    ----------
    sample_rate
        Rate (Hz) of the audio it scores.
    window_size
        Samples per window.
    """

    sample_rate: int
    window_size: int

    def reset(self) -> None:
        """Forget the stream state (start of a new stream)."""
        ...

    def score(self, window: F32) -> float:
        """Probability of speech in one window of shape ``(window_size,)``."""
        ...

    def score_many(self, windows: F32) -> F32:
        """Probabilities of ``k`` consecutive windows, shape ``(k, window_size)`` -> ``(k,)``.

        Equal to calling :meth:`score` on each row in order (backends may do it faster).
        """
        ...


ScorerFactory = Callable[[int], Scorer]
"""Builds a scorer for a stream whose audio arrives at the given rate (Hz)."""


def check_window(name: str, window: F32, size: int) -> F32:
    """Validate one window: 1-D float32 of ``size`` finite samples."""
    w = np.asarray(window, dtype=np.float32)
    if w.ndim != 1 or w.shape[0] != size:
        raise ValueError(f"{name}: a window must be 1-D with {size} samples, got shape {w.shape}")
    return w


def score_each(scorer: Scorer, windows: F32) -> F32:
    """Default ``score_many``: one :meth:`Scorer.score` call per row."""
    out = np.empty(windows.shape[0], dtype=np.float32)
    for i in range(windows.shape[0]):
        out[i] = scorer.score(windows[i])
    return out
