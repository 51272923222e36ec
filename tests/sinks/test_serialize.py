"""One dict form per event: every output writes the same object (docs/events.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx
from hypothesis import given
from hypothesis import strategies as st
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxaudio.data import speech_sample
from rxaudio.frames import (
    AudioFrame,
    FeatureFrame,
    FileReceipt,
    LevelFrame,
    SettingsRejected,
    SpeechEnd,
    SpeechStart,
    Utterance,
    VadFrame,
)
from rxaudio.io.labels import read_labels
from rxaudio.operators import buffer_utterance, hysteresis, level, reframe, spectrogram, vad
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import ChainOptions, encode_item
from rxaudio.server.sessions import Outbox, Session, encode
from rxaudio.sinks import to_jsonl, to_labels, to_record, to_utterances
from rxaudio.sources import from_file
from rxaudio.testing import collect

EVENTS = ("level", "vad", "spectrogram")
SPEECH = (SpeechStart, SpeechEnd, Utterance)
SESSION_ONLY = {"seq", "id", "url", "file"}  # what the server adds (docs/events.md)


def _dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, allow_nan=False, separators=(",", ":"))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def items() -> list[Any]:
    """The bundled sample through vad -> hysteresis -> buffer_utterance (frames passed on)."""
    src = from_file(speech_sample(), block_size=1600)
    return collect(src.pipe(vad(), hysteresis(), buffer_utterance(passthrough=True)))


def test_the_sample_gives_every_speech_event(items: list[Any]) -> None:
    kinds = {type(i) for i in items}
    assert {VadFrame, SpeechStart, SpeechEnd, Utterance} <= kinds
    assert sum(isinstance(i, Utterance) for i in items) >= 3


def test_jsonl_sink_and_server_encode_the_same_object(tmp_path: Path, items: list[Any]) -> None:
    out = tmp_path / "events.jsonl"
    (receipt,) = collect(rx.from_iterable(items).pipe(to_jsonl(out)))
    lines = _lines(out)
    assert receipt.frames == len(lines) == len(items)
    for item, line in zip(items, lines, strict=True):
        d = item.to_dict()
        assert line == d == to_record(item) == encode_item(item, EVENTS)
        assert _dumps(line) == _dumps(d)  # same text too: the floats survive JSON exactly


def test_every_time_is_seconds_of_the_stream(items: list[Any]) -> None:
    for item in items:
        d = item.to_dict()
        r = item.sample_rate
        if isinstance(item, VadFrame):
            assert d == {
                "type": "vad",
                "t": round(item.start / r, 6),
                "end": round(item.end / r, 6),
                "p": round(float(item.probability), 4),
                "speech": bool(item.speech),
            }
        elif isinstance(item, SpeechStart):
            assert d == {"type": "speech_start", "t": round(item.start / r, 6)}
        elif isinstance(item, SpeechEnd):
            assert d == {
                "type": "speech_end",
                "start": round(item.start / r, 6),
                "end": round(item.end / r, 6),
                "t": round(item.end / r, 6),
                "duration": round((item.end - item.start) / r, 6),
                "reason": item.reason,
            }
        else:
            assert isinstance(item, Utterance)
            assert d == {
                "type": "utterance",
                "start": round(item.start / r, 6),
                "end": round(item.end / r, 6),
                "duration": round((item.end - item.start) / r, 6),
                "audio_start": round(item.audio_start / r, 6),
                "audio_end": round(item.audio_end / r, 6),
                "reason": item.reason,
            }
        # 6 decimals: the sample index comes back exactly
        for k, attr in (("start", "start"), ("end", "end"), ("audio_start", "audio_start")):
            if k in d:
                assert round(d[k] * r) == getattr(item, attr)


def test_label_files_write_the_same_object(tmp_path: Path, items: list[Any]) -> None:
    segments = [i for i in items if isinstance(i, Utterance | SpeechEnd)]
    for name in ("l.jsonl", "l.rttm", "l.txt"):
        collect(rx.from_iterable(items).pipe(to_labels(tmp_path / name)))
    assert _lines(tmp_path / "l.jsonl") == [i.to_dict() for i in segments]
    for name in ("l.rttm", "l.txt"):  # the same start/end, in the format's own precision
        got = read_labels(str(tmp_path / name))
        want = sorted(segments, key=lambda i: i.start)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g["start"] == pytest.approx(w.to_dict()["start"], abs=1e-3)
            assert g["end"] == pytest.approx(w.to_dict()["end"], abs=2e-3)


def test_wavdir_and_segment_labels_add_only_their_file(tmp_path: Path, items: list[Any]) -> None:
    from rxaudio.apps.cli import main

    utts = [i.to_dict() for i in items if isinstance(i, Utterance)]
    collect(rx.from_iterable(items).pipe(to_utterances(tmp_path / "wd")))
    recs = _lines(tmp_path / "wd" / "utt.jsonl")
    assert [r["wav"] for r in recs] == [f"utt-{n:04d}.wav" for n in range(1, len(utts) + 1)]
    assert [r["index"] for r in recs] == list(range(len(utts)))
    assert [{k: v for k, v in r.items() if k not in ("index", "wav")} for r in recs] == utts

    seg = tmp_path / "seg"
    assert main(["segment", speech_sample(), "--out", str(seg), "--no-progress"]) == 0
    recs = _lines(seg / "speech_16k.jsonl")
    assert [{k: v for k, v in r.items() if k not in ("index", "wav")} for r in recs] == utts


def _metrics() -> ServerMetrics:
    return ServerMetrics()


async def test_session_events_and_log_are_the_library_dicts(tmp_path: Path) -> None:
    """A live session fed the sample: what it sends and logs is each item's dict form."""
    import soundfile as sf

    x, rate = sf.read(speech_sample(), dtype="float32", always_2d=True)
    src = from_file(speech_sample(), block_size=1600)
    lib = collect(src.pipe(vad(), hysteresis(), buffer_utterance(passthrough=True)))
    display = collect(src.pipe(reframe(1600), level()))
    spec = collect(src.pipe(reframe(1600), spectrogram(kind="log_mel", n_mels=64)))

    loop = asyncio.get_running_loop()

    async def send(text: str) -> None:  # pragma: no cover - the outbox is never run
        pass

    metrics = _metrics()
    session = Session(
        "s1",
        sample_rate=rate,
        channels=1,
        options=ChainOptions(events=EVENTS),
        out_dir=str(tmp_path),
        metrics=metrics,
        loop=loop,
        scheduler=AsyncIOScheduler(loop),
    )
    box = Outbox(send, metrics, maxlen=1 << 20)
    session.attach(box)
    for i in range(0, x.shape[0], 1600):
        session.feed(np.ascontiguousarray(x[i : i + 1600]))
    session.close()
    await asyncio.sleep(0.05)
    sent = [json.loads(text) for _, text, _ in box.queue]
    log = _lines(tmp_path / "s1" / "events.jsonl")
    assert log[-1]["type"] == "closed"

    speech = [e for e in sent if e["type"] in ("speech_start", "speech_end", "utterance")]
    assert log[:-1] == speech  # events.jsonl holds exactly what was sent
    assert [e["seq"] for e in speech] == list(range(1, len(speech) + 1))
    utts = [e for e in speech if e["type"] == "utterance"]
    assert [e["id"] for e in utts] == list(range(1, len(utts) + 1))
    assert all(e["file"] == f"utt-{e['id']:04d}.wav" and e["url"].endswith(e["file"]) for e in utts)

    def strip(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e.items() if k not in SESSION_ONLY}

    assert [strip(e) for e in speech] == [i.to_dict() for i in lib if isinstance(i, SPEECH)]
    assert [e for e in sent if e["type"] == "vad"] == [
        i.to_dict() for i in lib if isinstance(i, VadFrame)
    ]
    assert [e for e in sent if e["type"] == "level"] == [f.to_dict() for f in display]
    grams = [e for e in sent if e["type"] == "spectrogram"]
    assert len(grams) == len(spec)
    for e, f in zip(grams, spec, strict=True):
        proto = {k: e.pop(k) for k in ("data", "db_range")}  # the protocol's own fields
        assert e == f.to_dict(values=False)
        assert len(base64.b64decode(proto["data"])) == f.n_rows * 64
        assert proto["db_range"] == [-60.0, 40.0]


