"""``--trusted-proxy``: forwarded scheme, host and client, believed from named proxies only."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from rxaudio.errors import ConfigError
from rxaudio.server.config import ServerConfig, split_instance
from rxaudio.server.limits import forwarded_view, proxy_networks

NETS = proxy_networks(["127.0.0.1", "10.0.0.0/24", "::1"])
XFF = CIMultiDict(
    {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "rxaudio.example.org",
        "X-Forwarded-For": "203.0.113.9, 10.0.0.7",
    }
)


def test_x_forwarded_headers_from_a_named_proxy() -> None:
    view = forwarded_view("127.0.0.1", XFF, NETS)
    # the client: the rightmost address that is not itself a named proxy
    assert view == {"scheme": "https", "host": "rxaudio.example.org", "remote": "203.0.113.9"}
    assert forwarded_view("10.0.0.44", XFF, NETS)["scheme"] == "https"  # a network
    assert forwarded_view("::1", XFF, NETS)["host"] == "rxaudio.example.org"
    assert forwarded_view("::ffff:127.0.0.1", XFF, NETS)["scheme"] == "https"  # v4-mapped


@pytest.mark.parametrize("peer", ["192.0.2.1", "10.0.1.1", "127.0.0.2", None, "", "garbage"])
def test_the_same_headers_from_anyone_else_are_ignored(peer: str | None) -> None:
    assert forwarded_view(peer, XFF, NETS) == {}


def test_nothing_is_believed_without_trusted_proxies() -> None:
    assert forwarded_view("127.0.0.1", XFF, ()) == {}


def test_rfc7239_forwarded_wins_and_odd_values_are_dropped() -> None:
    fwd = [
        {"for": "198.51.100.3", "proto": "http"},
        {"for": "[2001:db8::1]:4711", "proto": "https", "host": "a.example"},
    ]
    view = forwarded_view("127.0.0.1", XFF, NETS, fwd)
    assert view == {"scheme": "https", "host": "a.example", "remote": "2001:db8::1"}
    odd = CIMultiDict({"X-Forwarded-Proto": "gopher", "X-Forwarded-For": "_hidden"})
    assert forwarded_view("127.0.0.1", odd, NETS) == {}


def test_bad_proxy_addresses_and_instance_names_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"--trusted-proxy 'proxy\.lan' is not an IP address"):
        ServerConfig(out_dir=None, trusted_proxies=("proxy.lan",))
    for bad in ("a-b", "", "x" * 17, "ü"):
        with pytest.raises(ConfigError, match="--instance must be 1-16 letters or digits"):
            ServerConfig(out_dir=None, instance=bad)


def test_instance_prefixes_and_worker_marks_coexist() -> None:
    from rxaudio.server.supervisor import worker_of

    local = "bxyzxyzxyzxyzxy-"  # 16 characters, as new_session_id makes them
    assert split_instance("a1-" + local) == ("a1", local)
    assert split_instance(local) == (None, local)
    assert split_instance("a-" + local[:10]) == (None, "a-" + local[:10])
    assert worker_of("a1-" + local, 4) == worker_of(local, 4) == 1  # "b": worker 1


async def test_the_server_checks_host_and_origin_with_the_forwarded_view(tmp_path) -> None:
    """In process: a proxy at 127.0.0.1 says the page is https://pub.example; a WebSocket
    with that Origin is accepted; the same from a server trusting another address is not."""
    import aiohttp
    from aiohttp.test_utils import TestServer

    from rxaudio.server import create_app

    lies = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pub.example",
        "Origin": "https://pub.example",
    }
    for proxies, ok in ((("127.0.0.1",), True), (("127.0.0.9",), False)):
        cfg = ServerConfig(
            out_dir=str(tmp_path / "out"), trusted_proxies=proxies, allowed_hosts=("pub.example",)
        )
        async with TestServer(create_app(cfg), host="127.0.0.1") as srv:
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{srv.port}/ws"
                if ok:
                    ws = await http.ws_connect(url, headers=lies)
                    assert (await ws.receive_json(timeout=10))["type"] == "hello"
                    await ws.close()
                else:
                    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                        await http.ws_connect(url, headers=lies)
                    assert info.value.status == 403
