"""rxaudio serve --pipeline with display branches: a tee on the session's audio before vad."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import reactivex as rx

from rxaudio.apps.cli import main
from rxaudio.frames import AudioFrame, FeatureFrame
from rxaudio.operators import gain, level, mfcc, spectral
from rxaudio.pipeline.launch import LaunchError, parse_graph
from rxaudio.server import HUB
from rxaudio.server.options import EVENTS, ChainOptions


def _offline(samples: np.ndarray, *operators: Any) -> list[Any]:
    """The library's output for the whole audio as one frame (streaming equals offline)."""
    out: list[Any] = []
    rx.of(AudioFrame(samples.reshape(-1, 1), 16000, 0)).pipe(*operators).subscribe(out.append)
    return out


def _rows(frames: list[FeatureFrame]) -> list[list[float]]:
    return [row for f in frames for row in f.to_dict()["values"]]


def test_a_graph_parses_into_lines_tees_and_branches() -> None:
    g = parse_graph("gain db=-3 ! tee name=t ! vad t. ! tee name=u ! level u. ! mfcc")
    assert [e.name for e in g.elements] == ["gain", "vad"]
    (t,) = g.tees
    assert (t.at, t.name, t.pos) == (1, "t", 13)
    (b,) = t.branches
    assert [e.name for e in b.elements] == ["level"] and b.tees[0].at == 0
    assert [e.name for e in b.tees[0].branches[0].elements] == ["mfcc"]


@pytest.mark.parametrize(
    ("text", "before", "branches", "events"),
    [
        (
            "gain db=-3 ! tee name=t ! vad ! hysteresis ! buffer_utterance t. ! spectral",
            ["gain"],
            [(1, ["spectral"])],
            (*EVENTS, "spectral"),
        ),
        (
            "tee name=t ! gain db=2 ! vad ! hysteresis ! buffer_utterance t. ! level t. ! mfcc",
            ["gain"],
            [(0, ["level"]), (0, ["mfcc"])],
            (*EVENTS, "mfcc"),
        ),
        (  # vad down a branch: the rest of the first line is a display branch too
            "tee name=t ! reframe size=1600 ! level t. ! vad ! hysteresis ! buffer_utterance",
            [],
            [(0, ["reframe", "level"])],
            EVENTS,
        ),
    ],
)
def test_branches_before_vad_are_read_from_the_graph(
    text: str, before: list[str], branches: list[tuple[int, list[str]]], events: tuple[str, ...]
) -> None:
    o = ChainOptions.from_pipeline(text)
    assert [name for name, _ in o.before] == before
    assert sorted((k, [e.name for e in g.elements]) for k, g in o.branches) == sorted(branches)
    assert o.events == events == o.event_types()


@pytest.mark.parametrize(
    ("text", "fragment", "col"),
    [
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! gain db=1", "gain gives", 54),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! spectrogram", "kind=log_mel", 54),
        ("vad ! tee name=t ! hysteresis ! buffer_utterance t. ! level", "a tee after vad", 6),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! vad", "one vad per session", 54),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! level ! gain db=1", "ends its", 62),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! hysteresis", "speech chain", 54),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! spectral n_fft=0", "n_fft", 69),
        ("vad ! hysteresis ! buffer_utterance t. ! level", "no tee named 't'", 36),
        ("tee ! vad ! hysteresis ! buffer_utterance", "needs a name", 0),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! queue ! level", "thread", 54),
        ("queue ! vad ! hysteresis ! buffer_utterance", "queue is a thread boundary", 0),
        ("tee name=t ! vad ! hysteresis ! buffer_utterance t. ! wav location=x.wav", "sink", 54),
    ],
)
def test_what_a_branch_cannot_carry_is_refused_with_a_caret(
    text: str, fragment: str, col: int
) -> None:
    with pytest.raises(LaunchError) as exc:
        ChainOptions.from_pipeline(text)
    assert fragment in exc.value.reason and exc.value.pos == col, (exc.value.reason, exc.value.pos)


