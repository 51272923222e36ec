"""``to_redis`` (``redis``) against a real redis-server: entries, audio, trimming, outages.

No test asserts a duration: waits are for events (a count in Redis, the stream's end), each
with a generous limit.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx
import soundfile as sf
from reactivex.subject import Subject

from rxaudio.errors import ConfigError, SinkError, StreamError
from rxaudio.frames import SpeechEnd, SpeechStart, StreamReceipt, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, vad
from rxaudio.pipeline.launch import parse_launch
from rxaudio.sinks import to_json, to_jsonl, to_redis
from rxaudio.sinks._redis import shown_url
from rxaudio.sources import from_file
from rxaudio.testing import collect, run_marbles

pytestmark = pytest.mark.timeout(120)

WAIT_S = 60.0  # the most any wait below may take before the test fails


def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def writers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rxaudio-redis-")]


@pytest.fixture(autouse=True)
def no_writer_left() -> Iterator[None]:
    """Every test ends with every writer thread joined: no thread leaks."""
    yield
    wait_until(lambda: not writers(), "the writer threads to end", timeout=10)


class Run:
    """A subscription fed by hand (a Subject), its receipts and its end, on real threads."""

    def __init__(self, sink: Callable[[rx.Observable[Any]], rx.Observable[Any]]) -> None:
        self.subject: Subject[Any] = Subject()
        self.receipts: list[StreamReceipt] = []
        self.errors: list[Exception] = []
        self.ended = threading.Event()
        self.sub = self.subject.pipe(sink).subscribe(
            self.receipts.append, self._error, self.ended.set
        )

    def _error(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.ended.set()

    def wait(self) -> None:
        assert self.ended.wait(WAIT_S), "the stream did not end"


def entries(server: Any, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in server.client().xrange(stream)]


def datas(server: Any, stream: str) -> list[Any]:
    return [json.loads(e[b"data"]) for e in entries(server, stream)]


def pcm16(utt: Utterance) -> np.ndarray:
    """The utterance as int16 PCM, computed here from its float samples."""
    return np.rint(np.clip(utt.samples * np.float32(32768), -32768, 32767)).astype(np.int16)


def utterance(n: int = 1600, channels: int = 2, seed: int = 3) -> Utterance:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, channels)).astype(np.float32)
    x[0] = 1.0  # full scale: clipped to 32767
    return Utterance(x, 16000, 800, 800 + n - 400, 400, 400 + n, "silence", 0)


# --- (a) marbles in virtual time, entries checked in Redis ------------------------------------


def test_marbles_items_in_receipt_at_completion(redis_server: Any) -> None:
    items = {"a": SpeechStart(160, 16000), "b": {"x": 1}, "c": SpeechEnd(160, 3200, 16000)}
    out = run_marbles("-a-b-c-|", items, to_redis(redis_server.url, stream="m"))
    assert out.marbles() == "-------(x|)"
    assert out.values == [StreamReceipt(redis_server.url, "m", 3, 0, "completed")]
    got = entries(redis_server, "m")
    assert [e[b"type"] for e in got] == [b"speech_start", b"dict", b"speech_end"]
    assert [e[b"data"].decode() for e in got] == [
        to_json(SpeechStart(160, 16000).to_dict()),
        '{"x":1}',
        to_json(SpeechEnd(160, 3200, 16000).to_dict()),
    ]
    assert [int(e[b"seq"]) for e in got] == [0, 1, 2]
    assert len({e[b"producer"] for e in got}) == 1
    assert set(got[0]) == {b"type", b"data", b"producer", b"seq"}


def test_marbles_dispose_writes_what_came_and_emits_nothing(redis_server: Any) -> None:
    items = {"a": {"i": 1}, "b": {"i": 2}, "c": {"i": 3}}
    out = run_marbles("-a-b-c-|", items, to_redis(redis_server.url, stream="d"), dispose_at=4)
    assert out.events == []
    assert datas(redis_server, "d") == [{"i": 1}, {"i": 2}]  # flushed on dispose


def test_marbles_upstream_error_after_the_entries_before_it(redis_server: Any) -> None:
    boom = ValueError("boom")
    items = {"a": {"i": 1}, "b": {"i": 2}}
    out = run_marbles("-a-b-#", items, to_redis(redis_server.url), error=boom)
    assert out.marbles() == "-----(x#)"
    assert out.values[0].written == 2 and out.values[0].reason == "error"
    assert out.error is boom
    assert datas(redis_server, "rxaudio") == [{"i": 1}, {"i": 2}]


def test_marbles_an_item_without_json_form_ends_the_stream(redis_server: Any) -> None:
    items = {"a": {"i": 1}, "b": object(), "c": {"i": 3}}
    out = run_marbles("-a-b-c-|", items, to_redis(redis_server.url, stream="bad"))
    assert out.marbles() == "---(x#)"
    assert out.values[0].written == 1
    assert isinstance(out.error, StreamError) and "cannot serialise" in str(out.error)
    assert datas(redis_server, "bad") == [{"i": 1}]


def test_marbles_resubscribing_starts_a_new_producer(redis_server: Any) -> None:
    sink = to_redis(redis_server.url, stream="re")
    source = rx.from_iterable([{"i": 1}, {"i": 2}])
    assert collect(source.pipe(sink))[0].written == 2
    assert collect(source.pipe(sink))[0].written == 2
    got = entries(redis_server, "re")
    assert [int(e[b"seq"]) for e in got] == [0, 1, 0, 1]
    assert got[0][b"producer"] == got[1][b"producer"] != got[2][b"producer"]


# --- (b) round trip: every item's data is its one dict form ----------------------------------


def test_every_item_round_trips_as_its_dict_form(
    redis_server: Any, tmp_path: Path, speech_path: str
) -> None:
    src = from_file(speech_path, block_size=1600)
    items = collect(src.pipe(vad(), hysteresis(), buffer_utterance(passthrough=True)))
    assert sum(isinstance(i, Utterance) for i in items) >= 3
    (receipt,) = collect(rx.from_iterable(items).pipe(to_redis(redis_server.url, stream="rt")))
    assert receipt == StreamReceipt(redis_server.url, "rt", len(items), 0, "completed")
    got = entries(redis_server, "rt")
    assert len(got) == len(items)
    for item, e in zip(items, got, strict=True):
        assert e[b"data"].decode() == to_json(item.to_dict())
        assert e[b"type"].decode() == item.to_dict()["type"]
    assert [int(e[b"seq"]) for e in got] == list(range(len(items)))
    # the same text the JSONL sink writes, line for line
    collect(rx.from_iterable(items).pipe(to_jsonl(tmp_path / "e.jsonl")))
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert lines == [e[b"data"].decode() for e in got]


# --- (c) utterance audio --------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2])
def test_int16_audio_is_the_utterances_pcm(redis_server: Any, channels: int) -> None:
    utt = utterance(channels=channels)
    collect(rx.from_iterable([utt]).pipe(to_redis(redis_server.url, stream="a")))
    (e,) = entries(redis_server, "a")
    assert e[b"audio_format"] == b"int16"
    assert int(e[b"sample_rate"]) == 16000 and int(e[b"channels"]) == channels
    pcm = np.frombuffer(e[b"audio"], dtype="<i2").reshape(-1, channels)
    assert np.array_equal(pcm, pcm16(utt))
    assert pcm[0, 0] == 32767
    assert np.abs(pcm / 32768.0 - utt.samples).max() <= 1 / 32768
    assert json.loads(e[b"data"]) == utt.to_dict()


def test_flac_audio_decodes_to_the_same_pcm(redis_server: Any) -> None:
    utt = utterance(channels=2)
    collect(rx.from_iterable([utt]).pipe(to_redis(redis_server.url, stream="f", audio="flac")))
    (e,) = entries(redis_server, "f")
    assert e[b"audio_format"] == b"flac" and e[b"audio"][:4] == b"fLaC"
    pcm, rate = sf.read(io.BytesIO(e[b"audio"]), dtype="int16", always_2d=True)
    assert rate == 16000 and np.array_equal(pcm, pcm16(utt))


def test_file_audio_is_a_wav_named_by_an_absolute_path(
    redis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    utts = [utterance(seed=1), utterance(channels=1, seed=2)]
    sink = to_redis(redis_server.url, stream="w", audio="file", audio_dir="utts")
    collect(rx.from_iterable([SpeechStart(0, 16000), *utts]).pipe(sink))
    got = entries(redis_server, "w")
    assert b"path" not in got[0]
    paths = [e[b"path"].decode() for e in got[1:]]
    assert all(os.path.isabs(p) and os.path.dirname(p) == str(tmp_path / "utts") for p in paths)
    assert [e[b"audio_format"] for e in got[1:]] == [b"wav", b"wav"]
    for p, utt in zip(paths, utts, strict=True):
        pcm, rate = sf.read(p, dtype="int16", always_2d=True)
        assert rate == utt.sample_rate and np.array_equal(pcm, pcm16(utt))
    assert sorted(os.listdir(tmp_path / "utts")) == sorted(os.path.basename(p) for p in paths)


def test_audio_none_writes_only_the_dict_form(redis_server: Any) -> None:
    utt = utterance()
    collect(rx.from_iterable([utt]).pipe(to_redis(redis_server.url, stream="n", audio="none")))
    (e,) = entries(redis_server, "n")
    assert set(e) == {b"type", b"data", b"producer", b"seq"}


# --- (d) trimming ---------------------------------------------------------------------------


def test_maxlen_trims_the_stream_approximately(redis_server: Any) -> None:
    items = [{"i": i} for i in range(3000)]
    sink = to_redis(redis_server.url, stream="t", maxlen=200)
    assert collect(rx.from_iterable(items).pipe(sink))[0].written == 3000
    n = redis_server.client().xlen("t")
    assert 200 <= n <= 200 + 500  # "~" trims whole macro nodes (100 entries each by default)
    assert datas(redis_server, "t")[-1] == {"i": 2999}


# --- (e) outages: nothing lost, nothing twice -------------------------------------------------


def test_redis_killed_mid_stream_and_restarted_every_entry_once_in_order(
    redis_server: Any,
) -> None:
    run = Run(to_redis(redis_server.url, stream="k", retry_s=60, timeout_s=2))
    client = redis_server.client()
    for i in range(200):
        run.subject.on_next({"i": i})
    wait_until(lambda: client.xlen("k") >= 50, "some entries in redis")
    redis_server.kill()
    for i in range(200, 400):  # queued while redis is down
        run.subject.on_next({"i": i})
    time.sleep(0.3)  # a moment without redis (the writer is retrying)
    redis_server.start()  # same port, same folder: the append-only file brings the data back
    for i in range(400, 500):
        run.subject.on_next({"i": i})
    run.subject.on_completed()
    run.wait()
    assert run.errors == []
    assert run.receipts == [StreamReceipt(redis_server.url, "k", 500, 0, "completed")]
    got = entries(redis_server, "k")
    assert [json.loads(e[b"data"])["i"] for e in got] == list(range(500))
    assert [int(e[b"seq"]) for e in got] == list(range(500))


def test_a_round_trip_that_timed_out_is_not_written_twice(redis_server: Any) -> None:
    """The server freezes (SIGSTOP) with an XADD on the wire: the sink's round trip times out,
    but the server applies it when it wakes. The sink reads the stream before sending again."""
    run = Run(to_redis(redis_server.url, stream="s", retry_s=60, timeout_s=0.3))
    client = redis_server.client()
    for i in range(5):
        run.subject.on_next({"i": i})
    wait_until(lambda: client.xlen("s") == 5, "the first entries")
    redis_server.freeze()
    run.subject.on_next({"i": 5})  # sent; no answer comes
    time.sleep(1.0)  # a moment: the round trip times out, reconnecting fails
    for i in range(6, 50):  # the caller never waits for redis: these return while it is frozen
        run.subject.on_next({"i": i})
    redis_server.thaw()
    run.subject.on_completed()
    run.wait()
    assert run.errors == [] and run.receipts[0].written == 50
    assert [d["i"] for d in datas(redis_server, "s")] == list(range(50))


def test_redis_down_at_start_is_one_clear_error(dead_url: str) -> None:
    url = dead_url
    run = Run(to_redis(url, stream="x", retry_s=0.3))
    for i in range(3):
        run.subject.on_next({"i": i})
    run.wait()
    assert run.receipts == [StreamReceipt(url, "x", 0, 3, "failed")]
    (err,) = run.errors
    assert isinstance(err, SinkError)
    msg = str(err)
    assert msg.startswith(f"redis: no connection to {url} for ")
    assert "(Connection refused); 0 entries written, 3 not written; start redis-server" in msg
    assert "raise retry_s (now 0.3 s)" in msg
    run.subject.on_next({"i": 3})  # after the end: refused quietly, nothing more downstream
    assert len(run.errors) == 1


def test_a_full_buffer_ends_the_stream_counting_what_was_not_written(dead_url: str) -> None:
    url = dead_url
    run = Run(to_redis(url, stream="x", buffer=2, retry_s=60))
    for i in range(3):
        run.subject.on_next({"i": i})
    run.wait()
    (err,) = run.errors
    assert isinstance(err, SinkError)
    msg = str(err)
    assert msg.startswith("redis: the buffer of 2 entries is full")
    assert "0 entries written, 3 not written" in msg and "raise buffer" in msg
    assert run.receipts == [StreamReceipt(url, "x", 0, 3, "failed")]


def test_dispose_while_redis_is_away_counts_what_was_left(
    dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(to_redis(dead_url, stream="x", retry_s=60))
    for i in range(3):
        run.subject.on_next({"i": i})
    with caplog.at_level("WARNING", logger="rxaudio.sinks"):
        run.sub.dispose()  # joins the writer (checked after every test)
    assert not writers()
    assert run.receipts == [] and run.errors == [] and not run.ended.is_set()
    (rec,) = caplog.records
    assert rec.getMessage() == (
        f"redis: disposed with 3 entries not written to {dead_url} (stream 'x'); 0 written"
    )


def test_the_receipts_dict_form() -> None:
    r = StreamReceipt("redis://:***@h:6379/0", "utts", 7, 2, "failed")
    assert json.loads(to_json(r.to_dict())) == {
        "type": "stream",
        "url": "redis://:***@h:6379/0",
        "stream": "utts",
        "written": 7,
        "not_written": 2,
        "reason": "failed",
    }


def test_a_key_that_is_no_stream_is_an_error_at_once(redis_server: Any) -> None:
    redis_server.client().set("str", "x")
    with pytest.raises(SinkError, match=r"the key 'str' at .* holds no stream .*WRONGTYPE"):
        collect(rx.from_iterable([{"i": 1}]).pipe(to_redis(redis_server.url, stream="str")))


def test_an_unknown_host_is_an_error_at_once() -> None:
    sink = to_redis("redis://no-such-host.invalid:6379/0", retry_s=3600)
    with pytest.raises(SinkError, match=r"cannot resolve the host of redis://no-such-host"):
        collect(rx.from_iterable([{"i": 1}]).pipe(sink))


# --- (h) options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://127.0.0.1:port/0", "unix://"],
)
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^redis: "):
        to_redis(url)


def test_bad_options_are_config_errors(tmp_path: Path, from_text: Any) -> None:
    with pytest.raises(ConfigError, match="give audio_dir"):
        to_redis(audio="file")
    with pytest.raises(ConfigError, match="audio_dir is for audio=file"):
        to_redis(audio_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"maxlen must be an int >= 1 or none, got 0"):
        to_redis(maxlen=0)
    with pytest.raises(ConfigError, match="stream must name a key"):
        to_redis(stream="")
    with pytest.raises(ConfigError, match=r"audio must be one of 'int16', 'flac', 'file'"):
        from_text("redis", {"audio": "mp3"})


def test_a_password_never_shows() -> None:
    assert shown_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert shown_url("redis://u:s3cret@h/0") == "redis://u:***@h/0"
    assert shown_url("unix:///r.sock?password=s3cret&db=1") == "unix:///r.sock?password=***&db=1"
    assert shown_url("redis://h:1/0") == "redis://h:1/0"
    with pytest.raises(ConfigError) as info:
        to_redis("http://:s3cret@h")
    assert "s3cret" not in str(info.value)


# --- a launch string ------------------------------------------------------------------------


def test_launch_string_writes_utterances(redis_server: Any, speech_path: str) -> None:
    text = (
        f"file location={speech_path} ! vad ! hysteresis ! buffer_utterance ! "
        f"redis location={redis_server.url} stream=utterances"
    )
    parse_launch(text).run()
    got = entries(redis_server, "utterances")
    assert len(got) >= 3 and {e[b"type"] for e in got} == {b"utterance"}
    for e in got:
        d = json.loads(e[b"data"])
        n = len(e[b"audio"]) // 2
        assert n == round((d["audio_end"] - d["audio_start"]) * 16000)


def test_rxaudio_launch_says_how_many_entries_it_wrote(redis_server: Any, speech_path: str) -> None:
    import subprocess
    import sys

    text = f"file location={speech_path} ! level ! redis location={redis_server.url} stream=lv"
    r = subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "launch", text],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    n = len(entries(redis_server, "lv"))
    assert n > 0
    assert f"wrote {n} entries to lv at {redis_server.url}" in r.stdout


def test_transcripts_travel_as_their_dict_form(redis_server: Any) -> None:
    """``... ! transcribe ! redis``: a transcript's entry is its one dict form."""
    from rxaudio.frames import Transcript, Word

    t = Transcript(2, 16000, 32000, 16000, "hello world", (Word("hello", 16000, 24000, 0.5),),
                   0.5, "pocketsphinx", 0.25, 0.2)  # fmt: skip
    skipped = Transcript(3, 40000, 48000, 16000, "", backend="pocketsphinx", status="skipped")
    collect(rx.from_iterable([t, skipped]).pipe(to_redis(redis_server.url, stream="tx")))
    got = entries(redis_server, "tx")
    assert [e[b"type"] for e in got] == [b"transcript", b"transcript"]
    assert [json.loads(e[b"data"]) for e in got] == [t.to_dict(), skipped.to_dict()]
    assert b"audio" not in got[0]
