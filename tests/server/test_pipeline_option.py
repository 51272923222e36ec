"""rxaudio serve --pipeline: every session's chain given as a launch string."""

from __future__ import annotations

from typing import Any

import pytest

from rxaudio.apps.cli import main
from rxaudio.errors import ConfigError
from rxaudio.pipeline.launch import LaunchError
from rxaudio.server import HUB
from rxaudio.server.pipeline import ChainOptions


def test_the_chain_string_sets_backend_settings_and_fixed_options() -> None:
    o = ChainOptions.from_pipeline(
        "vad backend=webrtc mode=2 ! hysteresis threshold=0.6 max_gap_ms=1500"
        " ! buffer_utterance pre_roll_ms=500 min_ms=200",
        settings={"min_silence_ms": 300.0},
    )
    assert o.backend == "webrtc" and o.vad == {"mode": 2}
    assert o.settings == {"threshold": 0.6, "pre_roll_ms": 500.0, "min_silence_ms": 300.0}
    assert o.fixed == {"hysteresis": {"max_gap_ms": 1500.0}, "buffer_utterance": {"min_ms": 200.0}}
    assert ChainOptions.from_pipeline("vad ! hysteresis ! buffer_utterance").backend == "silero"


@pytest.mark.parametrize(
    ("text", "fragment", "col"),
    [
        ("vad ! level ! buffer_utterance", "level does not fit here", 6),
        ("vad ! hysteresis threshold=2 ! buffer_utterance", "threshold must be", 27),
        ("vad ! hysteresis", "must go on with buffer_utterance", 16),
        ("vad rate=8000 ! hysteresis ! buffer_utterance", "Silero at 16000 Hz", 0),
        ("vad ! hysteresis ! buffer_utterance passthrough=false", "passthrough", 19),
    ],
)
def test_bad_chains_point_at_the_problem(text: str, fragment: str, col: int) -> None:
    with pytest.raises(LaunchError) as exc:
        ChainOptions.from_pipeline(text)
    assert fragment in exc.value.reason and exc.value.pos == col, (exc.value.reason, exc.value.pos)


def test_a_setting_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="threshold is set twice"):
        ChainOptions.from_pipeline(
            "vad ! hysteresis threshold=0.6 ! buffer_utterance", settings={"threshold": 0.7}
        )


async def test_sessions_run_the_given_chain(server, proto, speech_pcm):
    opts = ChainOptions.from_pipeline(
        "vad ! hysteresis min_silence_ms=1500 ! buffer_utterance pre_roll_ms=500"
    )
    async with server(options=opts, queue_max=100_000) as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        assert started["settings"]["min_silence_ms"] == 1500.0
        assert started["settings"]["pre_roll_ms"] == 500.0
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        utts = [e for e in await proto.until(ws, "stopped") if e["type"] == "utterance"]
        assert len(utts) == 3  # 1.5 s of silence needed: the sentences stay whole
        assert all(u["start"] - u["audio_start"] <= 0.5 + 1e-6 for u in utts)
        assert client.app[HUB].batcher is not None  # silero: batched


async def test_another_backend_from_the_chain(server, proto, speech_pcm):
    opts = ChainOptions.from_pipeline("vad backend=webrtc mode=3 ! hysteresis ! buffer_utterance")
    async with server(options=opts, queue_max=100_000) as client:
        assert client.app[HUB].batcher is None
        ws = await client.ws_connect("/ws")
        await proto.start(ws)
        await proto.send_audio(ws, speech_pcm)
        await ws.send_json({"type": "stop"})
        events = await proto.until(ws, "stopped")
        assert any(e["type"] == "utterance" for e in events)
        assert not any(e["type"] == "error" for e in events)


def test_serve_refuses_a_bad_chain_with_the_caret(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--out", str(tmp_path), "--port", "0", "--pipeline", "vad ! nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no element called 'nope'" in err and "\n  vad ! nope\n        ^" in err
    code = main(
        [
            "serve",
            "--out",
            str(tmp_path),
            "--port",
            "0",
            "--backend",
            "energy",
            "--pipeline",
            "vad backend=webrtc ! hysteresis ! buffer_utterance",
        ]
    )
    assert code == 2 and "disagree" in capsys.readouterr().err


def test_elements_before_vad_are_built_and_kept() -> None:
    o = ChainOptions.from_pipeline("gain db=-3 ! vad ! hysteresis ! buffer_utterance")
    assert o.before == (("gain", {"db": -3.0}),)
    assert [getattr(op, "name", None) for op in o.before_operators()] == ["gain"]


@pytest.mark.parametrize(
    ("text", "fragment", "col"),
    [
        ("resample rate=8000 ! vad ! hysteresis ! buffer_utterance", "16000 Hz mono", 0),
        ("gain db=-3 ! level ! vad ! hysteresis ! buffer_utterance", "level", 13),
        ("hysteresis ! vad ! hysteresis ! buffer_utterance", "goes after vad", 0),
        ("gain db=-3 ! hysteresis ! buffer_utterance", "has vad in it", 0),
    ],
)
def test_what_vad_cannot_take_is_refused_before_the_server_starts(
    text: str, fragment: str, col: int
) -> None:
    with pytest.raises(LaunchError) as exc:
        ChainOptions.from_pipeline(text)
    assert fragment in exc.value.reason and exc.value.pos == col, (exc.value.reason, exc.value.pos)


async def test_sessions_run_an_element_before_vad(server, proto, speech_pcm):
    quiet = ChainOptions.from_pipeline("gain db=-40 ! vad ! hysteresis ! buffer_utterance")
    loud = ChainOptions.from_pipeline("vad ! hysteresis ! buffer_utterance")
    peaks = []
    for opts in (loud, quiet):
        async with server(options=opts, queue_max=100_000) as client:
            assert client.app[HUB].batcher is not None  # silero: batched, after the gain
            ws = await client.ws_connect("/ws")
            await proto.start(ws, options={"events": ["vad"]})
            await proto.send_audio(ws, speech_pcm[: 4 * 16000])
            await ws.send_json({"type": "stop"})
            events = await proto.until(ws, "stopped")
            assert not any(e["type"] == "error" for e in events)
            peaks.append([e["p"] for e in events if e["type"] == "vad"])
    assert len(peaks[0]) == len(peaks[1]) == 4 * 16000 // 512
    assert peaks[0] != peaks[1]  # vad scored the quieter audio
