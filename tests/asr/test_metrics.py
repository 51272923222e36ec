"""Word error rate: our own against jiwer's, and the normalisation it is measured under."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxaudio.asr.metrics import corpus_wer, normalize, wer_counts


def test_normalize_drops_case_and_punctuation_and_splits_hyphens() -> None:
    assert normalize("Real-time, AUDIO. Pre/post 'roll' don't") == [
        "real",
        "time",
        "audio",
        "pre",
        "post",
        "roll",
        "don't",
    ]


def test_counts_of_a_known_pair() -> None:
    c = wer_counts("the quick brown fox", "a quick fox jumps")
    assert (c.substitutions + c.deletions + c.insertions, c.reference_words) == (3, 4)
    assert c.wer == 0.75
    assert wer_counts("", "").wer == 0.0 and wer_counts("", "x").wer == float("inf")
    assert wer_counts("a b c", "").deletions == 3 and wer_counts("a", "a b c").insertions == 2


WORDS = st.lists(st.sampled_from(["a", "b", "c", "dog", "fox"]), max_size=8).map(" ".join)


@given(st.lists(st.tuples(WORDS.filter(bool), WORDS), min_size=1, max_size=4))
def test_equals_jiwer(pairs: list[tuple[str, str]]) -> None:
    jiwer = pytest.importorskip("jiwer")
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    ours = corpus_wer(refs, hyps)
    out = jiwer.process_words(refs, hyps)
    assert ours.errors == out.substitutions + out.deletions + out.insertions
    assert ours.wer == pytest.approx(jiwer.wer(refs, hyps))


def test_corpus_needs_pairs() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])
