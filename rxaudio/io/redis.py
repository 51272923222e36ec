"""One Redis policy: how rxaudio connects to Redis, retries, and tells an outage from a mistake.

Every Redis user in rxaudio goes through here: the ``redis`` sink's writer thread, the
``redis_src`` reader (and with it ``rxaudio worker``) and ``rxaudio serve --redis``'s one
``redis.asyncio`` client.

Connecting
    :func:`connect` (blocking) and :func:`connect_async` build a client from a URL with the
    same options: ``timeout_s`` for connecting and for each command, a client name, and no
    retries inside the client.

Classifying
    :func:`classify` sorts a failure into "Redis is away, or cannot take writes now: retry"
    (refused or lost connections, timeouts, loading, out of memory, a read-only replica) and
    "permanent: say what and the fix" (a refused login, a host name that does not resolve, a
    key that holds no stream, any other refusal), with the messages every user prints.

Retrying
    One back-off schedule, redis-py's :class:`~redis.backoff.ExponentialBackoff` (50 ms
    doubling to 1 s), and one outage clock, :class:`Outage`: an outage runs from the first
    failure to the next success, and one longer than ``retry_s`` is given up
    (:class:`GiveUp`). A blocking caller that may sleep between tries (the reader) runs its
    commands through redis-py's :class:`~redis.retry.Retry` (:func:`call`), with the outage
    as its failure handler and its wait. Where redis-py's retrying does not fit:

    * Inside the clients (``retry=Retry(NoBackoff(), 0)``): a client that sends a command
      again after its reply was lost writes an XADD twice (the sink reads the stream back
      before it sends anything again), and a client sleeping between tries inside a command
      cannot be stopped (the server's event loop, a disposed sink).
    * The limit: ``Retry`` counts tries; ours is a duration (``retry_s``), however many tries
      fit in it.
    * The waits of the sink's writer thread (on its condition, so that a dispose or a full
      buffer wakes it at once) and of the server's writer task (on the event loop): both take
      the wait from :meth:`Outage.failed` and wait their own way.
    * The bounded queues (the sink's ``buffer``, the server's) are ours: ``Retry`` holds
      nothing.

Timing here is wall-clock (``time.monotonic``) on purpose: back-off and outage limits are about
a network peer, not about the stream's sample time.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from redis.backoff import ExponentialBackoff

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0
"""How long connecting or one command may take, by default, before the connection counts as
lost."""
BACKOFF_FIRST_S = 0.05
"""The wait after the first failure of an outage; it doubles after each failure..."""
BACKOFF_MAX_S = 1.0
"""...up to this."""
# getaddrinfo answers that no retry will change (a temporary DNS failure is retried)
NO_SUCH_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def backoff() -> ExponentialBackoff:
    """The back-off schedule: redis-py's, 50 ms after the first failure, doubling to 1 s.

    redis-py waits ``base * 2**failures`` after the ``failures``-th failure (counted from 1),
    so the base is half the first wait."""
    from redis.backoff import ExponentialBackoff

    return ExponentialBackoff(cap=BACKOFF_MAX_S, base=BACKOFF_FIRST_S / 2)


def _options(timeout_s: float, name: str, retry: Any) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": retry,
        "client_name": name,
    }


def connect(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, name: str) -> Any:
    """A blocking redis-py client for ``url`` that never retries on its own (its callers do,
    as this module says); it connects lazily, on its first command."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, **_options(timeout_s, name, Retry(NoBackoff(), 0)))


def connect_async(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, name: str) -> Any:
    """A ``redis.asyncio`` client for ``url``, with :func:`connect`'s options. One client is
    one connection pool: concurrent commands (a blocking XREAD beside a pipeline of XADDs)
    each take a connection of their own. A command must not block longer than ``timeout_s``."""
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aredis.Redis.from_url(url, **_options(timeout_s, name, Retry(NoBackoff(), 0)))


# --- what a failure means -----------------------------------------------------------------


def why(exc: BaseException) -> str:
    """A failure's cause in a few words (``Connection refused``)."""
    for e in (exc.__cause__, exc.__context__, exc):
        if isinstance(e, OSError) and not isinstance(e, socket.gaierror) and e.errno:
            return os.strerror(e.errno)  # asyncio's "Connect call failed (...)" says less
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    return str(exc).strip().rstrip(".") or type(exc).__name__


def gaierror(exc: BaseException) -> socket.gaierror | None:
    """The name-resolution failure behind ``exc``, if that is what it is."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, socket.gaierror):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failure means (see :func:`classify`)."""

    retry: bool
    """Redis is away, or cannot take writes now: try again (within ``retry_s``)."""
    why: str
    """The cause in a few words: the OS's or the server's."""
    what: str
    """What failed, as a message says it (for a failure that is retried: ``""``)."""
    fix: str
    """What to do about it."""


UNREACHABLE_FIX = "start redis-server there"


