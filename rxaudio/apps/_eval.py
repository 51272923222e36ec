"""``rxaudio eval REF HYP``: score detected speech against reference labels.

REF and HYP are label files (RTTM, JSONL, Audacity ``.txt``, or the bundled sample's ``.json``)
or folders of them, matched by file stem. Prints frame-level precision/recall/F1 at 10 ms,
missed and false-alarm seconds, false alarms per minute, mean onset/offset error and, when the
hypothesis is ``rxaudio segment`` JSONL (with ``audio_start``), the share of true segments whose
utterance WAV starts after the true onset.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from ..errors import SourceError

HELP = "score VAD segments against reference labels (F1 at 10 ms, misses, false alarms, onsets)"

LABEL_EXTS = (".rttm", ".jsonl", ".txt", ".json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio eval``."""
    p.add_argument("ref", metavar="REF", help="reference labels: a file or a folder of them")
    p.add_argument("hyp", metavar="HYP", help="detected labels: a file or a folder of them")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="audio length in s (default: the reference .json's duration, else the last label end)",
    )
    p.add_argument("--json", action="store_true", help="print the scores as JSON")


def _pairs(ref: str, hyp: str) -> list[tuple[str, str, str]]:
    for p in (ref, hyp):
        if not os.path.exists(p):
            from ..io.paths import missing

            raise SourceError(missing(p, "file or folder"))
    if os.path.isfile(ref) and os.path.isfile(hyp):
        return [(os.path.splitext(os.path.basename(hyp))[0], ref, hyp)]
    if os.path.isdir(ref) != os.path.isdir(hyp):
        raise SourceError("REF and HYP must both be files or both be folders")

    def index(d: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in sorted(os.listdir(d)):
            stem, ext = os.path.splitext(f)
            if ext.lower() in LABEL_EXTS:
                out.setdefault(stem, os.path.join(d, f))  # first by name: .json < .jsonl
        return out

    r, h = index(ref), index(hyp)
    common = sorted(set(r) & set(h))
    if not common:
        raise SourceError(f"no label files with the same stem in {ref} and {hyp}")
    return [(s, r[s], h[s]) for s in common]


def score_pair(ref: str, hyp: str, duration: float | None) -> dict[str, Any]:
    """Scores of one reference/hypothesis pair as a dict."""
    from ..io.labels import label_duration, read_labels
    from ..vad.metrics import evaluate

    if duration is None:  # the reference's own audio length, when it states one (.json)
        duration = label_duration(ref)
    rs = read_labels(ref)
    hs = read_labels(hyp)
    audio = None
    if hs and all("audio_start" in h for h in hs):
        audio = [(float(h["audio_start"]), float(h["audio_end"])) for h in hs if "audio_end" in h]
        if len(audio) != len(hs):
            audio = None
    sc = evaluate(
        [(r["start"], r["end"]) for r in rs],
        [(h["start"], h["end"]) for h in hs],
        duration=duration,
        hyp_audio=audio,
    )
    return sc.to_dict()


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    """Print one row of scores per matched pair (and their total when several)."""
    rows = [(stem, score_pair(r, h, args.duration)) for stem, r, h in _pairs(args.ref, args.hyp)]
    if len(rows) > 1:
        from ..io.labels import label_duration, read_labels
        from ..vad.metrics import evaluate

        # pool all files on one time line, each offset by the previous durations
        ref_all: list[tuple[float, float]] = []
        hyp_all: list[tuple[float, float]] = []
        offset = 0.0
        for _stem, r, h in _pairs(args.ref, args.hyp):
            rs, hs = read_labels(r), read_labels(h)
            ref_all += [(offset + x["start"], offset + x["end"]) for x in rs]
            hyp_all += [(offset + x["start"], offset + x["end"]) for x in hs]
            known = args.duration if args.duration is not None else label_duration(r)
            ends = [offset, *(e for _, e in ref_all), *(e for _, e in hyp_all)]
            if known is not None:  # the audio's own length: no padding between files
                offset = max([offset + known, *ends])
            else:
                offset = max(ends) + 1.0
        rows.append(("ALL", evaluate(ref_all, hyp_all, duration=offset).to_dict()))
    if args.json:
        print(json.dumps({stem: sc for stem, sc in rows}, indent=2, allow_nan=True))
        return 0
    cols = [
        ("f1", "F1"),
        ("precision", "prec"),
        ("recall", "recall"),
        ("missed_s", "miss s"),
        ("false_alarm_s", "FA s"),
        ("false_alarms_per_min", "FA/min"),
        ("onset_error_s", "onset s"),
        ("offset_error_s", "offset s"),
        ("late_starts_pct", "late %"),
    ]
    width = max(4, *(len(s) for s, _ in rows))
    print(f"{'file':<{width}}  " + "  ".join(f"{h:>8}" for _, h in cols))
    for stem, sc in rows:
        print(f"{stem:<{width}}  " + "  ".join(f"{_fmt(sc[k]):>8}" for k, _ in cols))
    return 0
