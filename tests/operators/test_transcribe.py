"""transcribe with a fake recogniser: order, the bounded queue, rates, bad input, threading."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray
from reactivex import from_iterable, throw
from reactivex import operators as ops
from reactivex.scheduler import ImmediateScheduler
from reactivex.testing import TestScheduler

from rxaudio.asr import Recognition, WordTiming
from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import Transcript, Utterance
from rxaudio.operators import transcribe
from rxaudio.pipeline import registry
from rxaudio.pipeline.launch import parse_chain
from rxaudio.sinks import to_record
from rxaudio.testing import collect, run_marbles


class Fake:
    """Says how many samples it got (at 8 kHz), one word spanning them all."""

    name: ClassVar[str] = "fake"
    sample_rate: ClassVar[int] = 8000
    made: ClassVar[int] = 0
    seen: ClassVar[list[NDArray[np.float32]]] = []

    @classmethod
    def check(cls, **options: Any) -> None:
        if options:
            raise ConfigError(f"fake takes no options, got {sorted(options)}")

    def __init__(self) -> None:
        type(self).made += 1

    def recognize(self, samples: NDArray[np.float32]) -> Recognition:
        type(self).seen.append(samples)
        n = len(samples)
        return Recognition(f"n{n}", (WordTiming(f"n{n}", 0.0, n / 8000, 0.5),), 0.5)


class Gated(Fake):
    """Blocks in recognize until the gate opens (a slow recogniser, without a clock)."""

    gate: ClassVar[threading.Event]
    entered: ClassVar[threading.Event]

    def recognize(self, samples: NDArray[np.float32]) -> Recognition:
        type(self).entered.set()
        assert type(self).gate.wait(30)
        return super().recognize(samples)


class Broken(Fake):
    def recognize(self, samples: NDArray[np.float32]) -> Recognition:
        raise RuntimeError("model exploded")


@pytest.fixture(autouse=True)
def _reset() -> None:
    Fake.made = 0
    Fake.seen = []


def utt(i: int, n: int = 800, rate: int = 8000, channels: int = 1, value: float = 0.1) -> Utterance:
    x = np.full((n, channels), value, dtype=np.float32)
    start = 10_000 * i
    return Utterance(x, rate, start + 100, start + n - 100, start, start + n, "silence", i)


INLINE = ImmediateScheduler()


def test_marbles_one_transcript_per_utterance_in_order() -> None:
    u = {"a": utt(0, 800), "b": utt(1, 1600)}
    out = run_marbles("-a--b--|", u, transcribe(Fake, scheduler=INLINE))
    assert out.marbles() == "-x--x--|"
    ts = out.values
    assert all(isinstance(t, Transcript) for t in ts)
    assert [(t.utterance, t.text, t.status, t.backend) for t in ts] == [
        (0, "n800", "ok", "fake"),
        (1, "n1600", "ok", "fake"),
    ]
    assert ts[1].start == u["b"].start and ts[1].end == u["b"].end
    w = ts[1].words[0]
    assert (w.start, w.end) == (u["b"].audio_start, u["b"].audio_end)  # word times in the stream
    assert ts[0].processing_s >= 0 and ts[0].cpu_s >= 0


def test_virtual_time_worker_runs_after_the_source() -> None:
    sched = TestScheduler()
    out = run_marbles("-a-b-|", {"a": utt(0), "b": utt(1)}, transcribe(Fake, scheduler=sched),
                      scheduler=sched)  # fmt: skip
    assert [t.utterance for t in out.values] == [0, 1]
    assert out.completed and out.events[-1].tick == 5


def test_full_queue_skips_counts_and_reports_in_order(caplog: pytest.LogCaptureFixture) -> None:
    worker = TestScheduler()  # holds the work until it is started: a recogniser that is busy
    got: list[Any] = []
    done = threading.Event()
    with caplog.at_level(logging.WARNING, logger="rxaudio.transcribe"):
        from_iterable([utt(i) for i in range(5)]).pipe(
            transcribe(Fake, queue=2, scheduler=worker)
        ).subscribe(got.append, on_completed=done.set)
        assert got == [] and not done.is_set()  # the source is through, nothing recognised yet
        worker.start()
    assert done.is_set()
    assert [(t.utterance, t.status) for t in got] == [
        (0, "ok"),
        (1, "ok"),
        (2, "skipped"),
        (3, "skipped"),
        (4, "skipped"),
    ]
    assert got[2].text == "" and got[2].to_dict()["status"] == "skipped"
    assert "3 skipped so far" in caplog.text and "utterance 4 skipped" in caplog.text


def test_a_slow_recogniser_never_stalls_the_source_thread() -> None:
    Gated.gate, Gated.entered = threading.Event(), threading.Event()
    got: list[Any] = []
    done = threading.Event()
    sub = (
        from_iterable([utt(i) for i in range(6)])
        .pipe(transcribe(Gated, queue=2))
        .subscribe(got.append, on_completed=done.set)
    )
    # the source delivered all six while the recogniser is blocked in the first one
    assert Gated.entered.wait(30) and not done.is_set()
    Gated.gate.set()
    assert done.wait(30)
    sub.dispose()
    assert [t.status for t in got] == ["ok", "ok"] + ["skipped"] * 4
    assert threading.current_thread() is threading.main_thread()


def test_overflow_wait_transcribes_everything_on_a_thread() -> None:
    out = collect(from_iterable([utt(i) for i in range(6)]).pipe(
        transcribe(Fake, queue=1, overflow="wait")))  # fmt: skip
    assert [(t.utterance, t.status) for t in out] == [(i, "ok") for i in range(6)]


def test_recognition_runs_off_the_calling_thread() -> None:
    threads: list[str] = []

    class Where(Fake):
        def recognize(self, samples: NDArray[np.float32]) -> Recognition:
            threads.append(threading.current_thread().name)
            return super().recognize(samples)

    collect(from_iterable([utt(0)]).pipe(transcribe(Where)))
    assert threads and threads[0] != threading.current_thread().name


def test_wrong_rate_and_channels_are_converted() -> None:
    u = utt(0, n=4800, rate=48000, channels=2)
    (t,) = collect(from_iterable([u]).pipe(transcribe(Fake, scheduler=INLINE)))
    assert t.text == "n800"  # 4800 samples at 48 kHz -> 800 at the recogniser's 8 kHz
    assert Fake.seen[0].ndim == 1 and Fake.seen[0].dtype == np.float32
    assert np.allclose(Fake.seen[0][100:-100], 0.1, atol=1e-3)  # the mean of two equal channels
    assert t.sample_rate == 48000 and t.words[0].end == u.audio_end  # times at the source rate


def test_transcript_does_not_depend_on_the_utterance_rate_path() -> None:
    """The same audio at 16 kHz and at 8 kHz gives the recogniser the same samples (resampled
    whole, not per chunk), within soxr's filter tolerance."""
    import soxr

    t = np.arange(8000) / 8000
    x8 = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (300, 1200, 2500))
    x8 = np.asarray(x8, dtype=np.float32).reshape(-1, 1)

    x16 = soxr.resample(x8, 8000, 16000).astype(np.float32).reshape(-1, 1)
    u8 = Utterance(x8, 8000, 0, 8000, 0, 8000, "silence", 0)
    u16 = Utterance(x16, 16000, 0, 16000, 0, 16000, "silence", 0)
    collect(from_iterable([u8, u16]).pipe(transcribe(Fake, scheduler=INLINE)))
    a, b = Fake.seen
    assert len(a) == len(b)
    assert np.corrcoef(a[200:-200], b[200:-200])[0, 1] > 0.99