def test_serve_refuses_a_branch_before_it_starts(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "tee name=t ! vad ! hysteresis ! buffer_utterance t. ! gain db=1"
    code = main(["serve", "--out", str(tmp_path), "--port", "0", "--pipeline", text])
    assert code == 2
    err = capsys.readouterr().err
    assert "protocol carries" in err and f"\n  {text}\n" + " " * 56 + "^" in err


async def _session(
    server: Any, proto: Any, opts: ChainOptions, audio: np.ndarray, **start: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with server(options=opts, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        hello = await ws.receive_json(timeout=10)
        msg = {"type": "start", "version": 1, "sample_rate": 16000, "channels": 1}
        await ws.send_json({**msg, **start})
        got = await proto.until(ws, "started")
        await proto.send_audio(ws, audio)
        await ws.send_json({"type": "stop"})
        events = got + await proto.until(ws, "stopped")
        errors = [e for e in events if e["type"] == "error"]
        assert not errors, errors
        return hello, events


async def test_a_spectral_branch_after_a_gain_streams_what_the_library_gives(
    server: Any, proto: Any, speech_pcm: np.ndarray
) -> None:
    audio = speech_pcm[: 5 * 16000]
    x = audio.astype(np.float32) / 32768.0
    plain = ChainOptions.from_pipeline("gain db=-3 ! vad ! hysteresis ! buffer_utterance")
    teed = ChainOptions.from_pipeline(
        "gain db=-3 ! tee name=t ! vad ! hysteresis ! buffer_utterance t. ! spectral"
    )
    _, events = await _session(server, proto, teed, audio)
    started = next(e for e in events if e["type"] == "started")
    assert started["events"] == [*EVENTS, "spectral"]
    got = [e for e in events if e["type"] == "spectral"]
    want = [f for f in _offline(x, gain(-3.0), spectral()) if isinstance(f, FeatureFrame)]
    assert got and np.allclose(
        [r for e in got for r in e["values"]], _rows(want), atol=2e-3, equal_nan=True
    )
    assert sum(e["rows"] for e in got) == sum(f.n_rows for f in want)
    # the speech chain is the same with or without the branch
    _, alone = await _session(server, proto, plain, audio)
    speech = ("vad", "speech_start", "speech_end", "utterance")

    def said(evs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return proto.streams(
            [{k: v for k, v in e.items() if k != "url"} for e in evs if e["type"] in speech]
        )

    assert said(events) == said(alone)
    assert any(e["type"] == "utterance" for e in alone)
    # a client that does not ask for it gets none, and one that asks for what no branch
    # gives is told what this server gives
    _, only_vad = await _session(server, proto, teed, audio, options={"events": ["vad"]})
    assert {e["type"] for e in only_vad} & {"spectral", "level", "spectrogram"} == set()


async def test_a_client_asking_for_an_event_no_branch_gives_is_told(
    server: Any, proto: Any
) -> None:
    async with server() as client:
        ws = await client.ws_connect("/ws")
        assert (await ws.receive_json(timeout=10))["type"] == "hello"
        await ws.send_json(
            {"type": "start", "sample_rate": 16000, "options": {"events": ["vad", "mfcc"]}}
        )
        err = await ws.receive_json(timeout=10)
        assert err["type"] == "error" and err["code"] == "bad_config"
        assert "level, vad, spectrogram" in err["message"] and "mfcc" in err["message"]


async def test_a_level_branch_replaces_the_servers_own_and_an_mfcc_branch_runs_unbatched(
    server: Any, proto: Any, speech_pcm: np.ndarray
) -> None:
    audio = speech_pcm[: 3 * 16000]
    x = audio.astype(np.float32) / 32768.0
    opts = ChainOptions.from_pipeline(
        "gain db=-6 ! tee name=t ! vad backend=webrtc ! hysteresis ! buffer_utterance"
        " t. ! level t. ! mfcc n_mfcc=8"
    )
    async with server(options=opts) as client:
        assert client.app[HUB].batcher is None  # webrtc: each session scores its own
    _, events = await _session(server, proto, opts, audio)
    levels = [e for e in events if e["type"] == "level"]
    # the branch's level is one per frame sent (2048 samples), not the server's 100 ms blocks
    assert len(levels) == -(-len(audio) // 2048)
    want_level = [
        f.to_dict()
        for i in range(0, len(x), 2048)
        for f in _offline_chunk(x[i : i + 2048], i, gain(-6.0), level())
    ]
    assert [e["rms_db"] for e in levels] == [f["rms_db"] for f in want_level]
    got = [e for e in events if e["type"] == "mfcc"]
    want = [f for f in _offline(x, gain(-6.0), mfcc(n_mfcc=8)) if isinstance(f, FeatureFrame)]
    assert got and np.allclose(
        [r for e in got for r in e["values"]], _rows(want), atol=2e-3, equal_nan=True
    )
    assert any(e["type"] == "speech_start" for e in events)
    assert any(e["type"] == "spectrogram" for e in events)  # the server's own stays


def _offline_chunk(samples: np.ndarray, start: int, *operators: Any) -> list[Any]:
    out: list[Any] = []
    frame = AudioFrame(samples.reshape(-1, 1), 16000, start)
    rx.of(frame).pipe(*operators).subscribe(out.append)
    return out


@pytest.mark.parametrize(
    ("text", "plain", "branch_event", "count"),
    [
        (  # vad down a branch, the display branch on the first line
            "tee name=t ! reframe size=1600 ! level t. ! vad ! hysteresis ! buffer_utterance",
            "vad ! hysteresis ! buffer_utterance",
            "level",
            3 * 16000 // 1600,
        ),
        (  # a branch before the element before vad (batched), two from one tee
            "tee name=t ! gain db=2 ! vad ! hysteresis ! buffer_utterance t. ! level t. ! mfcc",
            "gain db=2 ! vad ! hysteresis ! buffer_utterance",
            "mfcc",
            None,
        ),
        (  # a tee on a branch
            "gain db=-3 ! tee name=t ! vad ! hysteresis ! buffer_utterance"
            " t. ! tee name=u ! spectral u. ! mfcc",
            "gain db=-3 ! vad ! hysteresis ! buffer_utterance",
            "spectral",
            None,
        ),
    ],
)
async def test_every_shape_of_branch_leaves_the_speech_chain_as_it_was(
    server: Any,
    proto: Any,
    speech_pcm: np.ndarray,
    text: str,
    plain: str,
    branch_event: str,
    count: int | None,
) -> None:
    audio = speech_pcm[: 3 * 16000]
    speech = ("vad", "speech_start", "speech_end", "utterance")

    def said(evs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return proto.streams(
            [{k: v for k, v in e.items() if k != "url"} for e in evs if e["type"] in speech]
        )

    _, teed = await _session(server, proto, ChainOptions.from_pipeline(text), audio)
    _, alone = await _session(server, proto, ChainOptions.from_pipeline(plain), audio)
    assert said(teed) == said(alone) and any(e["type"] == "speech_start" for e in alone)
    got = [e for e in teed if e["type"] == branch_event]
    assert got and (count is None or len(got) == count)
