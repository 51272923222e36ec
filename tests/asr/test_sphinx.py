"""The real PocketSphinx backend on the bundled sample (its model ships in the wheel).

The bounds are loose on purpose and documented in docs/benchmarks.md ("Transcription"): the
sample is synthetic espeak-ng speech, on which PocketSphinx's US-English model is weak. What
must hold is that the known words come out, in their order, and the error rate stays near the
measured one.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from reactivex import from_iterable

from rxaudio.asr.metrics import corpus_wer, normalize
from rxaudio.frames import Transcript, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, transcribe, vad
from rxaudio.sources import from_file
from rxaudio.testing import collect

pytest.importorskip("pocketsphinx")
pytestmark = pytest.mark.slow

# measured 2026-12-03 (docs/benchmarks.md): 0.53 on the true segments, 0.81 through the chain
WER_TRUE_SEGMENTS = 0.65
WER_CHAIN = 0.92


def _lcs(a: list[str], b: list[str]) -> list[str]:
    """The longest common subsequence of two word lists (the words recognised in order)."""
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            t[i][j] = t[i + 1][j + 1] + 1 if a[i] == b[j] else max(t[i + 1][j], t[i][j + 1])
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif t[i + 1][j] >= t[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _true_utterances(speech: np.ndarray, truth: list[dict[str, Any]]) -> list[Utterance]:
    out = []
    for i, s in enumerate(truth):
        a, b = int((s["start"] - 0.2) * 16000), int((s["end"] + 0.2) * 16000)
        x = speech[a:b].reshape(-1, 1)
        out.append(Utterance(x, 16000, int(s["start"] * 16000), int(s["end"] * 16000), a, b,
                             "silence", i))  # fmt: skip
    return out


def test_true_segments_known_words_in_order(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    ts = collect(from_iterable(_true_utterances(speech, speech_truth)).pipe(transcribe()), 120)
    assert [t.utterance for t in ts] == [0, 1, 2] and all(t.status == "ok" for t in ts)
    ref = [str(s["text"]) for s in speech_truth]
    wer = corpus_wer(ref, [t.text for t in ts]).wer
    assert wer <= WER_TRUE_SEGMENTS, [t.text for t in ts]
    got = _lcs(normalize(" ".join(ref)), normalize(" ".join(t.text for t in ts)))
    assert len(got) >= 14 and got[:5] == ["hello", "this", "is", "a", "test"]
    for t in ts:  # word times inside the utterance's audio, in order, confidences in [0, 1]
        starts = [w.start for w in t.words]
        assert starts == sorted(starts)
        assert all(w.start < w.end for w in t.words)
        assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in t.words)
        assert t.confidence is not None and 0 <= t.confidence <= 1
        assert t.backend == "pocketsphinx" and t.cpu_s > 0


def test_the_segment_chain_end_to_end(speech_path: str, speech_truth: list[dict[str, Any]]) -> None:
    chain = (vad(), hysteresis(), buffer_utterance(), transcribe(overflow="wait"))
    ts = collect(from_file(speech_path, block_size=512).pipe(*chain), 120)
    assert all(isinstance(t, Transcript) for t in ts) and len(ts) >= 3
    ref = " ".join(str(s["text"]) for s in speech_truth)
    hyp = " ".join(t.text for t in ts)
    assert corpus_wer([ref], [hyp]).wer <= WER_CHAIN, hyp
    got = _lcs(normalize(ref), normalize(hyp))
    assert {"hello", "test", "pipeline", "fox"} <= set(got)
    assert got.index("hello") < got.index("pipeline") < got.index("fox")


def test_a_48k_stereo_utterance_is_converted(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    """The first sentence at 48 kHz in two channels, converted to 16 kHz mono by the element,
    gives the text it gives at 16 kHz; word times come back at 48 kHz."""
    import soxr

    (u,) = _true_utterances(speech, speech_truth[:1])
    x = np.asarray(soxr.resample(u.samples, 16000, 48000), dtype=np.float32)
    x = np.repeat(x, 2, axis=1)
    u48 = Utterance(x, 48000, u.start * 3, u.end * 3, u.audio_start * 3, u.audio_end * 3,
                    "silence", 0)  # fmt: skip
    (t16,) = collect(from_iterable([u]).pipe(transcribe()), 60)
    (t,) = collect(from_iterable([u48]).pipe(transcribe()), 60)
    assert t.sample_rate == 48000 and t.words and t.words[0].start >= u48.audio_start
    assert t.words[-1].end <= u48.audio_end + 48000 // 100
    assert corpus_wer([t16.text], [t.text]).wer <= 0.2, (t16.text, t.text)


def test_keyphrase_spots_command_words(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    utts = _true_utterances(speech, speech_truth)
    ts = collect(from_iterable(utts).pipe(transcribe(keyphrase="test, real time, lazy dog")), 60)
    assert "test" in ts[0].text.split()
    every = {w.word for t in ts for w in t.words}
    assert every <= {"test", "real time", "lazy dog"}


def test_custom_dictionary_and_language_model(tmp_path: Any) -> None:
    """A tiny grammar as an ARPA model plus a two-word dictionary: only its words come out."""
    import pocketsphinx

    src = f"{pocketsphinx.get_model_path()}/en-us/cmudict-en-us.dict"
    keep = {"hello": None, "pipeline": None}
    with open(src, encoding="utf-8") as f:
        lines = [ln for ln in f if ln.split(maxsplit=1)[0] in keep]
    d = tmp_path / "tiny.dict"
    d.write_text("".join(lines))
    lm = tmp_path / "tiny.lm"
    lm.write_text(
        "\\data\\\nngram 1=4\n\n\\1-grams:\n-0.6 </s>\n-99 <s>\n-0.6 hello\n-0.6 pipeline\n\n"
        "\\end\\\n"
    )
    t = np.arange(16000) / 16000
    x = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32).reshape(-1, 1)
    u = Utterance(x, 16000, 0, 16000, 0, 16000, "silence", 0)
    (tr,) = collect(from_iterable([u]).pipe(transcribe(lm=str(lm), dictionary=str(d))), 60)
    assert set(tr.text.split()) <= {"hello", "pipeline"}


def test_decoding_runs_in_a_child_process_and_leaves_this_one_free(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    """PocketSphinx keeps the GIL while it decodes; run inline it would freeze every other
    thread (about a second per sentence). In its own process this thread keeps running."""
    import threading

    from rxaudio.asr.runner import PooledRunner, start
    from rxaudio.asr.sphinx import PocketSphinx

    runner = start(PocketSphinx, {})
    try:
        assert isinstance(runner, PooledRunner) and runner.pid not in (None, os.getpid())
        x = speech[int(speech_truth[0]["start"] * 16000) : int(speech_truth[0]["end"] * 16000)]
        done = threading.Event()
        out: list[Any] = []

        def work() -> None:
            for _ in range(3):
                out.append(runner.recognize(x))
            done.set()

        threading.Thread(target=work, daemon=True).start()
        spins = 0
        while not done.wait(0.001):
            spins += 1  # the GIL was free: this thread ran while the child decoded
        assert spins >= 20
        (rec, cpu), *_ = out
        assert "pipeline" in rec.text and cpu > 0
    finally:
        runner.close()


def test_process_and_thread_give_the_same_text(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    utts = _true_utterances(speech, speech_truth)
    a = collect(from_iterable(utts).pipe(transcribe(isolation="process")), 120)
    b = collect(from_iterable(utts).pipe(transcribe(isolation="thread")), 120)
    assert [t.to_dict()["words"] for t in a] == [t.to_dict()["words"] for t in b]


def test_a_recogniser_that_cannot_start_is_a_stream_error() -> None:
    from rxaudio.asr.runner import ProcessRunner
    from rxaudio.asr.sphinx import PocketSphinx
    from rxaudio.errors import StreamError

    with pytest.raises(StreamError, match="failed to start: ConfigError: transcribe: lm"):
        ProcessRunner(PocketSphinx, {"lm": "/nonexistent/model.lm"})


def test_a_warm_recogniser_process_is_reused_and_decodes_as_a_fresh_one(
    speech: np.ndarray, speech_truth: list[dict[str, Any]]
) -> None:
    """A pipeline built per entry (rxaudio worker) or per session takes a warm process from
    the pool; reset to its first state, it gives the text a new process gives."""
    from rxaudio.asr.runner import close_idle, start
    from rxaudio.asr.sphinx import PocketSphinx

    close_idle()
    utts = _true_utterances(speech, speech_truth)
    x = [u.samples[:, 0] for u in utts[:3]]
    first = start(PocketSphinx, {})
    pid = first.pid
    fresh = [first.recognize(s)[0] for s in x]
    first.recognize(x[2])  # more audio: the cepstral mean moves on
    first.close()  # idle: back to the pool
    again = start(PocketSphinx, {})
    try:
        assert again.pid == pid  # the same process, warm
        assert [again.recognize(s)[0] for s in x] == fresh
    finally:
        again.close()
        close_idle()
