"""Resource limits and request checks: rates, storage budgets, connections, Host names.

Pure Python (the connection guard excepted, which hooks aiohttp's server): every rule is
testable with plain calls and a fake clock. The limits themselves are fields of
:class:`~rxaudio.server.config.ServerConfig`; ``docs/apps/serve.md`` lists them with their flags.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .config import Limit

log = logging.getLogger("rxaudio.server")

WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


class TokenBucket:
    """``rate`` events per second on average, bursts up to ``burst``; ``rate`` 0: unlimited."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; ``False`` when none is left (the event is refused)."""
        if self.rate <= 0:
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class WindowCounter:
    """At most ``limit`` events in any ``window`` seconds (a sliding window); 0: unlimited."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.times: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Count an event at ``now``; ``False`` (and not counted) when the window is full."""
        if self.limit <= 0:
            return True
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


BLOCK = 4096  # a file's or a folder's smallest cost on disk
ST_BLOCK = 512  # the unit of st_blocks (POSIX), whatever the file system's block size


def disk_cost(n: int) -> int:
    """What a file of ``n`` bytes costs on disk: whole blocks (at least one, for its inode)."""
    return max(1, -(-n // BLOCK)) * BLOCK


def tree_bytes(path: str) -> int:
    """Disk space used under ``path``: its files' and folders' blocks (0 when missing)."""
    total = 0
    for root, dirs, names in os.walk(path):
        for n in (*names, *dirs):
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            blocks = getattr(st, "st_blocks", None)
            total += blocks * ST_BLOCK if blocks is not None else disk_cost(st.st_size)
    return total


class StorageBudget:
    """Bytes written under ``--out``: the total (files found at start-up included) and its cap.

    ``charge`` is asked before every write; a write that would pass the cap is refused and
    nothing is written, so no file is ever cut short by the limit. Once a write was refused the
    budget counts as full (new sessions are refused) until a fresh count of the folder, taken
    at most every ``rescan_s`` seconds while full, finds that space was freed.
    """

    def __init__(
        self,
        limit: int | None,
        path: str | None = None,
        *,
        rescan_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.path = path
        self.used = tree_bytes(path) if path is not None else 0
        self.refused = False
        self._rescan_s = rescan_s
        self._clock = clock
        self._scanned = clock()

    def charge(self, n: int) -> bool:
        """Reserve ``n`` bytes; ``False`` (nothing reserved) when that would pass the cap."""
        if self.limit is not None and self.used + n > self.limit:
            self.refused = True
            return False
        self.used += n
        return True

    @property
    def full(self) -> bool:
        """Whether the cap was reached (new sessions are refused)."""
        if self.limit is None:
            return False
        if self.refused or self.used >= self.limit:
            now = self._clock()
            if self.path is not None and now - self._scanned >= self._rescan_s:
                self._scanned = now
                self.used = tree_bytes(self.path)
                self.refused = self.used >= self.limit
            return self.refused or self.used >= self.limit
        return False


# ---- Host names (DNS rebinding) -------------------------------------------------------------
def split_host(host: str) -> str:
    """The name or address of a ``Host`` header value, without port, brackets or final dot.

    An empty string for a malformed value (a port that is not a number, text after ``]``,
    two final dots), which no rule accepts.
    """
    h = host.strip().lower()
    port = ""
    if h.startswith("["):  # [v6]:port
        end = h.find("]")
        if end < 0:
            return ""
        h, rest = h[1:end], h[end + 1 :]
        if (rest and not rest.startswith(":")) or not isinstance(_ip(h), ipaddress.IPv6Address):
            return ""
        port = rest[1:]
    elif h.count(":") == 1:
        h, port = h.split(":")
    elif ":" in h:  # a bare IPv6 address is not a valid Host
        return ""
    if port and not port.isdigit():
        return ""
    if h.endswith(".."):
        return ""
    return h[:-1] if h.endswith(".") else h


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def host_allowed(host: str, bind: str, allowed: Iterable[str]) -> bool:
    """Whether a request's ``Host`` names this server.

    Accepted: ``localhost``, the bind address (by name or address), any ``--allowed-host``
    (``*`` accepts everything), and, when bound to every interface, any IP address. An IP
    address can never be rebound by a DNS answer, so it is safe where the server listens on it;
    a name is accepted only when it was configured.
    """
    allowed = {split_host(a) for a in allowed}
    if "*" in allowed:
        return True
    name = split_host(host)
    if not name:
        return False
    bind_name = split_host(bind) if bind not in WILDCARDS else bind
    if name == "localhost" or name in allowed or name == bind_name:
        return True
    addr = _ip(name)
    if addr is None:
        return False
    if bind in WILDCARDS:
        return True
    bind_addr = _ip(bind_name)
    if bind_addr is None:  # bound by name (e.g. localhost): its loopback addresses
        return addr.is_loopback and bind_name == "localhost"
    return addr == bind_addr or (addr.is_loopback and bind_addr.is_loopback)


def origin_allowed(origin: str, scheme: str, host: str, page_port: int | None = None) -> bool:
    """Whether a browser's ``Origin`` is this server's own page (scheme, name and port).

    ``page_port``: a worker of ``rxaudio serve --processes N`` is reached on its own port by
    the page served from the main port, so that port, with the same scheme and name, is its
    own page too.
    """
    given = origin.strip().lower().rstrip("/")
    if given == f"{scheme}://{host}".lower():
        return True
    if page_port is None:
        return False
    page = f"{scheme}://{without_port(host)}".lower()
    default = {"http": 80, "https": 443}.get(scheme)
    return given == f"{page}:{page_port}" or (page_port == default and given == page)


def without_port(host: str) -> str:
    """A ``Host`` header value without its port (``[v6]`` keeps its brackets)."""
    name = host.strip()
    if name.startswith("["):
        return name[: name.find("]") + 1] if "]" in name else name
    return name.split(":", 1)[0] if name.count(":") == 1 else name


# ---- reverse proxies --------------------------------------------------------------------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (addresses or CIDR networks) as networks."""
    from ..errors import ConfigError

    nets = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"serve: --trusted-proxy {item!r} is not an IP address or network; give the "
                "proxy's address as it connects to this server (e.g. 127.0.0.1 or 10.0.0.0/24)"
            ) from None
    return tuple(nets)


def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a forwarded ``for``: ``1.2.3.4``, ``1.2.3.4:5``, ``[v6]:5``, ``v6``."""
    t = text.strip().strip('"')
    if t.startswith("["):
        t = t[1 : t.find("]")] if "]" in t else ""
    elif t.count(":") == 1:
        t = t.split(":")[0]
    a = _ip(t)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def trusted(peer: str | None, nets: tuple[Network, ...]) -> bool:
    """Whether the TCP peer ``peer`` is one of the named proxies."""
    a = _addr(peer) if peer else None
    return a is not None and any(a in n for n in nets)


def forwarded_view(
    peer: str | None,
    headers: Any,
    nets: tuple[Network, ...],
    forwarded: Iterable[Any] = (),
) -> dict[str, str]:
    """What a trusted proxy says about the request: ``scheme``, ``host`` and ``remote``.

    Empty unless ``peer`` (the connection's address) is in ``nets``: from anyone else the
    headers are the client's own words and are ignored. ``forwarded`` is the request's parsed
    RFC 7239 ``Forwarded`` header (aiohttp's ``request.forwarded``, one mapping per proxy);
    when present it wins over ``X-Forwarded-Proto`` / ``-Host`` / ``-For``. The scheme and
    host are the last proxy's (the one named); the client is the rightmost ``for`` address
    that is not itself a named proxy.
    """
    if not nets or not trusted(peer, nets):
        return {}
    elems = list(forwarded)
    if elems:
        last = elems[-1]
        proto, host = last.get("proto"), last.get("host")
        fors = [str(e.get("for", "")) for e in elems]
    else:
        proto = _last(headers.get("X-Forwarded-Proto", ""))
        host = _last(headers.get("X-Forwarded-Host", ""))
        fors = [f for f in headers.get("X-Forwarded-For", "").split(",") if f.strip()]
    view: dict[str, str] = {}
    if proto and proto.lower() in ("http", "https"):
        view["scheme"] = proto.lower()
    if host:
        view["host"] = host.strip()
    for f in reversed(fors):
        a = _addr(f)
        if a is None:
            break  # an obfuscated or unknown hop: the chain of facts ends here
        view["remote"] = str(a)
        if not any(a in n for n in nets):
            break
    return view


def _last(value: str) -> str | None:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return parts[-1] if parts else None


# ---- connections ----------------------------------------------------------------------------
class ConnectionGuard:
    """Caps the TCP connections of an aiohttp server and the time to send the first request.

    aiohttp has neither option, so :meth:`install` wraps the ``connection_made`` and
    ``connection_lost`` hooks of the runner's :class:`aiohttp.web.Server` (public methods that
    every request handler calls). A connection past ``max_connections`` is closed at once; one
    that has not completed its first HTTP request head within ``request_timeout`` seconds is
    closed then (a request seen by the app's middleware marks it, :meth:`seen`).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        request_timeout: float,
        on_limit: Callable[[Limit], None],
    ) -> None:
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.on_limit = on_limit
        self.open = 0
        # per connection (id() of its handler: aiohttp's handlers have slots, no weakrefs):
        # [requests begun, requests in progress]
        self._state: dict[int, list[int]] = {}

    def begin(self, handler: Any) -> None:
        """A request arrived on ``handler``'s connection (the app's middleware calls it)."""
        st = self._state.get(id(handler))
        if st is not None:
            st[0] += 1
            st[1] += 1

    def end(self, handler: Any) -> None:
        """That request was answered (a WebSocket: when it closed)."""
        st = self._state.get(id(handler))
        if st is not None:
            st[1] -= 1

    def install(self, server: Any) -> None:
        """Hook ``server`` (an ``aiohttp.web.Server``, e.g. ``runner.server``)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            self.open += 1
            loop = asyncio.get_running_loop()
            if self.max_connections and self.open > self.max_connections:
                self.on_limit(Limit.CONNECTIONS)
                # cut it once aiohttp's request task for it has started (two loop turns):
                # closing inside connection_made leaves that task asserting on a dead handler
                loop.call_soon(loop.call_soon, transport.abort)
                return
            self._state[id(handler)] = [0, 0]
            if self.request_timeout > 0:
                loop.call_later(self.request_timeout, self._expire, handler, transport, 0)

        def connection_lost(handler: Any, exc: BaseException | None) -> None:
            self.open -= 1
            self._state.pop(id(handler), None)
            lost(handler, exc)

        server.connection_made = connection_made
        server.connection_lost = connection_lost

    def _expire(self, handler: Any, transport: Any, begun: int) -> None:
        """Every ``request_timeout`` s: a connection that is not answering a request and began
        no new one since the last look (a silent or a slow client) is closed."""
        st = self._state.get(id(handler))
        if st is None or transport.is_closing():
            return
        if st[1] == 0 and st[0] == begun:
            self.on_limit(Limit.REQUEST_TIMEOUT)
            transport.close()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.request_timeout, self._expire, handler, transport, st[0])
