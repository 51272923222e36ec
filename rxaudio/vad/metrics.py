"""How well detected speech matches the truth (no Rx): frame scores at 10 ms and boundaries.

All inputs are segments ``(start, end)`` in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FRAME_S = 0.01

Seg = tuple[float, float]


def rasterize(segs: Sequence[Seg], n: int, step: float = FRAME_S) -> NDArray[np.bool_]:
    """Boolean speech mask of ``n`` frames of ``step`` seconds (frame i covers its centre)."""
    mask = np.zeros(n, dtype=bool)
    for s, e in segs:
        a = max(0, int(np.ceil(s / step - 0.5)))
        b = min(n, int(np.ceil(e / step - 0.5)))
        if b > a:
            mask[a:b] = True
    return mask


@dataclass(frozen=True, slots=True)
class Scores:
    """Frame-level and boundary scores of a hypothesis against a reference."""

    precision: float
    recall: float
    f1: float
    missed_s: float
    false_alarm_s: float
    false_alarms_per_min: float
    onset_error_s: float
    offset_error_s: float
    late_starts_pct: float | None
    duration_s: float
    ref_segments: int
    hyp_segments: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        return asdict(self)


def _overlap(a: Seg, b: Seg) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def evaluate(
    ref: Sequence[Seg],
    hyp: Sequence[Seg],
    *,
    duration: float | None = None,
    hyp_audio: Sequence[Seg] | None = None,
) -> Scores:
    """Score ``hyp`` against ``ref``.

    Parameters
    ----------
    ref, hyp
        Speech segments in seconds.
    duration
        Length of the audio (default: the latest segment end).
    hyp_audio
        For each hypothesis segment, the span its audio (WAV) holds, with pre/post-roll; used
        for ``late_starts_pct``: the share of detected reference segments whose first overlapping
        utterance's audio starts after the true onset (a clipped first syllable).

    Notes
    -----
    Frame scores use 10 ms frames. A false alarm is a hypothesis segment overlapping no
    reference segment (``false_alarms_per_min`` counts them per minute of audio). Onset/offset
    errors are mean absolute differences between each reference segment's onset and the onset
    of the first hypothesis segment overlapping it, and between its offset and the offset of
    the last one overlapping it (so a sentence detected in two pieces is scored by where its
    speech was found to start and end; reference segments with no overlap are skipped).
    """
    total = duration if duration is not None else max([e for _, e in (*ref, *hyp)], default=0.0)
    n = int(np.ceil(total / FRAME_S))
    r, h = rasterize(ref, n), rasterize(hyp, n)
    tp = int(np.sum(r & h))
    fp = int(np.sum(~r & h))
    fn = int(np.sum(r & ~h))
    precision = tp / (tp + fp) if tp + fp else (1.0 if not r.any() else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fa_segments = sum(1 for s in hyp if not any(_overlap(s, t) > 0 for t in ref))
    onsets, offsets, late, matched = [], [], 0, 0
    for t in ref:
        over = [i for i in range(len(hyp)) if _overlap(t, hyp[i]) > 0]
        if not over:
            continue
        matched += 1
        first = min(over, key=lambda i: (hyp[i][0], i))
        last = max(over, key=lambda i: (hyp[i][1], i))
        onsets.append(abs(hyp[first][0] - t[0]))
        offsets.append(abs(hyp[last][1] - t[1]))
        # the first utterance overlapping the true segment must hold its onset
        if hyp_audio is not None and hyp_audio[first][0] > t[0] + 1e-9:
            late += 1
    minutes = total / 60.0
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        missed_s=fn * FRAME_S,
        false_alarm_s=fp * FRAME_S,
        false_alarms_per_min=fa_segments / minutes if minutes else 0.0,
        onset_error_s=float(np.mean(onsets)) if onsets else float("nan"),
        offset_error_s=float(np.mean(offsets)) if offsets else float("nan"),
        late_starts_pct=(100.0 * late / matched if matched else 0.0)
        if hyp_audio is not None
        else None,
        duration_s=total,
        ref_segments=len(ref),
        hyp_segments=len(hyp),
    )
