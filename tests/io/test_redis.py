"""The one Redis policy (:mod:`rxaudio.io.redis`): classification of real failures from real
redis-servers, the back-off schedule and the outage limit on a fake clock, and the retry loop
of a blocking caller riding out a real restart."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
import redis.exceptions as rex

from rxaudio.io.redis import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    Failure,
    GiveUp,
    Outage,
    backoff,
    call,
    classify,
    connect,
    unreachable,
)

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failure_of(fn: Any, *, stream: str = "s", shown: str = "redis://x") -> Failure:
    try:
        fn()
    except Exception as exc:
        return classify(exc, shown=shown, stream=stream)
    raise AssertionError("it did not fail")


# --- classification of real failures --------------------------------------------------------


def test_a_refused_connection_is_an_outage_worth_retrying(dead_url: str) -> None:
    f = failure_of(lambda: connect(dead_url, timeout_s=2, name="t").ping())
    assert f == Failure(True, "Connection refused", "", "start redis-server there")


def test_the_async_client_says_the_same_words(dead_url: str) -> None:
    import asyncio

    from rxaudio.io.redis import connect_async

    async def ping() -> Failure:
        client = connect_async(dead_url, timeout_s=2, name="t")
        try:
            await client.ping()
        except Exception as exc:
            return classify(exc, shown=dead_url, stream="s")
        finally:
            await client.aclose()
        raise AssertionError("it did not fail")

    want = Failure(True, "Connection refused", "", "start redis-server there")
    assert asyncio.run(ping()) == want


def test_an_unknown_host_is_permanent() -> None:
    url = "redis://no-such-host.invalid:6379/0"
    f = failure_of(lambda: connect(url, timeout_s=5, name="t").ping(), shown=url)
    assert not f.retry
    assert f.what.startswith(f"cannot resolve the host of {url} (")
    assert f.fix == "check the host name in url"


def test_a_key_that_holds_no_stream_is_permanent(redis_server: Any) -> None:
    c = redis_server.client()
    c.set("k", "v")
    f = failure_of(lambda: c.xadd("k", {"a": 1}), stream="k", shown=redis_server.url)
    assert not f.retry and f.fix == "name another stream"
    assert f.what.startswith(f"the key 'k' at {redis_server.url} holds no stream (WRONGTYPE")


def test_a_refused_login_is_permanent(redis_server: Any) -> None:
    redis_server.client().config_set("requirepass", "s3cret")
    wrong = redis.Redis(host="127.0.0.1", port=redis_server.port, password="nope")
    f = failure_of(wrong.ping, shown="redis://:***@h")
    assert not f.retry and f.fix == "check the user name and password in url"
    assert f.what.startswith("redis://:***@h refused the login (")


def test_out_of_memory_and_read_only_are_outages_with_their_own_fix(redis_server: Any) -> None:
    c = redis_server.client()
    c.config_set("maxmemory", "1")  # below what it uses: every write is refused
    f = failure_of(lambda: c.xadd("s", {"a": 1}))
    assert f.retry and f.fix.startswith("give redis more memory (maxmemory)")
    c.config_set("maxmemory", "0")
    assert classify(rex.ReadOnlyError("READONLY"), shown="u", stream="s").fix == (
        "point url at the primary"
    )


def test_other_refusals_and_bugs_are_permanent_with_the_words() -> None:
    f = classify(rex.ResponseError("ERR no such command"), shown="u", stream="s")
    assert not f.retry and f.what == "u refused a command on stream 's' (ERR no such command)"
    f = classify(KeyError("x"), shown="u", stream="s")
    assert not f.retry and f.what == "unexpected KeyError: 'x'" and f.fix == "please report this"
    assert unreachable(rex.BusyLoadingError("LOADING")) and unreachable(TimeoutError())
    assert not unreachable(rex.ResponseError("WRONGTYPE"))


# --- the schedule and the limit, on a fake clock ---------------------------------------------


def test_backoff_is_redis_pys_exponential_from_50_ms_to_1_s() -> None:
    waits = [backoff().compute(n) for n in range(1, 9)]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert waits[0] == BACKOFF_FIRST_S and waits[-1] == BACKOFF_MAX_S


def test_an_outage_waits_by_the_schedule_and_gives_up_after_retry_s() -> None:
    clock = Clock()
    o = Outage(2.0, shown="u", stream="s", clock=clock)
    lost = rex.ConnectionError("lost")
    waits = []
    for _ in range(4):
        waits.append(o.failed(lost))
        clock.now += waits[-1]
    assert waits == [0.05, 0.1, 0.2, 0.4] and o.away
    assert o.waited() == pytest.approx(0.75)
    clock.now += 1.0  # 1.75 s into the outage: the wait is cut to what is left
    assert o.failed(lost) == pytest.approx(0.25)
    clock.now += 0.25
    with pytest.raises(GiveUp) as info:
        o.failed(lost)
    assert info.value.outage and info.value.waited == pytest.approx(2.0)
    assert info.value.failure.fix == "start redis-server there"


def test_a_success_ends_the_outage_and_restarts_the_schedule() -> None:
    clock = Clock()
    o = Outage(10.0, shown="u", stream="s", clock=clock)
    assert [o.failed(OSError(111, "x")) for _ in range(3)] == [0.05, 0.1, 0.2]
    o.ok()
    assert not o.away and o.waited() == 0.0
    assert o.failed(OSError(111, "x")) == 0.05


def test_the_outage_starts_when_the_failed_attempt_began() -> None:
    clock = Clock()
    o = Outage(1.0, shown="u", stream="s", clock=clock)
    clock.now += 5.0  # a connect that took 5 s to time out
    with pytest.raises(GiveUp):
        o.failed(rex.TimeoutError(), started=clock.now - 5.0)


def test_a_permanent_failure_gives_up_at_once() -> None:
    o = Outage(60.0, shown="u", stream="s", clock=Clock())
    with pytest.raises(GiveUp) as info:
        o.failed(rex.AuthenticationError("invalid password"))
    assert not info.value.outage and not o.away


# --- the retry loop of a blocking caller (redis-py's Retry) -----------------------------------


def test_call_rides_out_a_restart_and_drops_the_broken_connection(redis_server: Any) -> None:
    client = connect(redis_server.url, timeout_s=2, name="t")
    client.ping()
    redis_server.kill()
    drops = []
    later = threading.Timer(0.5, redis_server.start)
    later.start()
    try:
        outage = Outage(30.0, shown=redis_server.url, stream="s")
        assert call(client.ping, outage, drop=lambda: drops.append(1)) is True
    finally:
        later.join()
    assert drops and not outage.away


def test_call_gives_up_after_retry_s(dead_url: str) -> None:
    client = connect(dead_url, timeout_s=2, name="t")
    outage = Outage(0.3, shown=dead_url, stream="s")
    with pytest.raises(GiveUp) as info:
        call(client.ping, outage)
    assert info.value.outage and info.value.waited is not None and info.value.waited >= 0.3
    assert outage.failures >= 3  # 50, 100, 150 ms (cut to the limit): tried again and again


def test_call_does_not_retry_a_permanent_failure(redis_server: Any) -> None:
    c = connect(redis_server.url, timeout_s=2, name="t")
    c.set("k", "v")
    tries = []

    def add() -> Any:
        tries.append(1)
        return c.xadd("k", {"a": 1})

    with pytest.raises(GiveUp) as info:
        call(add, Outage(30.0, shown=redis_server.url, stream="k"))
    assert len(tries) == 1 and "holds no stream" in info.value.failure.what