def classify(exc: BaseException, *, shown: str, stream: str) -> Failure:
    """Whether ``exc`` (from a command on ``stream`` at ``shown``, the url fit for messages)
    is worth retrying, and what to say about it."""
    import redis.exceptions as rex

    cause = why(exc)

    def permanent(what: str, fix: str) -> Failure:
        return Failure(False, cause, what, fix)

    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError):
        return permanent(
            f"{shown} refused the login ({cause})", "check the user name and password in url"
        )
    if isinstance(exc, rex.ConnectionError | rex.TimeoutError | OSError):  # loading, too
        gai = gaierror(exc)
        if gai is not None and gai.errno in NO_SUCH_HOST:
            return permanent(
                f"cannot resolve the host of {shown} ({gai.strerror})", "check the host name in url"
            )
        return Failure(True, cause, "", UNREACHABLE_FIX)
    if isinstance(exc, rex.OutOfMemoryError):
        return Failure(
            True, cause, "", "give redis more memory (maxmemory) or trim the stream (maxlen)"
        )
    if isinstance(exc, rex.ReadOnlyError):
        return Failure(True, cause, "", "point url at the primary")
    if isinstance(exc, rex.ResponseError):
        if "WRONGTYPE" in str(exc):
            return permanent(
                f"the key {stream!r} at {shown} holds no stream ({cause})", "name another stream"
            )
        return permanent(
            f"{shown} refused a command on stream {stream!r} ({cause})",
            "see the server's message",
        )
    return permanent(f"unexpected {type(exc).__name__}: {exc}", "please report this")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server cannot be reached now (worth retrying)."""
    return classify(exc, shown="", stream="").retry


class GiveUp(Exception):
    """No retry will help: a permanent failure, or an outage that lasted ``retry_s``."""

    def __init__(self, failure: Failure, waited: float | None = None) -> None:
        super().__init__(failure.what or failure.why)
        self.failure = failure
        self.waited = waited
        """How long the outage lasted, in seconds; ``None``: a permanent failure."""

    @property
    def outage(self) -> bool:
        """Whether it was an outage that lasted too long (else a permanent failure)."""
        return self.waited is not None


class Outage:
    """The clock and back-off of one outage (see the module's docs).

    :meth:`failed` after each failed attempt (it raises :class:`GiveUp` when no retry will
    help) returns how long to wait before the next; :meth:`ok` after a success ends the
    outage.

    Parameters
    ----------
    retry_s
        How long one outage may last.
    shown, stream
        The url fit for messages and the stream, for :func:`classify`.
    clock
        Seconds, monotonic (tests give a fake one).
    """

    def __init__(
        self,
        retry_s: float,
        *,
        shown: str,
        stream: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_s, self.shown, self.stream, self.clock = retry_s, shown, stream, clock
        self.since: float | None = None
        """When the outage began (``None``: no outage)."""
        self.failures = 0
        self.last: Failure | None = None
        """The latest failure of this outage."""
        self.wait = 0.0
        """The wait :meth:`failed` returned last."""
        self._backoff = backoff()

    @property
    def away(self) -> bool:
        """Whether an attempt has failed since the last success."""
        return self.since is not None

    def waited(self) -> float:
        """Seconds since the outage began (0 when there is none)."""
        return 0.0 if self.since is None else self.clock() - self.since

    def failed(self, exc: BaseException, *, started: float | None = None) -> float:
        """Note a failed attempt (begun at ``started``, by :attr:`clock`) and return the
        seconds to wait before the next; :class:`GiveUp` when ``exc`` is permanent or the
        outage has lasted ``retry_s``."""
        failure = classify(exc, shown=self.shown, stream=self.stream)
        if not failure.retry:
            raise GiveUp(failure) from exc
        now = self.clock()
        if self.since is None:
            self.since = now if started is None else started
        self.failures += 1
        self.last = failure
        left = self.retry_s - (now - self.since)
        if left <= 0:
            raise GiveUp(failure, now - self.since) from exc
        self.wait = min(self._backoff.compute(self.failures), left)
        return self.wait

    def ok(self) -> None:
        """A success: the outage (if any) is over."""
        self.since, self.failures, self.last = None, 0, None


def call(do: Callable[[], T], outage: Outage, *, drop: Callable[[], None] | None = None) -> T:
    """``do()``, tried again with back-off while Redis is away, for a caller that may sleep
    between tries (a reader thread): redis-py's :class:`~redis.retry.Retry` runs the loop,
    ``outage`` decides (:class:`GiveUp` when no retry will help) and sets each wait;
    ``drop`` runs after each failure (to drop a broken connection)."""
    from redis.backoff import AbstractBackoff
    from redis.retry import Retry

    class _Waits(AbstractBackoff):
        def compute(self, failures: int) -> float:
            return outage.wait

    def fail(exc: Exception) -> None:
        if drop is not None:
            drop()
        outage.failed(exc)

    result = Retry(_Waits(), -1, (Exception,)).call_with_retry(do, fail)
    outage.ok()
    return result
