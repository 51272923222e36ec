"""``rxaudio worker`` against a real redis-server, in real processes: round trip, kill -9,
two workers, SIGTERM, dead letters, Redis down."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx
from reactivex import operators as ops
from rxaudio_tests_cli import rxaudio

from rxaudio.apps.cli import main
from rxaudio.core.caps import Caps
from rxaudio.core.props import element, info_of
from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame, Utterance
from rxaudio.operators import mfcc
from rxaudio.pipeline import registry
from rxaudio.pipeline.launch import LaunchError, parse_launch
from rxaudio.pipeline.worker import StreamWorker

pytestmark = pytest.mark.e2e
SLOW = str(Path(__file__).with_name("slow_worker.py"))
WAIT_S = 60.0


def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def published(redis_server: Any, speech_path: str) -> list[Utterance]:
    """The bundled sample's utterances, cut in-process, and the same written to stream ``s``."""
    cut = "vad ! hysteresis ! buffer_utterance"
    ref: list[Utterance] = []
    done = threading.Event()
    parse_launch(f"file location={speech_path} ! {cut}").observable().subscribe(
        lambda u: ref.append(u) if isinstance(u, Utterance) else None,
        lambda e: done.set(),
        done.set,
    )
    assert done.wait(WAIT_S) and len(ref) >= 5
    [receipt] = parse_launch(
        f"file location={speech_path} ! {cut} ! redis url={redis_server.url} stream=s"
    ).run()
    assert receipt.written == len(ref)
    return ref


def ids(server: Any, stream: str = "s") -> list[str]:
    return [i.decode() for i, _ in server.client().xrange(stream)]


def results(server: Any, stream: str = "s") -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in f.items()}
        for _, f in server.client().xrange(f"{stream}:results")
    ]


def pcm(u: Utterance) -> np.ndarray:
    q = np.frombuffer(u.to_frame().to_pcm16(), dtype="<i2").reshape(u.samples.shape)
    return q.astype(np.float32) / np.float32(32768.0)