def test_empty_utterance_gives_an_empty_transcript_without_recognition() -> None:
    empty = Utterance(np.zeros((0, 1), np.float32), 8000, 0, 0, 0, 0, "silence", 0)
    (t,) = collect(from_iterable([empty]).pipe(transcribe(Fake, scheduler=INLINE)))
    assert (t.status, t.text, t.words) == ("empty", "", ())
    assert Fake.made == 0 and Fake.seen == []


def test_nan_is_refused_naming_the_utterance_after_earlier_transcripts() -> None:
    bad = utt(1, value=float("nan"))
    got: list[Any] = []
    errs: list[Exception] = []
    from_iterable([utt(0), bad, utt(2)]).pipe(transcribe(Fake, scheduler=INLINE)).subscribe(
        got.append, errs.append
    )
    assert [t.utterance for t in got] == [0]
    (e,) = errs
    assert isinstance(e, StreamError) and e.sample_index == bad.start
    assert "utterance 1" in str(e) and "NaN" in str(e) and "nan_to_num" in str(e)


def test_nan_is_refused_on_the_worker_thread_too() -> None:
    with pytest.raises(StreamError, match="utterance 1"):
        collect(from_iterable([utt(0), utt(1, value=float("inf"))]).pipe(transcribe(Fake)))


def test_upstream_error_follows_the_pending_transcripts() -> None:
    worker = TestScheduler()
    got: list[Any] = []
    errs: list[Exception] = []
    boom = RuntimeError("source failed")
    src = from_iterable([utt(0), utt(1)]).pipe(ops.concat(throw(boom)))
    src.pipe(transcribe(Fake, scheduler=worker)).subscribe(got.append, errs.append)
    worker.start()
    assert [t.utterance for t in got] == [0, 1] and errs == [boom]


