"""The hello event tells a client everything it needs before start: limits, ranges, defaults."""

from __future__ import annotations

from rxaudio.server.pipeline import ChainOptions, default_settings
from rxaudio.server.protocol import TUNABLE


async def test_hello_carries_the_defaults_and_ranges_a_session_gets(server, proto):
    opts = ChainOptions(settings={"threshold": 0.6})
    async with server(options=opts) as client:
        ws = await client.ws_connect("/ws")
        hello = await ws.receive_json()
        assert hello["version"] == 2 and hello["versions"] == [1, 2]
        assert hello["defaults"] == {**default_settings(), "threshold": 0.6}
        assert hello["tunable"] == {k: list(v) for k, v in TUNABLE.items()}
        assert hello["limits"]["control_rate"] == 20.0
        await ws.send_json({"type": "start", "sample_rate": 16000})
        started = (await proto.until(ws, "started"))[-1]
        assert started["settings"] == hello["defaults"]  # what the page shows is what it gets