def worker_args(server: Any, *more: str, stream: str = "s") -> list[str]:
    return ["worker", "--redis", server.url, "--stream", stream, "--group", "g", *more]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, SLOW, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_round_trip_equals_the_in_process_chain(
    redis_server: Any, published: list[Utterance], tmp_path: Path
) -> None:
    out = tmp_path / "feat"
    out.mkdir()
    n = len(published)
    res = rxaudio(
        *worker_args(redis_server, "--max-entries", str(n)),
        "--pipeline",
        f"redis_src emit=audio ! mfcc ! features location={out}/{{id}}.npz",
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert f"entries {n} acked" in res.stderr and "0 dead" in res.stderr
    entry_ids = ids(redis_server)
    for entry_id, u in zip(entry_ids, published, strict=True):
        got = np.load(out / f"{entry_id}.npz")["values"]
        rows: list[Any] = []
        rx.of(AudioFrame(pcm(u), u.sample_rate, u.audio_start)).pipe(mfcc()).subscribe(rows.append)
        want = np.concatenate([r.values for r in rows])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    rs = results(redis_server)
    assert [r["source_id"] for r in rs] == entry_ids
    assert all(r["type"] == "file" and str(out) in r["data"] for r in rs)
    assert redis_server.client().xpending("s", "g")["pending"] == 0


def test_kill_9_mid_entry_another_worker_claims_it_and_every_utterance_is_written_once(
    redis_server: Any, published: list[Utterance], tmp_path: Path, procs: list[Any]
) -> None:
    out, marker = tmp_path / "wav", tmp_path / "marker"
    out.mkdir()
    a = spawn(
        *worker_args(redis_server, "--consumer", "a"),
        "--pipeline",
        f"redis_src emit=audio ! slow seconds=60 marker={marker} ! wav location={out}/{{id}}.wav",
    )
    procs.append(a)
    wait_until(marker.exists, "worker a to take an entry")
    a.send_signal(signal.SIGKILL)
    a.wait()
    pending = redis_server.client().xpending_range("s", "g", "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"a"]  # a died holding it
    n = len(published)
    b = spawn(
        *worker_args(redis_server, "--consumer", "b", "--max-entries", str(n)),
        "--pipeline",
        f"redis_src emit=audio claim_idle_ms=300 ! wav location={out}/{{id}}.wav",
    )
    procs.append(b)
    _, err = b.communicate(timeout=WAIT_S)
    assert b.returncode == 0, err
    assert "1 redelivered" in err
    entry_ids = ids(redis_server)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.wav" for i in entry_ids)
    import soundfile as sf

    for entry_id, u in zip(entry_ids, published, strict=True):
        data, rate = sf.read(out / f"{entry_id}.wav", dtype="float32", always_2d=True)
        assert rate == u.sample_rate
        np.testing.assert_array_equal(data, pcm(u))
    rs = results(redis_server)
    assert sorted(r["source_id"] for r in rs) == sorted(entry_ids)  # once each
    assert {r["producer"] for r in rs} == {"b"}
    assert redis_server.client().xpending("s", "g")["pending"] == 0


def test_two_workers_share_the_stream_and_stop_cleanly_on_sigterm(
    redis_server: Any, published: list[Utterance], tmp_path: Path, procs: list[Any]
) -> None:
    out = tmp_path / "wav"
    out.mkdir()
    line = f"redis_src emit=audio ! slow seconds=0.3 ! wav location={out}/{{id}}.wav"
    for name in ("w1", "w2"):
        p = spawn(*worker_args(redis_server, "--consumer", name, stream="s2"), "--pipeline", line)
        procs.append(p)
        assert "reading s2" in p.stderr.readline()  # connected, group made: ready
    c = redis_server.client()
    for _, f in c.xrange("s"):  # the work arrives once both wait for it
        c.xadd("s2", f)
    n = len(published)
    wait_until(lambda: len(results(redis_server, "s2")) == n, "every entry's result")
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        _, err = p.communicate(timeout=WAIT_S)
        assert p.returncode == 0, err
        assert "stopped by a signal" in err
    rs = results(redis_server, "s2")
    assert sorted(r["source_id"] for r in rs) == sorted(ids(redis_server, "s2"))
    by = {name: sum(r["producer"] == name for r in rs) for name in ("w1", "w2")}
    assert by["w1"] >= 1 and by["w2"] >= 1, by  # the group split the work
    assert len(list(out.iterdir())) == n


def test_sigterm_finishes_the_entry_in_hand_and_acks_it(
    redis_server: Any, published: list[Utterance], tmp_path: Path, procs: list[Any]
) -> None:
    out, marker = tmp_path / "wav", tmp_path / "marker"
    out.mkdir()
    p = spawn(
        *worker_args(redis_server, "--consumer", "t"),
        "--pipeline",
        f"redis_src emit=audio ! slow seconds=1 marker={marker} ! wav location={out}/{{id}}.wav",
    )
    procs.append(p)
    wait_until(marker.exists, "the worker to take an entry")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=WAIT_S)
    assert p.returncode == 0, err
    first = ids(redis_server)[0]
    assert [r["source_id"] for r in results(redis_server)] == [first]
    assert (out / f"{first}.wav").exists()
    assert redis_server.client().xpending("s", "g")["pending"] == 0


def test_a_malformed_entry_goes_to_the_dead_letter_stream_and_the_worker_goes_on(
    redis_server: Any, published: list[Utterance], tmp_path: Path
) -> None:
    c = redis_server.client()
    c.xadd("s", {"type": "utterance", "data": "{broken"})
    c.xadd("s", c.xrange("s", count=1)[0][1])  # and a good one after it
    n = len(published) + 1
    out = tmp_path / "wav"
    res = rxaudio(*worker_args(redis_server, "--max-entries", str(n), "--out", str(out)))
    assert res.returncode == 0, res.stderr
    assert "1 dead" in res.stderr
    [(_, f)] = c.xrange("s:dead")
    assert b"not JSON" in f[b"reason"]
    assert len(list(out.iterdir())) == n  # the default pipeline: each utterance as a WAV


def test_redis_down_at_start_is_one_clear_line(dead_url: str) -> None:
    res = rxaudio("worker", "--redis", dead_url)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "cannot reach" in lines[0] and "Connection refused" in lines[0]


def test_a_pipeline_that_fails_on_an_entry_dead_letters_it_and_goes_on(
    redis_server: Any, published: list[Utterance], monkeypatch: pytest.MonkeyPatch
) -> None:
    @element("boom_on_second", kind="operator", accepts=Caps(), produces=Caps())
    def boom() -> Callable[[Any], Any]:
        """Fail on the second utterance (a test element)."""

        def check(f: AudioFrame) -> AudioFrame:
            if f.start == published[1].audio_start:
                raise ValueError("no good")
            return f

        return ops.map(check)

    monkeypatch.setitem(registry.registry(), "boom_on_second", info_of(boom))
    w = StreamWorker(
        f"redis_src url={redis_server.url} stream=s group=g emit=audio ! boom_on_second"
    )
    w.run(threading.Event(), max_entries=len(published))
    assert w.stats.failed == 1 and w.stats.reader.dead == 1
    assert w.stats.reader.acked == len(published) - 1
    [(_, f)] = redis_server.client().xrange("s:dead")
    assert b"the pipeline failed on this entry: ValueError: no good" in f[b"reason"]
    # a branch ending in an operator: its items are the results
    assert [r["type"] for r in results(redis_server)] == ["audio"] * (len(published) - 1)


def test_pipeline_mistakes_are_reported_before_anything_runs(
    capsys: pytest.CaptureFixture[str], speech_path: str
) -> None:
    with pytest.raises(LaunchError, match="starts with redis_src"):
        StreamWorker(f"file location={speech_path} ! level")
    assert main(["worker", "--pipeline", "redis_src stream=x ! level"]) == 2
    assert "give it with --stream instead" in capsys.readouterr().err
    assert main(["worker", "--pipeline", "mfcc ! nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="entry_timeout_s"):
        StreamWorker("redis_src ! level", entry_timeout_s=0)


def test_worker_metrics_are_served(
    redis_server: Any, published: list[Utterance], tmp_path: Path, procs: list[Any]
) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = spawn(*worker_args(redis_server, "--metrics-port", str(port), "--out", str(tmp_path / "o")))
    procs.append(p)
    n = len(published)

    def acked() -> bool:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        except OSError:
            return False
        text = body.decode()
        return all(
            want in text
            for want in (
                f"rxaudio_worker_acked_total {float(n)}",
                "rxaudio_worker_pending 0.0",  # read from the group after the last ack
                "rxaudio_worker_lag 0.0",
            )
        )

    wait_until(acked, "the metrics to show every entry acked, none pending")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    assert "rxaudio_worker_dead_total 0.0" in body
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=WAIT_S)
    assert p.returncode == 0


def test_a_worker_transcribes_utterances_into_the_results_stream(
    redis_server: Any, published: list[Utterance]
) -> None:
    pytest.importorskip("pocketsphinx")
    n = len(published)
    res = rxaudio(*worker_args(redis_server, "--max-entries", str(n)), "--pipeline", "transcribe")
    assert res.returncode == 0, res.stderr
    rs = results(redis_server)
    assert [r["source_id"] for r in rs] == ids(redis_server)
    texts = [json.loads(r["data"])["text"] for r in rs]
    assert all(r["type"] == "transcript" for r in rs)
    assert "hello" in " ".join(texts) and "pipeline" in " ".join(texts)


# --- issue 21: outputs that would collide, poison entries, one consumer name twice -------


def _group_untouched(server: Any, stream: str = "s") -> bool:
    """No consumer group read anything: the group is missing, or nothing was delivered."""
    c = server.client()
    if not c.exists(stream):
        return True
    groups = c.xinfo_groups(stream)
    return all(int(g["pending"]) == 0 and g["last-delivered-id"] in (b"0-0",) for g in groups)


@pytest.mark.parametrize(
    ("line", "fix"),
    [
        ("redis_src ! wavdir location={tmp}/out", "location={tmp}/out/{{id}}"),
        ("redis_src emit=audio ! wav location={tmp}/same.wav", "location={tmp}/same-{{id}}.wav"),
        ("redis_src types=* ! jsonl location={tmp}/log.jsonl", "location={tmp}/log-{{id}}.jsonl"),
        ("redis_src ! labels location={tmp}/speech.rttm", "location={tmp}/speech-{{id}}.rttm"),
        ("redis_src emit=audio ! mfcc ! features location={tmp}/f.npz", "{{id}}"),
        # one branch unique, the other not: the other is the one pointed at
        (
            "redis_src emit=audio ! tee name=t t. ! wav location={tmp}/{{id}}.wav "
            "t. ! level ! jsonl location={tmp}/levels.jsonl",
            "location={tmp}/levels-{{id}}.jsonl",
        ),
    ],
)
def test_a_sink_whose_files_are_the_same_for_every_entry_is_refused_before_any_entry_is_read(
    redis_server: Any, published: list[Utterance], tmp_path: Path, line: str, fix: str
) -> None:
    text = line.format(tmp=tmp_path)
    res = rxaudio(*worker_args(redis_server), "--pipeline", text)
    assert res.returncode == 2, res.stderr
    first = res.stderr.splitlines()[0]
    assert "names the same files for every entry" in first and "{id}" in first, res.stderr
    assert fix.format(tmp=tmp_path) in first, res.stderr
    assert "^" in res.stderr  # the caret under the location
    assert _group_untouched(redis_server)  # nothing read, nothing acked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["redis"]  # nothing written
    with pytest.raises(LaunchError, match="names the same files"):
        StreamWorker(text.replace("redis_src", f"redis_src url={redis_server.url} group=g2", 1))


def test_wavdir_may_take_the_entry_id_in_its_stem_and_writes_every_entry(
    redis_server: Any, published: list[Utterance], tmp_path: Path
) -> None:
    out = tmp_path / "utts"
    n = len(published)
    res = rxaudio(
        *worker_args(redis_server, "--max-entries", str(n)),
        "--pipeline",
        f"redis_src ! wavdir location={out} stem={{id}}- labels=jsonl",
    )
    assert res.returncode == 0, res.stderr
    want = sorted(
        [f"{i}-0001.wav" for i in ids(redis_server)] + [f"{i}.jsonl" for i in ids(redis_server)]
    )
    assert sorted(p.name for p in out.iterdir()) == want


def test_every_file_sink_declares_the_options_that_name_its_files() -> None:
    from rxaudio.frames import FileReceipt

    file_sinks = [
        info
        for info in registry.registry().values()
        if info.kind == "sink" and info.produces.frame is FileReceipt
    ]
    assert {i.name for i in file_sinks} >= {"wav", "wavdir", "jsonl", "labels", "features"}
    for info in file_sinks:
        assert info.writes, f"{info.name} writes files but declares no writes="
        assert all(info.prop(w) for w in info.writes)


def test_an_utterance_with_a_negative_audio_start_is_dead_lettered_and_the_worker_goes_on(
    redis_server: Any, published: list[Utterance], tmp_path: Path
) -> None:
    c = redis_server.client()
    [(good_id, good)] = c.xrange("s", count=1)
    rec = json.loads(good[b"data"])
    rec["audio_start"] = -1.0  # the poison entry
    bad_id = c.xadd("s", {**good, b"data": json.dumps(rec).encode()}).decode()
    c.xtrim("s", minid=bad_id)  # only the poison entry, then a good one
    again = c.xadd("s", good).decode()
    out = tmp_path / "wav"
    out.mkdir()
    res = rxaudio(
        *worker_args(redis_server, "--max-entries", "1"),
        "--pipeline",
        f"redis_src emit=audio ! wav location={out}/{{id}}.wav",
    )
    assert res.returncode == 0, res.stderr  # it was exit 2: AudioFrame: start must be >= 0
    assert "1 acked" in res.stderr and "1 dead" in res.stderr
    [(_, f)] = c.xrange("s:dead")
    assert f[b"source_id"].decode() == bad_id
    assert b"audio_start is -1.0 s; it must be a time >= 0" in f[b"reason"]
    assert [p.name for p in out.iterdir()] == [f"{again}.wav"]
    assert good_id != again


def test_a_type_mismatch_is_dead_lettered_with_what_is_wrong(
    redis_server: Any, published: list[Utterance], tmp_path: Path
) -> None:
    c = redis_server.client()
    level = {"type": "level", "time": 0.5, "rms_db": -20.0, "peak_db": -10.0}
    bad = c.xadd("s", {"type": "utterance", "data": json.dumps(level)}).decode()
    c.xtrim("s", minid=bad)
    c.xadd("s", {"type": "level", "data": json.dumps(level)})  # under its own type: fine
    w = StreamWorker(
        f"redis_src url={redis_server.url} stream=s group=g types=* "
        f"! jsonl location={tmp_path}/{{id}}.jsonl"
    )
    w.run(threading.Event(), max_entries=1)
    assert w.stats.reader.acked == 1 and w.stats.reader.dead == 1
    [(_, f)] = c.xrange("s:dead")
    reason = f[b"reason"].decode()
    assert "type=utterance" in reason and "'level' event" in reason, reason
    assert "this is a 'utterance' entry" not in reason


def test_two_live_workers_under_one_consumer_name_write_each_entry_s_results_once(
    redis_server: Any, published: list[Utterance], tmp_path: Path, procs: list[Any]
) -> None:
    """Worker a holds an entry; b, started under the same name, reads back the name's pending
    entries, so runs that one too, and first. a's late ack must write nothing."""
    out, marker, go = tmp_path / "wav", tmp_path / "marker", tmp_path / "go"
    out.mkdir()
    a = spawn(
        *worker_args(redis_server, "--consumer", "same", "--max-entries", "1"),
        "--pipeline",
        f"redis_src emit=audio ! slow seconds={WAIT_S} marker={marker} until={go} "
        f"! wav location={out}/{{id}}.wav",
    )
    procs.append(a)
    wait_until(marker.exists, "worker a to take an entry")
    b = spawn(
        *worker_args(redis_server, "--consumer", "same"),
        "--pipeline",
        f"redis_src emit=audio ! wav location={out}/{{id}}.wav",
    )
    procs.append(b)
    n = len(published)
    c = redis_server.client()
    wait_until(
        lambda: len(results(redis_server)) >= n and c.xpending("s", "g")["pending"] == 0,
        "b to handle every entry, a's included",
    )
    go.touch()  # now a finishes the entry it held
    _, err_a = a.communicate(timeout=WAIT_S)
    assert a.returncode == 0, err_a
    b.send_signal(signal.SIGTERM)
    _, err_b = b.communicate(timeout=WAIT_S)
    assert b.returncode == 0, err_b
    rs = results(redis_server)
    assert sorted(r["source_id"] for r in rs) == sorted(ids(redis_server))  # once each
    assert "1 duplicates" in err_a and "entries 0 acked" in err_a, err_a  # b acked it first
    assert {r["producer"] for r in rs} == {"same"}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.wav" for i in ids(redis_server))


# --- any broken entry: dead-lettered with its reason, and the worker goes on (property) ---

DROP = object()  # a field or key left out


def _entry(
    template: dict[bytes, bytes], changes: dict[str, Any] | None = None, /, **fields: Any
) -> Any:
    """The template entry with ``changes`` made to its data's JSON and ``fields`` replaced
    (``DROP``: left out)."""
    out = dict(template)
    if changes:
        rec = json.loads(template[b"data"])
        for k, v in changes.items():
            if v is DROP:
                rec.pop(k, None)
            else:
                rec[k] = v
        out[b"data"] = json.dumps(rec).encode()
    for k, v in fields.items():
        if v is DROP:
            out.pop(k.encode(), None)
        else:
            out[k.encode()] = v if isinstance(v, bytes) else str(v).encode()
    return out


def _not_positive_int(b: bytes) -> bool:
    try:
        return int(b) <= 0
    except ValueError:
        return True


def broken_entries(template: dict[bytes, bytes], missing: str) -> Any:
    """Hypothesis strategy: an utterance entry of ``template``'s shape, broken in one way
    (each must go to the dead-letter stream). ``missing``: a path where no file is."""
    from hypothesis import strategies as st

    seconds_keys = st.sampled_from(["audio_start", "start", "end"])
    bad_seconds = st.one_of(
        st.floats(min_value=-1e9, max_value=-1e-6),  # the negative audio_start
        st.text(max_size=4),
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.just(DROP),
    )
    rec = json.loads(template[b"data"])
    n_bytes = len(template[b"audio"])
    not_whole = st.integers(2, 64).filter(lambda ch: n_bytes % (2 * ch) != 0)
    bad_int = st.one_of(st.binary(max_size=6).filter(_not_positive_int), st.just(DROP))
    not_object = st.one_of(
        st.binary(max_size=12).filter(lambda b: not b.strip().startswith(b"{")),
        st.sampled_from([b"[]", b"null", b"{}", b'{"type": 3}', b'{"start": 1}']),
        st.just(DROP),
    )
    fmt = st.binary(max_size=8).filter(lambda b: b not in (b"int16", b"flac", b"wav"))
    return st.one_of(
        st.builds(lambda k, v: _entry(template, {k: v}), seconds_keys, bad_seconds),
        st.floats(1e-3, 5.0).map(  # ends before it starts
            lambda d: _entry(template, {"end": rec["start"] - d})
        ),
        st.builds(lambda v: _entry(template, sample_rate=v), bad_int),
        st.builds(lambda v: _entry(template, channels=v), st.one_of(bad_int, not_whole)),
        st.binary(max_size=31)
        .filter(lambda b: len(b) % 2 == 1)
        .map(
            lambda b: _entry(template, audio=b)  # not whole 16-bit samples
        ),
        st.just(_entry(template, audio=b"")),  # no samples
        st.just(_entry(template, audio=DROP)),
        st.builds(lambda f: _entry(template, audio_format=f), fmt),
        st.binary(max_size=64).map(lambda b: _entry(template, audio_format=b"flac", audio=b)),
        st.just(_entry(template, audio_format=b"wav", audio=DROP, path=missing)),
        st.builds(lambda d: _entry(template, data=d), not_object),
        st.just(_entry(template, data=b"\xff\xfe" + template[b"data"])),  # not UTF-8
        st.sampled_from(["level", "vad", "speech_start", "transcript", "x"]).map(
            lambda t: _entry(template, {"type": t})  # type=utterance, another event's data
        ),
        # decodes, but its pipeline fails: no WAV holds such a rate
        st.integers(2**31, 2**62).map(lambda r: _entry(template, sample_rate=r)),
    )


def test_any_broken_entry_is_dead_lettered_with_a_reason_and_the_worker_goes_on(
    redis_server: Any, tmp_path: Path
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from rxaudio.sinks import to_redis

    u = Utterance(
        np.linspace(-0.5, 0.5, 1600, dtype=np.float32).reshape(-1, 1),
        16000, 16800, 17200, 16000, 17600, "silence",
    )  # fmt: skip
    done = threading.Event()
    rx.of(u).pipe(to_redis(redis_server.url, stream="template")).subscribe(
        on_error=lambda e: done.set(), on_completed=done.set
    )
    assert done.wait(WAIT_S)
    c = redis_server.client()
    [(_, template)] = c.xrange("template")
    streams = iter(range(10**6))
    pipelines = {
        "audio": "redis_src emit=audio ! wav location={out}/{{id}}.wav",
        "item": "redis_src ! wavdir location={out}/{{id}} labels=jsonl",
    }

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        bad=st.lists(
            broken_entries(template, str(tmp_path / "no-such.wav")), min_size=1, max_size=4
        ),
        emit=st.sampled_from(sorted(pipelines)),
    )
    def check(bad: list[dict[bytes, bytes]], emit: str) -> None:
        stream = f"p{next(streams)}"
        out = tmp_path / stream
        out.mkdir()
        bad_ids = [c.xadd(stream, f).decode() for f in bad]
        good_id = c.xadd(stream, template).decode()
        line = pipelines[emit].format(out=out)
        w = StreamWorker(
            line.replace("redis_src", f"redis_src url={redis_server.url} stream={stream}", 1)
        )
        stop = threading.Event()
        guard = threading.Timer(WAIT_S, stop.set)
        guard.start()
        seen: list[str] = []
        try:
            # an exception out of run() is what made the worker process exit 2
            w.run(stop, on_entry=lambda e: (seen.append(e.id), e.id == good_id and stop.set()))
        finally:
            guard.cancel()
        assert good_id in seen, "the good entry after the broken ones was never handled"
        dead = {
            f[b"source_id"].decode(): f[b"reason"].decode() for _, f in c.xrange(f"{stream}:dead")
        }
        assert sorted(dead) == sorted(bad_ids), (dead, bad_ids)
        assert all(len(r) > 10 for r in dead.values()), dead
        rs = [f[b"source_id"].decode() for _, f in c.xrange(f"{stream}:results")]
        assert rs == [good_id]
        assert c.xpending(stream, "rxaudio")["pending"] == 0
        # (a wavdir whose pipeline failed keeps its folder: what it wrote before, finalized)
        assert good_id + (".wav" if emit == "audio" else "") in [p.name for p in out.iterdir()]

    check()