def test_a_failing_recogniser_is_a_stream_error() -> None:
    errs: list[Exception] = []
    from_iterable([utt(0)]).pipe(transcribe(Broken, scheduler=INLINE)).subscribe(
        on_error=errs.append
    )
    (e,) = errs
    assert isinstance(e, StreamError) and "model exploded" in str(e) and e.operator == "transcribe"


def test_passthrough_keeps_every_item() -> None:
    items = ["x", utt(0), "y"]
    out = collect(from_iterable(items).pipe(transcribe(Fake, passthrough=True, scheduler=INLINE)))
    assert out[0] == "x" and isinstance(out[1], Utterance) and isinstance(out[2], Transcript)
    assert out[3] == "y"


def test_other_items_are_dropped_without_passthrough() -> None:
    out = collect(from_iterable(["x", utt(0)]).pipe(transcribe(Fake, scheduler=INLINE)))
    assert [type(t) for t in out] == [Transcript]


def test_resubscribe_builds_a_fresh_recogniser() -> None:
    op = transcribe(Fake, scheduler=INLINE)
    src = from_iterable([utt(0), utt(1)])
    a = collect(src.pipe(op))
    b = collect(src.pipe(op))
    assert [t.text for t in a] == [t.text for t in b] and Fake.made == 2


def test_dispose_mid_stream_stops_recognition() -> None:
    worker = TestScheduler()
    got: list[Any] = []
    sub = (
        from_iterable([utt(0), utt(1)])
        .pipe(transcribe(Fake, scheduler=worker))
        .subscribe(got.append)
    )
    sub.dispose()
    worker.start()
    assert got == [] and Fake.seen == []


def test_dict_form_is_json_and_the_encoder_carries_it() -> None:
    (t,) = collect(from_iterable([utt(0)]).pipe(transcribe(Fake, scheduler=INLINE)))
    d = t.to_dict()
    assert d["type"] == "transcript" and d["utterance"] == 0 and d["text"] == "n800"
    assert d["words"][0] == {"word": "n800", "start": 0.0, "end": 0.1, "confidence": 0.5}
    assert to_record(t) == d
    json.dumps(d, allow_nan=False)
    nan = Transcript(0, 0, 1, 8000, "x", confidence=float("nan"))
    assert nan.to_dict()["confidence"] is None


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"backend": "whisper-xl"}, "unknown backend 'whisper-xl'; use one of pocketsphinx"),
        ({"dictionary": "/nonexistent/words.dict"}, "dictionary '/nonexistent/words.dict' is not"),
        ({"lm": "/nonexistent/x.lm"}, "lm '/nonexistent/x.lm' is not a file"),
        ({"keyphrase": "turn on, flibbertigibbetzz"}, "flibbertigibbetzz not in the dictionary"),
        ({"keyphrase": " , "}, "keyphrase is empty"),
        ({"queue": 0}, "queue must be an int in"),
        ({"overflow": "drop"}, "overflow must be one of 'skip', 'wait'"),
        ({"kws_threshold": 0.0}, "kws_threshold must be"),
    ],
)
def test_bad_options_are_config_errors(kw: dict[str, Any], match: str) -> None:
    pytest.importorskip("pocketsphinx")
    with pytest.raises(ConfigError, match=match.replace("(", r"\(")):
        transcribe(**kw)


def test_lm_and_keyphrase_together_is_refused(tmp_path: Any) -> None:
    pytest.importorskip("pocketsphinx")
    lm = tmp_path / "x.lm"
    lm.write_text("\\data\\\n")
    with pytest.raises(ConfigError, match="lm or keyphrase, not both"):
        transcribe(lm=str(lm), keyphrase="stop")


def test_registered_and_built_from_a_launch_string(from_text: Any) -> None:
    info = registry.get("transcribe")
    assert info.kind == "operator"
    assert {p.name for p in info.props} >= {"lm", "dictionary", "keyphrase", "queue", "overflow"}
    pytest.importorskip("pocketsphinx")
    (el,) = parse_chain("transcribe queue=2 overflow=wait keyphrase=stop")
    assert el.name == "transcribe" and el.options["queue"] == 2
    op = from_text("transcribe", {"queue": "2", "overflow": "wait"})
    assert op.produces.frame is Transcript


def test_a_backend_from_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import rxaudio.asr as asr

    ep = importlib.metadata.EntryPoint("fake", f"{__name__}:Fake", asr.ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**kw: Any) -> Any:
        if kw.get("group") == asr.ENTRY_POINT_GROUP:
            return [ep]
        return real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "fake" in asr.backend_names()
    (t,) = collect(from_iterable([utt(0)]).pipe(transcribe("fake", scheduler=INLINE)))
    assert t.backend == "fake" and t.text == "n800"