# ---- NaN and infinity never make invalid JSON ----------------------------------------------


NASTY = [math.nan, math.inf, -math.inf]


def _check(d: dict[str, Any]) -> dict[str, Any]:
    text = _dumps(d)  # raises on NaN/inf
    back: dict[str, Any] = json.loads(text)
    assert back == d
    return back


@pytest.mark.parametrize("bad", NASTY)
def test_non_finite_numbers_become_null(bad: float, tmp_path: Path) -> None:
    v = VadFrame(0, 512, 16000, bad, speech=True)
    assert _check(v.to_dict())["p"] is None
    lv = LevelFrame(0, 1600, 16000, bad, bad, (bad, 0.0), (1.0, bad))
    d = _check(lv.to_dict())
    assert d["rms_db"] is None and d["peak_db"] is None
    assert d["channel_rms_db"] == [None, 0.0] and d["channel_peak_db"] == [1.0, None]
    values = np.array([[bad, -20.0], [3.0, bad]], dtype=np.float32)
    f = FeatureFrame("log_mel", values, 0, 16000, 160, 512, params={"x": bad})
    d = _check(f.to_dict(with_columns=True))
    assert d["values"] == [[None, -20.0], [3.0, None]] and d["params"] == {"x": None}
    ev = encode_item(f, EVENTS)
    assert ev is not None
    assert len(base64.b64decode(_check(ev)["data"])) == 4
    rej = SettingsRejected("hysteresis", {"threshold": bad}, "no", 16)
    assert _check(rej.to_dict())["settings"] == {"threshold": None}
    assert _check(to_record({"a": bad, "b": [bad, 1.0], "c": np.float32(bad)})) == {
        "a": None,
        "b": [None, 1.0],
        "c": None,
    }
    for item in (v, lv, f):
        ev = encode_item(item, EVENTS)
        assert ev is not None
        assert json.loads(encode(ev)) == _check(ev)  # the same JSON as the standard library
    out = tmp_path / "nan.jsonl"
    collect(rx.from_iterable([v, lv, f, rej, {"x": bad}]).pipe(to_jsonl(out)))
    assert [r["type"] for r in _lines(out)[:4]] == [
        "vad",
        "level",
        "spectrogram",
        "settings_rejected",
    ]


