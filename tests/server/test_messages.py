"""The protocol's vocabulary: error codes, close codes, their docs tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rxaudio.server.messages import (
    CLOSES,
    ERRORS,
    ERRORS_BEGIN,
    ERRORS_END,
    Close,
    ErrorCode,
    error_event,
    with_tables,
)
from rxaudio.server.protocol import ProtocolError, parse_start, parse_text

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_tables_are_generated_from_the_enums() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert ERRORS_BEGIN in doc and ERRORS_END in doc
    assert with_tables(doc) == doc, "run: python -m rxaudio.server.messages"


def test_every_code_and_close_is_described() -> None:
    assert set(ERRORS) == set(ErrorCode) and set(CLOSES) == set(Close)
    assert all(cause for cause, _ in ERRORS.values())


def test_every_code_the_server_sends_is_declared() -> None:
    sent: set[str] = set()
    for path in (ROOT / "rxaudio" / "server").glob("*.py"):
        sent |= set(re.findall(r"ErrorCode\.([A-Z_]+)", path.read_text(encoding="utf-8")))
        # no code is a bare string any more
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'(ProtocolError|error_event)\(\s*"', text), path.name
        assert not re.search(r'"code": "', text), path.name
    assert sent <= {c.name for c in ErrorCode}
    assert len(sent) >= 20


def test_an_error_event_encodes_its_code_as_the_plain_string() -> None:
    event = error_event(ErrorCode.BAD_JSON, "not JSON")
    assert json.loads(json.dumps(event)) == {
        "type": "error",
        "code": "bad_json",
        "message": "not JSON",
    }
    assert ErrorCode("too_big") is ErrorCode.TOO_BIG and int(Close.IDLE) == 4008


def test_protocol_errors_carry_typed_codes_and_closes() -> None:
    try:
        parse_text("{")
    except ProtocolError as err:
        assert err.code is ErrorCode.BAD_JSON and err.close is None
    else:
        raise AssertionError("bad JSON accepted")
    try:
        parse_start({"type": "start", "version": 9, "sample_rate": 16000})
    except ProtocolError as err:
        assert err.code is ErrorCode.BAD_VERSION and err.close is Close.BAD_VERSION
        assert ERRORS[err.code][1] is err.close  # the docs table says the same close
    else:
        raise AssertionError("version 9 accepted")


def test_started_is_encoded_once_for_clients_and_listeners() -> None:
    from rxaudio.server.messages import Started

    common = dict(
        session="abc", received=5, seq=2, sample_rate=48000, channels=2, pipeline_rate=16000
    )
    client = Started(
        **common,
        settings={"threshold": 0.5},
        events=("vad",),
        resumed=True,
        resume_token="tok",
        format="int16",
    ).encode()
    assert client == {
        "type": "started",
        "session": "abc",
        "resume_token": "tok",
        "resumed": True,
        "received": 5,
        "seq": 2,
        "sample_rate": 48000,
        "channels": 2,
        "format": "int16",
        "pipeline_rate": 16000,
        "settings": {"threshold": 0.5},
        "events": ["vad"],
    }
    assert (
        "resume_url"
        in Started(**common, settings={}, events=(), resume_url="wss://h:1/ws?session=abc").encode()
    )
    listener = Started(**common, settings={}, events=("level",), listen=True).encode()
    assert listener["listen"] is True and listener["resumed"] is False
    assert not {"resume_token", "format", "resume_url"} & set(listener)


def test_the_servers_other_events_are_encoded_by_their_records() -> None:
    from rxaudio.server.messages import Stats, Stopped, config_event, pong_event

    assert Stopped("s", 10).encode() == {"type": "stopped", "session": "s", "received": 10}
    assert Stopped("s", 10, "storage_full").encode()["reason"] == "storage_full"
    stats = Stats("s", 16000, 1.0, 8, 1, 0, 2).encode()
    assert list(stats) == [
        "type",
        "session",
        "received",
        "seconds",
        "frames",
        "utterances",
        "dropped",
        "queue",
    ]
    assert config_event({"threshold": 0.6}) == {"type": "config", "settings": {"threshold": 0.6}}
    assert pong_event(None) == {"type": "pong"} and pong_event(7) == {"type": "pong", "id": 7}
