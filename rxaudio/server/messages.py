"""The protocol's vocabulary, typed: error codes, close codes and the server's events.

Every ``error`` event's ``code`` is an :class:`ErrorCode` (built by :func:`error_event`), every
close a :class:`Close`; the server's own events are typed records (:class:`Started`,
:class:`Stopped`, :class:`Stats`) or built by one function each (``hello`` in
:mod:`.protocol`, :func:`config_event`, :func:`pong_event`); the pipeline's events are the
frames' own dict forms (``rxaudio.frames``). ``docs/protocol.md``'s
error and close tables are generated from :data:`ERRORS` and :data:`CLOSES`
(:func:`with_tables`; ``tests/server/test_messages.py`` fails when they are stale). Pure
Python: no aiohttp, no numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` event: for programs (``message`` is for people)."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_PROCESS = "wrong_process"
    UNSUPPORTED_RATE = "unsupported_rate"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED_CHANNELS = "unsupported_channels"
    BAD_VERSION = "bad_version"
    BAD_CONFIG = "bad_config"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    BAD_FRAME = "bad_frame"
    TOO_BIG = "too_big"
    TOO_MANY_ERRORS = "too_many_errors"
    NO_SERVER_SOURCE = "no_server_source"
    PIPELINE_ERROR = "pipeline_error"
    TRANSCRIBE_FAILED = "transcribe_failed"
    SESSION_FAILED = "session_failed"
    SESSION_ENDED = "session_ended"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_SESSIONS = "too_many_sessions"
    START_TIMEOUT = "start_timeout"
    SESSION_STORAGE_LIMIT = "session_storage_limit"
    STORAGE_FULL = "storage_full"
    EVENTS_LOST = "events_lost"
    SOURCE_ERROR = "source_error"


class Close(IntEnum):
    """WebSocket close codes the server sends (RFC 6455's, and 4000-4999 private ones)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    BAD_VERSION = 4002
    TAKEN_OVER = 4005
    IDLE = 4008


# each code's cause, and the close that follows it (None: the connection stays open)
ERRORS: dict[ErrorCode, tuple[str, Close | None]] = {
    ErrorCode.BAD_JSON: (
        "text that is not JSON",
        None,
    ),
    ErrorCode.BAD_MESSAGE: (
        "not an object, no string `type`, a wrong field type, `start` without `sample_rate`, a "
        "malformed `session`",
        None,
    ),
    ErrorCode.UNKNOWN_TYPE: (
        "a `type` not in the table above",
        None,
    ),
    ErrorCode.WRONG_PROCESS: (
        "a resume reached a worker of `rxaudio serve --processes N`, or an instance behind a "
        "proxy (`--instance`), that does not hold the session: resume on the `resume_url` its "
        "`started` gave, or through a proxy that routes by the `?session=ID` in the WebSocket "
        "URL (an id that names none of the server's processes is unknown and starts a new "
        "session instead)",
        None,
    ),
    ErrorCode.UNSUPPORTED_RATE: (
        "`start` declares something the server cannot take",
        None,
    ),
    ErrorCode.UNSUPPORTED_FORMAT: (
        "`start` declares something the server cannot take",
        None,
    ),
    ErrorCode.UNSUPPORTED_CHANNELS: (
        "`start` declares something the server cannot take",
        None,
    ),
    ErrorCode.BAD_VERSION: (
        "`start.version` other than the integers 1 or 2",
        Close.BAD_VERSION,
    ),
    ErrorCode.BAD_CONFIG: (
        "an unknown option, a value out of range, settings the operators refuse (the old "
        "settings stay); `config` from a listener",
        None,
    ),
    ErrorCode.NOT_STARTED: (
        "binary audio, `config` or `stop` before `start`",
        None,
    ),
    ErrorCode.ALREADY_STARTED: (
        "a second `start` or `listen` without `stop`",
        None,
    ),
    ErrorCode.BAD_FRAME: (
        "a binary message that is not a whole number of sample frames, holds more than 1 s, or "
        "NaN/inf floats",
        None,
    ),
    ErrorCode.TOO_BIG: (
        "a binary message over 1 MiB or a text message over 64 KiB, before or after `start` (the "
        "hard limit at 4 MiB closes with 1009 without an event)",
        Close.TOO_BIG,
    ),
    ErrorCode.TOO_MANY_ERRORS: (
        "32 protocol errors on one connection",
        Close.POLICY,
    ),
    ErrorCode.NO_SERVER_SOURCE: (
        "`listen` on a server without `--source`",
        None,
    ),
    ErrorCode.PIPELINE_ERROR: (
        "the session's pipeline failed (the session ends; `start` again)",
        None,
    ),
    ErrorCode.TRANSCRIBE_FAILED: (
        "the session's recogniser failed: no more `transcript` events for it; its VAD and files "
        "go on",
        None,
    ),
    ErrorCode.SESSION_FAILED: (
        "audio sent after `pipeline_error`: the first frame is named with its size at once, "
        'later ones summed up once a second ("N more frames (B bytes) were dropped"); `start` '
        "again. Not counted toward `too_many_errors`",
        None,
    ),
    ErrorCode.SESSION_ENDED: (
        "the same for audio sent after the server ended the session (a limit, shutdown)",
        None,
    ),
    ErrorCode.RATE_LIMITED: (
        "more text messages than `--control-rate` per second (bursts of `--control-burst`)",
        Close.POLICY,
    ),
    ErrorCode.TOO_MANY_SESSIONS: (
        "more new sessions on this connection than `--sessions-per-minute` in 60 s",
        None,
    ),
    ErrorCode.START_TIMEOUT: (
        "neither `start` nor `listen` within `--start-timeout` seconds",
        Close.IDLE,
    ),
    ErrorCode.SESSION_STORAGE_LIMIT: (
        "the session's files reached `--max-session-bytes`; nothing more written, the session "
        "ends (`stopped` with `reason`)",
        None,
    ),
    ErrorCode.STORAGE_FULL: (
        "`--out` reached `--max-out-bytes`: the writing session ends; a new `start` is refused",
        None,
    ),
    ErrorCode.EVENTS_LOST: (
        "on resume: speech events that were not kept for replay (more than 1024 unacknowledged); "
        "they are in `events.jsonl`",
        None,
    ),
    ErrorCode.SOURCE_ERROR: (
        "to `listen` clients: the server's shared source failed (the session ends) or changed "
        "its format",
        None,
    ),
}

CLOSES: dict[Close, str] = {
    Close.NORMAL: "the client's own close is answered in kind",
    Close.GOING_AWAY: "the server shuts down, after every session was flushed (a client that "
    "does not take the close frame within the shutdown timeout has its connection cut)",
    Close.POLICY: "`too_many_errors` or `rate_limited`",
    Close.TOO_BIG: "`too_big`; a message over the hard limit (4 MiB) closes without an event",
    Close.BAD_VERSION: "`bad_version`",
    Close.TAKEN_OVER: "a resume on a new connection took the session over",
    Close.IDLE: "`start_timeout`: no `start` or `listen` within `--start-timeout`",
}


def error_event(code: ErrorCode, message: str) -> dict[str, Any]:
    """An ``error`` event: ``code`` for programs, ``message`` for people."""
    return {"type": "error", "code": code, "message": message}


ERRORS_BEGIN = (
    "<!-- errors: generated by rxaudio.server.messages.tables_markdown(); do not edit by hand"
    " (tests/server/test_messages.py fails when stale) -->"
)
ERRORS_END = "<!-- /errors -->"


def tables_markdown() -> str:
    """``docs/protocol.md``'s error-code and close-code tables."""
    out = ["| code | cause | close |", "|---|---|---|"]
    for code, (cause, close) in ERRORS.items():
        out.append(f"| `{code}` | {cause} | {'' if close is None else int(close)} |")
    out += ["", "| close | when |", "|---|---|"]
    out += [f"| {int(c)} | {when} |" for c, when in CLOSES.items()]
    return "\n".join(out) + "\n"


def with_tables(doc: str) -> str:
    """``doc`` (the text of ``docs/protocol.md``) with its generated tables renewed."""
    from .._generated import renew_block

    return renew_block(doc, ERRORS_BEGIN, ERRORS_END, tables_markdown())


if __name__ == "__main__":  # python -m rxaudio.server.messages: renew docs/protocol.md
    import sys

    path = sys.argv[1] if len(sys.argv) > 1 else "docs/protocol.md"
    with open(path, encoding="utf-8") as fh:
        text = with_tables(fh.read())
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


@dataclass(frozen=True, slots=True)
class Started:
    """The ``started`` event: a session began or resumed on this connection (``docs/protocol.md``).

    A client session carries its ``resume_token`` (the secret that resumes it) and the
    ``format`` the client declared; a listener (``listen``) carries neither. ``resume_url``
    only where the server runs several processes (resume on that worker's port).
    """

    session: str
    received: int
    seq: int
    sample_rate: int
    channels: int
    pipeline_rate: int
    settings: Mapping[str, Any]
    events: tuple[str, ...]
    resumed: bool = False
    resume_token: str | None = None
    format: str | None = None
    listen: bool = False
    resume_url: str | None = None

    def encode(self) -> dict[str, Any]:
        """The event as sent (a client's fields, or a listener's)."""
        d: dict[str, Any] = {"type": "started", "session": self.session}
        if self.resume_token is not None:
            d["resume_token"] = self.resume_token
        d["resumed"] = self.resumed
        if self.listen:
            d["listen"] = True
        d.update(received=self.received, seq=self.seq, sample_rate=self.sample_rate)
        d["channels"] = self.channels
        if self.format is not None:
            d["format"] = self.format
        d["pipeline_rate"] = self.pipeline_rate
        d["settings"] = self.settings
        d["events"] = list(self.events)
        if self.resume_url is not None:
            d["resume_url"] = self.resume_url
        return d


@dataclass(frozen=True, slots=True)
class Stopped:
    """The ``stopped`` event: the session ended for this connection (``reason`` when the
    server ended it: a limit, shutdown)."""

    session: str
    received: int
    reason: str | None = None

    def encode(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "stopped", "session": self.session, "received": self.received}
        if self.reason is not None:
            d["reason"] = self.reason
        return d


@dataclass(frozen=True, slots=True)
class Stats:
    """The ``stats`` event: a session's counts, every second of audio and at the end."""

    session: str
    received: int
    seconds: float
    frames: int
    utterances: int
    dropped: int
    queue: int

    def encode(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "session": self.session,
            "received": self.received,
            "seconds": self.seconds,
            "frames": self.frames,
            "utterances": self.utterances,
            "dropped": self.dropped,
            "queue": self.queue,
        }


def config_event(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config`` event: every live setting of the session, effective after a change."""
    return {"type": "config", "settings": settings}


def pong_event(ping_id: Any | None) -> dict[str, Any]:
    """The ``pong`` event, carrying the ``ping``'s ``id`` when it had one."""
    return {"type": "pong"} if ping_id is None else {"type": "pong", "id": ping_id}