def test_other_frames_have_one_form_too() -> None:
    a = AudioFrame(np.zeros((800, 2), dtype=np.float32), 16000, 1600)
    assert _check(a.to_dict()) == {
        "type": "audio",
        "t": 0.1,
        "end": 0.15,
        "sample_rate": 16000,
        "channels": 2,
    }
    r = FileReceipt("x.wav", 3, 16000, 16000, 1)
    assert _check(r.to_dict()) == {
        "type": "file",
        "path": "x.wav",
        "frames": 3,
        "samples": 16000,
        "seconds": 1.0,
        "sample_rate": 16000,
        "channels": 1,
        "reason": "completed",
    }
    mf = FeatureFrame("mfcc", np.zeros((1, 3), dtype=np.float32), 0, 16000, 160, 512)
    assert mf.to_dict()["type"] == "mfcc"
    sp = FeatureFrame("spectral", np.zeros((1, 3), dtype=np.float32), 0, 16000, 160, 512)
    assert sp.to_dict()["type"] == "spectral"
    assert to_record(a) == a.to_dict()


@given(
    p=st.floats(allow_nan=True, allow_infinity=True, width=32),
    start=st.integers(0, 10**9),
    n=st.integers(1, 10**6),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000, 96000]),
)
def test_any_number_round_trips_as_valid_json(p: float, start: int, n: int, rate: int) -> None:
    items = [
        VadFrame(start, start + n, rate, p, speech=False),
        SpeechStart(start, rate),
        SpeechEnd(start, start + n, rate),
        Utterance(np.zeros((1, 1), np.float32), rate, start, start + n, start, start + n, "gap"),
        LevelFrame(start, start + n, rate, p, p),
    ]
    for item in items:
        d = _check(item.to_dict())
        assert d == encode_item(item, EVENTS)
        for k in ("t", "start", "end"):
            if k in d:  # the sample index comes back from the seconds
                assert round(d[k] * rate) in (start, start + n)
