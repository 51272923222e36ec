"""The WebSocket protocol, version 2: message validation and binary frame decoding.

Pure Python and numpy, no aiohttp: every rule here is testable with plain calls. The full
description for client authors is ``docs/protocol.md``.

Client -> server text messages are JSON objects with a ``type``: ``start`` (declares the audio
format and options, or resumes a session), ``config`` (changes VAD settings live), ``stop``,
``listen`` (receive the server microphone's events instead of sending audio), ``ack``
(the last numbered speech event the client holds) and ``ping``. Version 1 clients are served
as before; version 2 added ``seq``/``ack``/replay and the resume secret (``docs/protocol.md``).
Binary messages are raw interleaved little-endian samples in the declared format.

Server -> client messages are JSON objects with a ``type`` and, for stream events, times in
seconds of the session's audio (sample index / rate, never wall-clock).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 2
VERSIONS = (1, 2)  # what ``start.version`` may say
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
FORMATS = {"int16": 2, "float32": 4}
MAX_CHANNELS = 2
MAX_FRAME_SECONDS = 1.0
MAX_MESSAGE_BYTES = 1 << 20
MAX_TEXT_BYTES = 1 << 16  # control messages are small; a bigger text message is refused

# close codes (RFC 6455 private range 4000-4999 plus the standard ones)
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_BAD_VERSION = 4002
CLOSE_TAKEN_OVER = 4005
CLOSE_IDLE = 4008  # no ``start`` or ``listen`` within the start timeout
CLOSE_TOO_BIG = 1009
MAX_ID_CHARS = 64  # ``ping.id`` strings

# What the server allows its clients beyond the operators' own ranges (None: the operator's
# bound): a closed lower bound where the operator's is open (JSON ``[min, max]`` is closed), a
# threshold that speech can still reach and leave, and durations bounded for per-session memory
# and latency (an utterance held up to 2 minutes, a segment confirmed within 10 s).
CLIENT_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "threshold": (0.01, 0.99),
    "neg_threshold": (None, 0.99),
    "min_speech_ms": (None, 10_000.0),
    "min_silence_ms": (None, 10_000.0),
    "max_ms": (1_000.0, 120_000.0),
}


def _tunable() -> dict[str, tuple[float, float]]:
    """The live settings' ranges: each operator option's own range, within CLIENT_BOUNDS."""
    from ..core.props import info_of
    from ..operators import buffer_utterance, hysteresis
    from .pipeline import HYSTERESIS_KEYS, UTTERANCE_KEYS

    out: dict[str, tuple[float, float]] = {}
    for factory, keys in ((hysteresis, HYSTERESIS_KEYS), (buffer_utterance, UTTERANCE_KEYS)):
        info = info_of(factory)
        for key in keys:
            rng = info.prop(key).range
            assert rng is not None and rng.lo is not None and rng.hi is not None, key
            lo, hi = CLIENT_BOUNDS.get(key, (None, None))
            if lo is None and rng.lo_open:
                raise AssertionError(f"{key}: an open lower bound needs a CLIENT_BOUNDS entry")
            out[key] = (
                float(rng.lo if lo is None else max(lo, rng.lo)),
                float(rng.hi if hi is None else min(hi, rng.hi)),
            )
    return out


# settings a client may change live (``config``) or pass in ``start.options``, with their
# [min, max]: generated from the operators' options, so a changed range changes here too
TUNABLE: dict[str, tuple[float, float]] = _tunable()
# options fixed at ``start`` (they shape the pipeline)
START_ONLY: dict[str, tuple[str, ...]] = {
    "events": ("level", "vad", "spectrogram"),
}


SHOW_CHARS = 40  # how much of a client's value an error message repeats


def show(value: Any) -> str:
    """A client's value for an error message: its ``repr``, cut to ``SHOW_CHARS`` characters.

    Error messages repeat what the client sent, so a long value must not be repeated whole (a
    megabyte of text echoed per error was a way to fill the server's memory).
    """
    try:
        text = repr(value)
    except Exception:  # e.g. an int too long to print
        text = f"<{type(value).__name__}>"
    if len(text) > SHOW_CHARS:
        text = text[: SHOW_CHARS - 3] + "..."
    return text


class ProtocolError(Exception):
    """A client message broke the protocol; ``code`` is the ``error`` event's code.

    ``close`` is the WebSocket close code when the connection must end, else ``None``.
    """

    def __init__(self, code: str, message: str, close: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close = close

    def event(self) -> dict[str, Any]:
        """The ``error`` event answering it."""
        return error_event(self.code, self.message)


def error_event(code: str, message: str) -> dict[str, Any]:
    """An ``error`` event: ``code`` for programs, ``message`` for people."""
    return {"type": "error", "code": code, "message": message}


def hello_event(
    *,
    modes: list[str],
    server: str,
    limits: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The first message on every connection."""
    return {
        "type": "hello",
        "version": PROTOCOL_VERSION,
        "versions": list(VERSIONS),
        "server": server,
        "modes": modes,
        "sample_rates": list(SAMPLE_RATES),
        "formats": list(FORMATS),
        "max_channels": MAX_CHANNELS,
        "max_frame_seconds": MAX_FRAME_SECONDS,
        "max_message_bytes": MAX_MESSAGE_BYTES,
        "tunable": {k: list(v) for k, v in TUNABLE.items()},
        "limits": limits or {},
        "defaults": defaults or {},
    }


@dataclass(frozen=True, slots=True)
class StartMessage:
    """A validated ``start``: the audio format the client will send and its options."""

    sample_rate: int
    channels: int
    format: str
    options: dict[str, float] = field(default_factory=dict)
    events: tuple[str, ...] = START_ONLY["events"]
    session: str | None = None
    resume_token: str | None = None
    ack: int | None = None

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one multi-channel sample frame."""
        return FORMATS[self.format] * self.channels


def parse_text(text: str) -> dict[str, Any]:
    """Decode a text message into a JSON object with a string ``type``."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"text messages must be JSON objects ({exc})") from None
    if not isinstance(msg, dict):
        raise ProtocolError(
            "bad_message", f"a message must be a JSON object, got {type(msg).__name__}"
        )
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", 'a message needs a string "type" field')
    return msg


def _int(msg: dict[str, Any], key: str, default: int | None = None) -> int:
    v = msg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError("bad_message", f'start: "{key}" must be an integer, got {show(v)}')
    return v


def parse_options(raw: Any, *, context: str) -> dict[str, float]:
    """Validate tunable settings (``start.options`` or ``config.options``)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ProtocolError("bad_config", f"{context}: options must be an object")
    out: dict[str, float] = {}
    for key, value in raw.items():
        if key in START_ONLY:
            continue
        if key not in TUNABLE:
            raise ProtocolError(
                "bad_config",
                f"{context}: unknown option {show(key)}; tunable options are {', '.join(TUNABLE)}",
            )
        lo, hi = TUNABLE[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not lo <= value <= hi:
            raise ProtocolError(
                "bad_config",
                f"{context}: {key} must be a number in [{lo}, {hi}], got {show(value)}",
            )
        out[key] = float(value)
    return out


def parse_start(msg: dict[str, Any]) -> StartMessage:
    """Validate a ``start`` message (raises :class:`ProtocolError`)."""
    version = msg.get("version", PROTOCOL_VERSION)
    if type(version) is not int or version not in VERSIONS:  # not True, not 1.0
        raise ProtocolError(
            "bad_version",
            f"start: protocol version {show(version)} is not supported; this server speaks "
            f"versions {', '.join(map(str, VERSIONS))} (an integer)",
            close=CLOSE_BAD_VERSION,
        )
    rate = _int(msg, "sample_rate", None) if "sample_rate" in msg else None
    if rate is None:
        raise ProtocolError("bad_message", 'start: "sample_rate" is required')
    if rate not in SAMPLE_RATES:
        raise ProtocolError(
            "unsupported_rate",
            f"start: sample_rate {rate} is not supported; use one of "
            f"{', '.join(map(str, SAMPLE_RATES))}",
        )
    channels = _int(msg, "channels", 1)
    if not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            "unsupported_channels",
            f"start: channels must be 1..{MAX_CHANNELS}, got {channels}",
        )
    fmt = msg.get("format", "int16")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ProtocolError(
            "unsupported_format",
            f"start: format {show(fmt)} is not supported; use one of {', '.join(FORMATS)}",
        )
    options = parse_options(msg.get("options"), context="start")
    events = START_ONLY["events"]
    raw_opts = msg.get("options") or {}
    if "events" in raw_opts:
        ev = raw_opts["events"]
        if not isinstance(ev, list) or any(
            not isinstance(e, str) or e not in START_ONLY["events"] for e in ev
        ):
            raise ProtocolError(
                "bad_config",
                f"start: options.events must be a list drawn from "
                f"{', '.join(START_ONLY['events'])}, got {show(ev)}",
            )
        events = tuple(ev)
    session = msg.get("session")
    if session is not None and (not isinstance(session, str) or not 8 <= len(session) <= 64):
        raise ProtocolError("bad_message", "start: session must be the id the server gave")
    token = msg.get("resume_token")
    if token is not None and (not isinstance(token, str) or not _TOKEN_RE.fullmatch(token)):
        raise ProtocolError(
            "bad_message", "start: resume_token must be the string the server gave in started"
        )
    ack = msg.get("ack")
    if ack is not None and (isinstance(ack, bool) or not isinstance(ack, int) or ack < 0):
        raise ProtocolError(
            "bad_message", f'start: "ack" must be a non-negative integer (a seq), got {show(ack)}'
        )
    return StartMessage(rate, channels, fmt, options, events, session, token, ack)


_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def parse_ack(msg: dict[str, Any]) -> int:
    """Validate an ``ack`` message; return its ``seq``."""
    seq = msg.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProtocolError(
            "bad_message", f'ack: "seq" must be a non-negative integer, got {show(seq)}'
        )
    return seq


def parse_ping_id(msg: dict[str, Any]) -> str | int | None:
    """The ``id`` of a ``ping`` (a string up to 64 characters or an integer), echoed in ``pong``."""
    pid = msg.get("id")
    if pid is None:
        return None
    if isinstance(pid, bool) or not isinstance(pid, str | int):
        raise ProtocolError(
            "bad_message", f'ping: "id" must be a string or an integer, got {show(pid)}'
        )
    if isinstance(pid, str) and len(pid) > MAX_ID_CHARS:
        raise ProtocolError("bad_message", f'ping: "id" is longer than {MAX_ID_CHARS} characters')
    return pid


def decode_audio(data: bytes, start: StartMessage) -> np.ndarray:
    """Decode one binary message into float32 ``(n, channels)`` samples.

    Raises :class:`ProtocolError` (``bad_frame``) for an empty message, a length that is not a
    whole number of sample frames, more than ``MAX_FRAME_SECONDS`` of audio, or NaN/inf floats.
    """
    width = start.bytes_per_frame
    n = len(data)
    if n == 0 or n % width:
        raise ProtocolError(
            "bad_frame",
            f"binary message of {n} bytes is not a whole number of {start.channels}-channel "
            f"{start.format} sample frames ({width} bytes each); the frame was dropped",
        )
    if n // width > MAX_FRAME_SECONDS * start.sample_rate:
        raise ProtocolError(
            "bad_frame",
            f"binary message holds {n // width} samples, more than {MAX_FRAME_SECONDS} s at "
            f"{start.sample_rate} Hz; send smaller frames (20-100 ms is typical)",
        )
    if start.format == "int16":
        a = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    else:
        a = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.isfinite(a).all():
            raise ProtocolError(
                "bad_frame", "float32 frame holds NaN or inf samples; the frame was dropped"
            )
        a = np.clip(a, -1.0, 1.0)
    return a.reshape(-1, start.channels)
