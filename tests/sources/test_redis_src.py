"""redis_src / StreamReader against a real redis-server: decoding, groups, claims, dead letters."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx

from rxaudio.errors import ConfigError, SourceError
from rxaudio.frames import AudioFrame, Utterance, VadFrame
from rxaudio.io.streams import MalformedEntry, decode_entry
from rxaudio.sinks import to_record, to_redis
from rxaudio.sources import StreamReader, from_redis

WAIT_S = 30.0


def utterance(n: int = 1600, channels: int = 1, seed: int = 3, start: int = 16000) -> Utterance:
    rng = np.random.default_rng(seed)
    samples = (rng.uniform(-0.5, 0.5, (n, channels))).astype(np.float32)
    return Utterance(samples, 16000, start + 800, start + n - 400, start, start + n, "silence")


def publish(url: str, items: list[Any], stream: str = "s", **kw: Any) -> None:
    got: list[Any] = []
    done = threading.Event()
    rx.from_iterable(items).pipe(to_redis(url, stream=stream, **kw)).subscribe(
        got.append, lambda e: done.set(), done.set
    )
    assert done.wait(WAIT_S) and got and got[0].written == len(items)


def pcm_roundtrip(u: Utterance) -> np.ndarray:
    pcm = np.frombuffer(u.to_frame().to_pcm16(), dtype="<i2").reshape(u.samples.shape)
    return pcm.astype(np.float32) / np.float32(32768.0)


def reader(url: str, **kw: Any) -> StreamReader:
    src = from_redis(url, stream="s", group=kw.pop("group", "g"), **kw)
    r = src.reader()
    r.open()
    return r


def poll_until(r: StreamReader, n: int, block_ms: int = 100) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while len(out) < n and time.monotonic() < deadline:
        out += r.poll(block_ms=block_ms)
    return out


def test_marbles_entries_in_order_then_completion_with_drain(redis_server: Any) -> None:
    """-U1--U2--|  with drain=true (the docstring's diagram): each item in stream order, each
    acknowledged after its on_next, then completion once the group has nothing left."""
    us = [utterance(seed=1), utterance(seed=2)]
    publish(redis_server.url, us)
    c = redis_server.client()
    seen: list[str] = []
    done = threading.Event()

    def on_next(u: Any) -> None:
        pending = c.xpending("s", "g")["pending"]
        seen.append(f"U{len(seen) + 1}(pending={pending})")

    from_redis(redis_server.url, stream="s", group="g", drain=True, block_ms=50).subscribe(
        on_next, lambda e: seen.append(f"#{e}"), lambda: (seen.append("|"), done.set())
    )
    assert done.wait(WAIT_S)
    # while U2 is in hand, U1 is acknowledged already: one pending, the one in hand
    assert seen == ["U1(pending=1)", "U2(pending=1)", "|"]
    assert c.xpending("s", "g")["pending"] == 0


@pytest.mark.parametrize("audio", ["int16", "flac"])
def test_an_utterance_round_trips_with_its_pcm_and_sample_positions(
    redis_server: Any, audio: str
) -> None:
    u = utterance(channels=2)
    publish(redis_server.url, [u], audio=audio)
    r = reader(redis_server.url)
    [e] = poll_until(r, 1)
    got = e.item
    assert isinstance(got, Utterance)
    np.testing.assert_array_equal(got.samples, pcm_roundtrip(u))
    assert (got.start, got.end, got.audio_start, got.audio_end, got.reason) == (
        u.start,
        u.end,
        u.audio_start,
        u.audio_end,
        u.reason,
    )
    assert e.fields["type"] == "utterance" and e.deliveries == 1


def test_a_wav_file_entry_is_read_from_its_path(redis_server: Any, tmp_path: Path) -> None:
    u = utterance()
    publish(redis_server.url, [u], audio="file", audio_dir=str(tmp_path / "a"))
    [e] = poll_until(reader(redis_server.url), 1)
    np.testing.assert_array_equal(e.item.samples, pcm_roundtrip(u))


def test_emit_audio_gives_the_utterances_audio_as_one_frame(redis_server: Any) -> None:
    u = utterance()
    publish(redis_server.url, [u])
    [e] = poll_until(reader(redis_server.url, emit="audio"), 1)
    assert isinstance(e.item, AudioFrame)
    assert e.item.start == u.audio_start and e.item.n == u.samples.shape[0]


def test_types_skip_other_entries_and_ack_them(redis_server: Any) -> None:
    v = VadFrame(0, 512, 16000, 0.9)
    publish(redis_server.url, [v, utterance(), v])
    r = reader(redis_server.url)
    [e] = poll_until(r, 1)
    r.ack(e.id)
    deadline = time.monotonic() + WAIT_S
    while r.stats.skipped < 2 and time.monotonic() < deadline:
        assert r.poll(block_ms=50) == []  # the last vad entry: skipped
    assert r.stats.skipped == 2 and r.stats.read == 1
    r.refresh()
    assert r.stats.pending == 0


def test_types_star_gives_other_entries_as_their_dict_form(redis_server: Any) -> None:
    v = VadFrame(0, 512, 16000, 0.9)
    publish(redis_server.url, [v])
    [e] = poll_until(reader(redis_server.url, types="*"), 1)
    assert e.item == to_record(v)


def test_malformed_entries_go_to_the_dead_letter_stream_with_the_reason(
    redis_server: Any,
) -> None:
    c = redis_server.client()
    c.xadd("s", {"type": "utterance"})
    c.xadd("s", {"type": "utterance", "data": "{not json"})
    c.xadd(
        "s",
        {
            "type": "utterance",
            "data": '{"type":"utterance","start":0,"end":0.1,"audio_start":0}',
            "audio_format": "int16",
            "sample_rate": "16000",
            "channels": "2",
            "audio": b"\x00\x01\x02",
        },
    )
    publish(redis_server.url, [utterance()])
    r = reader(redis_server.url)
    [e] = poll_until(r, 1)
    assert isinstance(e.item, Utterance)
    dead = c.xrange("s:dead")
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert len(reasons) == 3 and r.stats.dead == 3
    assert "no data field" in reasons[0]
    assert "not JSON" in reasons[1]
    assert "not whole 16-bit frames of 2 channel(s)" in reasons[2]
    assert all(f[b"source_stream"] == b"s" and f[b"group"] == b"g" for _, f in dead)
    r.refresh()
    assert r.stats.pending == 1  # only the good one, not yet acked


def test_an_entry_left_by_a_dead_consumer_is_claimed_after_the_idle_time(
    redis_server: Any,
) -> None:
    publish(redis_server.url, [utterance(seed=1), utterance(seed=2)])
    a = reader(redis_server.url, consumer="a")
    [first] = a.poll(block_ms=100)  # a takes one and dies (never acks)
    a.close()
    b = reader(redis_server.url, consumer="b", claim_idle_ms=100)
    got = poll_until(b, 2)
    ids = [e.id for e in got]
    assert first.id in ids and len(set(ids)) == 2
    claimed = next(e for e in got if e.id == first.id)
    assert claimed.deliveries == 2 and b.stats.redelivered == 1
    for e in got:
        b.ack(e.id)
    b.refresh()
    assert b.stats.pending == 0


def test_a_restarted_consumer_reads_back_its_own_pending_entries_first(
    redis_server: Any,
) -> None:
    publish(redis_server.url, [utterance(seed=1), utterance(seed=2)])
    a = reader(redis_server.url, consumer="a")
    [first] = a.poll(block_ms=100)
    a.close()
    again = reader(redis_server.url, consumer="a")  # same name, before any claim is due
    [e] = again.poll(block_ms=100)
    assert e.id == first.id and e.deliveries == 2


def test_a_consumer_that_keeps_dying_on_its_entry_dead_letters_it_on_read_back(
    redis_server: Any,
) -> None:
    """A worker restarted under the same name reads its pending entry back; each read-back
    counts as a delivery, so an entry that kills it every time ends in the dead-letter stream."""
    publish(redis_server.url, [utterance()])
    [e] = reader(redis_server.url, consumer="a").poll(block_ms=100)  # delivery 1, dies
    [again] = reader(redis_server.url, consumer="a").poll(block_ms=100)  # delivery 2, dies
    assert again.id == e.id and again.deliveries == 2
    third = reader(redis_server.url, consumer="a", max_deliveries=2)
    assert third.poll(block_ms=50) == []
    [(_, f)] = redis_server.client().xrange("s:dead")
    assert b"delivered 3 times" in f[b"reason"] and third.stats.dead == 1


def test_an_entry_delivered_too_often_goes_to_the_dead_letter_stream(
    redis_server: Any,
) -> None:
    publish(redis_server.url, [utterance()])
    a = reader(redis_server.url, consumer="a")
    [e] = a.poll(block_ms=100)
    b = reader(redis_server.url, consumer="b", claim_idle_ms=50, max_deliveries=1)
    time.sleep(0.1)
    assert b.poll(block_ms=50) == []
    [(_, f)] = redis_server.client().xrange("s:dead")
    assert b"delivered 2 times" in f[b"reason"] and f[b"source_id"] == e.id.encode()


def test_ack_writes_results_and_acks_in_one_transaction(redis_server: Any) -> None:
    publish(redis_server.url, [utterance()])
    r = reader(redis_server.url)
    [e] = poll_until(r, 1)
    r.ack(e.id, [{"type": "x", "data": "{}", "source_id": e.id}], to="out")
    c = redis_server.client()
    assert [f[b"source_id"].decode() for _, f in c.xrange("out")] == [e.id]
    assert c.xpending("s", "g")["pending"] == 0


def test_the_observable_acks_after_on_next_and_drain_completes(redis_server: Any) -> None:
    us = [utterance(seed=k) for k in range(3)]
    publish(redis_server.url, us)
    got: list[Any] = []
    done = threading.Event()
    err: list[Exception] = []
    src = from_redis(redis_server.url, stream="s", group="g", drain=True, block_ms=100)
    src.subscribe(got.append, lambda e: (err.append(e), done.set()), done.set)
    assert done.wait(WAIT_S) and not err
    assert len(got) == 3
    for g, u in zip(got, us, strict=True):
        np.testing.assert_array_equal(g.samples, pcm_roundtrip(u))
    assert redis_server.client().xpending("s", "g")["pending"] == 0


def test_redis_down_at_start_is_one_clear_error(dead_url: str) -> None:
    with pytest.raises(SourceError, match=r"cannot reach .* \(Connection refused\); start"):
        from_redis(dead_url).reader().open()
    done = threading.Event()
    err: list[Exception] = []
    from_redis(dead_url).subscribe(on_error=lambda e: (err.append(e), done.set()))
    assert done.wait(WAIT_S) and "cannot reach" in str(err[0])


def test_redis_restarted_mid_read_is_ridden_out(redis_server: Any) -> None:
    publish(redis_server.url, [utterance(seed=1)])
    r = reader(redis_server.url, retry_s=30)
    [e] = poll_until(r, 1)
    redis_server.kill()
    later = threading.Timer(0.5, redis_server.start)
    later.start()
    try:
        r.ack(e.id)  # retried with back-off until the server is back (appendonly kept it)
    finally:
        later.join()
    assert redis_server.client().xpending("s", "g")["pending"] == 0


def test_redis_gone_longer_than_retry_s_ends_with_a_clear_error(redis_server: Any) -> None:
    r = reader(redis_server.url, retry_s=0.3)
    redis_server.kill()
    with pytest.raises(SourceError, match=r"cannot reach .* for 0.3 s"):
        r.poll(block_ms=10)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"url": "http://x"}, "must start with redis://"),
        ({"stream": ""}, "stream must name"),
        ({"group": ""}, "group must name"),
        ({"emit": "audio", "types": "*"}, "emit=audio"),
        ({"count": 0}, "count"),
    ],
)
def test_bad_options_are_config_errors(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        from_redis(**kw)


@pytest.mark.parametrize(
    ("fields", "msg"),
    [
        ({b"data": b"[1]"}, "not a JSON object with a type"),
        ({b"data": b'{"type":"utterance"}', b"audio": b"xx"}, "audio without audio_format"),
        (
            {
                b"data": b'{"type":"utterance"}',
                b"audio_format": b"mp3",
                b"sample_rate": b"1",
                b"channels": b"1",
            },
            "none of int16, flac, wav",
        ),
        (
            {
                b"data": b'{"type":"utterance"}',
                b"audio_format": b"int16",
                b"sample_rate": b"x",
                b"channels": b"1",
                b"audio": b"",
            },
            "sample_rate is 'x'",
        ),
        (
            {
                b"data": b'{"type":"utterance"}',
                b"audio_format": b"wav",
                b"path": b"/nope.wav",
                b"sample_rate": b"16000",
                b"channels": b"1",
            },
            "cannot read the wav audio",
        ),
    ],
)
def test_decode_names_what_is_wrong(fields: dict[bytes, bytes], msg: str) -> None:
    with pytest.raises(MalformedEntry, match=msg):
        decode_entry(fields)


def test_a_launch_string_drains_a_stream_into_a_folder(redis_server: Any, tmp_path: Path) -> None:
    from rxaudio.pipeline.launch import parse_launch

    us = [utterance(seed=k) for k in range(3)]
    publish(redis_server.url, us)
    [receipt] = parse_launch(
        f"redis_src url={redis_server.url} stream=s group=g drain=true block_ms=100 "
        f"! wavdir location={tmp_path / 'u'} labels="
    ).run()
    assert receipt.frames == 3
    assert len(list((tmp_path / "u").glob("*.wav"))) == 3
    assert redis_server.client().xpending("s", "g")["pending"] == 0
