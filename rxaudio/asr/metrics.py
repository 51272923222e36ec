"""Word error rate, with the text normalisation it is measured under (no Rx, no jiwer needed).

``normalize`` lower-cases, turns hyphens and slashes into spaces, drops other punctuation and
squeezes blanks, so "Real-time, audio." and "real time audio" are the same three words. WER is
the word-level Levenshtein distance (substitutions + deletions + insertions) over the
reference's word count, summed over a corpus (errors of all pairs over words of all
references), as jiwer computes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SPLIT = re.compile(r"[-/]+")
_DROP = re.compile(r"[^\w\s']+")


def normalize(text: str) -> list[str]:
    """The words of ``text`` as WER counts them (lower case, no punctuation)."""
    t = _DROP.sub(" ", _SPLIT.sub(" ", text.lower()))
    return [w.strip("'") for w in t.split() if w.strip("'")]


@dataclass(frozen=True, slots=True)
class WerCounts:
    """Edit counts of a hypothesis against a reference."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word (``inf`` for an empty reference with insertions)."""
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_words

    def __add__(self, other: WerCounts) -> WerCounts:
        return WerCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def wer_counts(reference: str, hypothesis: str) -> WerCounts:
    """Minimum-edit counts (ties broken towards substitutions, as jiwer does)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    n, m = len(ref), len(hyp)
    # cost[i][j]: (edits, subs, dels, ins) aligning ref[:i] with hyp[:j]
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            e, s, d, ins = prev[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                best = (e, s, d, ins)
            else:
                best = (e + 1, s + 1, d, ins)
            e, s, d, ins = prev[j]
            if e + 1 < best[0]:
                best = (e + 1, s, d + 1, ins)
            e, s, d, ins = cur[j - 1]
            if e + 1 < best[0]:
                best = (e + 1, s, d, ins + 1)
            cur.append(best)
        prev = cur
    _, s, d, ins = prev[m]
    return WerCounts(s, d, ins, n)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> WerCounts:
    """Counts summed over pairs (the corpus WER is ``.wer`` of the result)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = WerCounts(0, 0, 0, 0)
    for r, h in zip(references, hypotheses, strict=True):
        total = total + wer_counts(r, h)
    return total
