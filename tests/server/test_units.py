"""The server's pure parts without a socket: outbox policy, metrics text, protocol parsing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from rxaudio.errors import ConfigError
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import ChainOptions, check_settings
from rxaudio.server.protocol import ProtocolError, StartMessage, decode_audio, parse_start
from rxaudio.server.sessions import Outbox


def _metrics() -> ServerMetrics:
    return ServerMetrics()


async def test_outbox_drops_oldest_droppable_first_and_counts(metric: Any) -> None:
    gate = asyncio.Event()
    sent: list[str] = []

    async def slow_send(text: str) -> None:  # a client that does not read
        await gate.wait()
        sent.append(text)

    m = _metrics()
    ob = Outbox(slow_send, m, maxlen=8)
    task = asyncio.create_task(ob.run())
    ob.put({"type": "vad", "i": -1}, 0.0)
    await asyncio.sleep(0)  # the sender takes it and blocks in send
    ob.put({"type": "utterance", "id": 1}, 0.0)
    for i in range(20):
        ob.put({"type": "vad", "i": i}, 0.0)
    ob.put({"type": "speech_end"}, 0.0)
    assert len(ob) == 8
    assert ob.dropped == 14 and metric(m, "rxaudio_events_dropped_total") == 14
    queued = [json.loads(text) for _, text, _ in ob.queue]
    kinds = [e["type"] for e in queued]
    assert kinds[0] == "utterance" and kinds[-1] == "speech_end"  # critical events kept
    assert [e["i"] for e in queued if e["type"] == "vad"] == list(range(14, 20))  # newest
    gate.set()
    ob.close()
    await asyncio.wait_for(task, 5)
    assert len(sent) == 9 and metric(m, "rxaudio_events_sent_total") == 9
    assert metric(m, "rxaudio_frame_to_event_seconds_count") == 9


async def test_outbox_of_only_critical_events_still_bounded() -> None:
    ob = Outbox(lambda text: asyncio.sleep(0), _metrics(), maxlen=8)
    for i in range(12):
        ob.put({"type": "utterance", "id": i}, 0.0)
    assert len(ob) == 8 and ob.dropped == 4
    assert [json.loads(text)["id"] for _, text, _ in ob.queue] == list(range(4, 12))


def test_histogram_exposition() -> None:
    m = _metrics()
    for v in (0.005, 0.05, 0.05, 0.5):
        m.latency.observe(v)
    text = m.render()
    lines = text.splitlines()
    name = "rxaudio_frame_to_event_seconds"
    assert f"# TYPE {name} histogram" in lines and text.endswith("\n")
    assert f'{name}_bucket{{le="0.0025"}} 0' in lines
    assert f'{name}_bucket{{le="0.005"}} 1' in lines  # a value on a bound counts in it
    assert f'{name}_bucket{{le="0.01"}} 1' in lines
    assert f'{name}_bucket{{le="0.05"}} 3' in lines  # cumulative
    assert f'{name}_bucket{{le="0.25"}} 3' in lines
    assert f'{name}_bucket{{le="0.5"}} 4' in lines
    assert f'{name}_bucket{{le="+Inf"}} 4' in lines
    assert f"{name}_sum 0.605" in lines
    assert f"{name}_count 4" in lines


def test_parse_start_defaults_and_errors() -> None:
    s = parse_start({"type": "start", "sample_rate": 44100})
    assert (s.sample_rate, s.channels, s.format, s.session) == (44100, 1, "int16", None)
    assert s.bytes_per_frame == 2
    with pytest.raises(ProtocolError) as e:
        parse_start({"type": "start", "sample_rate": 16000, "channels": True})
    assert e.value.code == "bad_message"
    with pytest.raises(ProtocolError) as e:
        parse_start({"type": "start", "sample_rate": 16000, "options": {"threshold": "x"}})
    assert e.value.code == "bad_config" and "threshold" in e.value.message


def test_decode_audio_int16_float32_stereo() -> None:
    st = StartMessage(16000, 2, "int16")
    x = np.array([[0, -32768], [16384, 32767]], dtype="<i2")
    a = decode_audio(x.tobytes(), st)
    assert a.dtype == np.float32 and a.shape == (2, 2)
    assert a[0, 1] == -1.0 and a[1, 0] == 0.5
    f = np.array([0.25, -2.0], dtype="<f4")  # out-of-range floats are clipped
    b = decode_audio(f.tobytes(), StartMessage(16000, 1, "float32"))
    assert b[:, 0].tolist() == [0.25, -1.0]


def test_decode_audio_int16_is_exactly_x_over_32768_for_every_value() -> None:
    every = np.arange(-32768, 32768, dtype="<i2")
    st = StartMessage(16000, 1, "int16")  # in 1 s messages, the most one may hold
    a = np.concatenate([decode_audio(p.tobytes(), st) for p in np.split(every, 8)])
    assert np.array_equal(a[:, 0], every.astype(np.float32) / np.float32(32768.0))


def test_chain_options_validated_with_the_operators_rules() -> None:
    with pytest.raises(ConfigError, match="backend"):
        ChainOptions(backend="nope")
    with pytest.raises(ConfigError, match="max_ms"):
        ChainOptions(settings={"max_ms": 500.0})
    with pytest.raises(ConfigError, match="neg_threshold"):
        check_settings({"threshold": 0.3, "neg_threshold": 0.5})
    check_settings({"threshold": 0.6, "min_silence_ms": 400.0, "pre_roll_ms": 0.0})


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
def test_spectrogram_rows_quantise_as_np_clip_does() -> None:
    import base64

    from rxaudio.server.pipeline import SPEC_CEIL_DB, SPEC_FLOOR_DB, _u8_rows

    def reference(values: np.ndarray) -> str:  # the straightforward form, one pass per step
        scaled = (values - SPEC_FLOOR_DB) * (255.0 / (SPEC_CEIL_DB - SPEC_FLOOR_DB))
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        q = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return base64.b64encode(q.tobytes()).decode("ascii")

    rng = np.random.default_rng(12)
    rows = (rng.standard_normal((7, 64)) * 60).astype(np.float32)  # beyond both ends too
    rows[0, :4] = [-60.0, 40.0, -60.2, 40.2]
    assert _u8_rows(rows) == reference(rows)
    for bad in (np.nan, np.inf, -np.inf):
        worse = rows.copy()
        worse[3, 5] = bad
        assert _u8_rows(worse) == reference(worse)
