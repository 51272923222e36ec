"""Behind real nginx running ``docs/deploy/nginx.conf``: TLS at the proxy, the WebSocket upgrade
proxied, resumes routed to the instance holding their session, forwarded headers believed
only from the proxy, ``/metrics`` not public, idle sessions not cut."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from rxaudio.server.config import ServerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def pcm(speech_path: str) -> np.ndarray:
    x, sr = sf.read(speech_path, dtype="int16")
    assert sr == 16000
    return x


async def until(ws: Any, kind: str, timeout: float = 60) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive_json(timeout=timeout)
        got.append(msg)
        if msg["type"] == kind:
            return got


async def start(ws: Any, **fields: Any) -> dict[str, Any]:
    hello = await ws.receive_json(timeout=30)
    assert hello["type"] == "hello"
    msg = {"type": "start", "version": 1, "sample_rate": 16000, "channels": 1, "format": "int16"}
    msg.update(fields)
    await ws.send_json(msg)
    return (await until(ws, "started"))[-1]


async def send_audio(ws: Any, data: np.ndarray, block: int = 2048) -> None:
    for i in range(0, data.shape[0], block):
        await ws.send_bytes(np.ascontiguousarray(data[i : i + block]).tobytes())


def public(proxy: Any) -> aiohttp.ClientSession:
    """A client of the public side: TLS to nginx (self-signed: not verified)."""
    return aiohttp.ClientSession(
        f"https://127.0.0.1:{proxy.https}",
        headers=proxy.headers,
        connector=aiohttp.TCPConnector(ssl=False),
    )


def ws_path(session: str | None = None) -> str:
    return "/ws" + (f"?session={session}" if session else "")


async def test_the_recipe_serves_the_page_over_https_and_hides_metrics(proxy: Any) -> None:
    async with public(proxy) as http:
        async with http.get("/") as r:
            assert r.status == 200 and "rxaudio" in await r.text()
        async with http.get("/metrics") as r:
            assert r.status == 404  # not on the public side ...
        async with http.get("/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"
    async with aiohttp.ClientSession() as direct:  # ... but on each instance's own address
        async with direct.get(f"http://127.0.0.1:{proxy.a.port}/metrics") as r:
            assert r.status == 200 and "rxaudio_" in await r.text()
        # plain HTTP on the public side only sends browsers to HTTPS
        async with direct.get(
            f"http://127.0.0.1:{proxy.http}/x?y=1",
            headers={"Host": "rxaudio.test"},
            allow_redirects=False,
        ) as r:
            assert r.status == 301 and r.headers["Location"] == "https://rxaudio.test/x?y=1"


async def test_a_session_dropped_behind_the_proxy_resumes_with_nothing_lost(
    proxy: Any, pcm: np.ndarray
) -> None:
    async with public(proxy) as http:
        # the reference: one unbroken session through the proxy
        ws = await http.ws_connect(ws_path())
        await start(ws)
        await send_audio(ws, pcm)
        await ws.send_json({"type": "stop"})
        ref = [e for e in await until(ws, "stopped") if e["type"] == "utterance"]
        await ws.close()
        assert ref

        ws = await http.ws_connect(ws_path())
        started = await start(ws)
        sid = started["session"]
        assert re.match(r"^[ab]-.{16}$", sid), sid  # the instance's prefix
        half = 100_000  # mid-sentence
        await send_audio(ws, pcm[:half])
        await until(ws, "stats")
        await ws.close()  # the network drops
        ws = await http.ws_connect(ws_path(sid))  # the page names its session when resuming
        again = await start(ws, session=sid, resume_token=started["resume_token"])
        assert again["resumed"] is True and again["session"] == sid
        assert again["received"] == half
        await send_audio(ws, pcm[again["received"] :])
        await ws.send_json({"type": "stop"})
        await until(ws, "stopped")
        await ws.close()
        # the files come through the proxy too, from the instance that wrote them
        async with http.get(f"/files/{sid}/events.jsonl") as r:
            assert r.status == 200
            log = [json.loads(line) for line in (await r.text()).splitlines()]
    both = [x for x in log if x["type"] == "utterance"]
    assert [(u["start"], u["end"], u["reason"]) for u in both] == [
        (u["start"], u["end"], u["reason"]) for u in ref
    ]
    assert log[-1]["received"] == len(pcm)


async def test_two_instances_new_sessions_spread_and_resumes_land_on_their_own(
    proxy: Any, pcm: np.ndarray
) -> None:
    async with public(proxy) as http:
        opened = []
        for _ in range(6):
            ws = await http.ws_connect(ws_path())
            s = await start(ws)
            await send_audio(ws, pcm[:16000])
            opened.append((ws, s))
        ids = [s["session"] for _, s in opened]
        assert {i[:2] for i in ids} == {"a-", "b-"}, ids  # new sessions land on both
        for ws, _ in opened:
            await ws.close()  # every one dropped
        for _, s in opened:  # every resume reaches the instance holding its session
            ws = await http.ws_connect(ws_path(s["session"]))
            again = await start(ws, session=s["session"], resume_token=s["resume_token"])
            assert again["resumed"] is True and again["session"] == s["session"]
            assert again["received"] == 16000
            await ws.send_json({"type": "stop"})
            await until(ws, "stopped")
            await ws.close()
        # on disk, each session is where its prefix says
        for sid in ids:
            where = proxy.a.out if sid.startswith("a-") else proxy.b.out
            assert (where / sid / "events.jsonl").exists()

        # a resume that reaches the wrong instance (here: the URL names a b- session, the
        # message an a- one) is refused, naming the fix; no new session is started
        a_id = next(i for i in ids if i.startswith("a-"))
        b_id = next(i for i in ids if i.startswith("b-"))
        ws = await http.ws_connect(ws_path(b_id))
        hello = await ws.receive_json(timeout=30)
        assert hello["type"] == "hello"
        await ws.send_json(
            {"type": "start", "version": 1, "sample_rate": 16000, "channels": 1,
             "format": "int16", "session": a_id, "resume_token": "x" * 32}
        )  # fmt: skip
        err = (await until(ws, "error"))[-1]
        assert err["code"] == "wrong_process" and "?session=" in err["message"], err
        await ws.close()


async def test_forwarded_headers_are_believed_from_the_proxy_only(proxy: Any) -> None:
    # through the proxy: the page's origin is https://rxaudio.test:PORT, and it is accepted
    # (the instance, reached over plain HTTP, learns the public scheme from nginx)
    async with public(proxy) as http:
        ws = await http.ws_connect(ws_path())
        assert (await ws.receive_json(timeout=30))["type"] == "hello"
        await ws.close()
        # another site's page is still refused behind the proxy
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(ws_path(), headers={"Origin": "https://evil.example"})
        assert info.value.status == 403
    lies = {
        "Host": f"127.0.0.1:{proxy.a.port}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": f"rxaudio.test:{proxy.https}",
        "Origin": proxy.origin,
    }
    # a client at another address saying the same is not believed: its Origin is not the
    # page this server sees it on
    conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=conn) as other:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await other.ws_connect(f"http://127.0.0.1:{proxy.a.port}/ws", headers=lies)
        assert info.value.status == 403
        # nor can it pass the DNS-rebinding check by naming an allowed host it did not use
        async with other.get(
            f"http://127.0.0.1:{proxy.a.port}/healthz",
            headers={"Host": "evil.example", "X-Forwarded-Host": "rxaudio.test"},
        ) as r:
            assert r.status == 421
    # from the named proxy's address the same headers are the proxy's word
    async with aiohttp.ClientSession() as trusted:
        ws = await trusted.ws_connect(f"http://127.0.0.1:{proxy.a.port}/ws", headers=lies)
        assert (await ws.receive_json(timeout=30))["type"] == "hello"
        await ws.close()


def test_the_recipes_timeouts_outlast_the_heartbeat() -> None:
    """nginx cuts a proxied connection silent for proxy_read_timeout; the server's pings (every
    --heartbeat seconds) must come well within it, or idle sessions would be cut."""
    text = RECIPE.read_text()
    heartbeat = ServerConfig.__dataclass_fields__["heartbeat_s"].default
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"^\s*{directive} (\d+)s;", text, re.M)
        assert m, directive
        assert int(m.group(1)) >= 10 * float(heartbeat), (directive, m.group(1), heartbeat)


async def test_an_idle_session_behind_the_proxy_is_not_cut(proxy: Any, pcm: np.ndarray) -> None:
    """A session that sends nothing for several heartbeats stays up through nginx (the
    instances ping every 2 s here; nginx passes pings and pongs)."""
    async with public(proxy) as http:
        ws = await http.ws_connect(ws_path())
        await start(ws)
        await send_audio(ws, pcm[:8000])
        # no audio for 7 s (3.5 heartbeats); reading on, as a browser does, answers the pings
        loop = asyncio.get_running_loop()
        end = loop.time() + 7.0
        while (left := end - loop.time()) > 0:
            try:  # (receive's own timeout restarts at every ping it answers)
                msg = await asyncio.wait_for(ws.receive(), left)
            except TimeoutError:
                break
            assert msg.type == aiohttp.WSMsgType.TEXT, msg  # never a close
        assert not ws.closed
        await send_audio(ws, pcm[8000:16000])
        await ws.send_json({"type": "stop"})
        stopped = (await until(ws, "stopped"))[-1]
        assert stopped["received"] == 16000
        await ws.close()
