"""The hello event tells a client everything it needs before start: limits, ranges, defaults."""

from __future__ import annotations

from pathlib import Path

from rxaudio.server.pipeline import ChainOptions, default_settings
from rxaudio.server.protocol import OPTIONS_BEGIN, OPTIONS_END, TUNABLE, with_options

DOCS = Path(__file__).parents[2] / "docs"


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


def test_docs_protocol_options_table_is_current() -> None:
    """docs/protocol.md's Options table is generated from TUNABLE and the defaults: renew it with
    ``python -c 'import pathlib, rxaudio.server.protocol as p; f = pathlib.Path("docs/protocol.md");
    f.write_text(p.with_options(f.read_text()))'`` after changing a live setting."""
    doc = (DOCS / "protocol.md").read_text()
    assert OPTIONS_BEGIN in doc and OPTIONS_END in doc
    assert with_options(doc) == doc, "docs/protocol.md's Options table is stale: regenerate it"
    assert "| `threshold` | 0.01-0.99 | 0.5 | [`hysteresis`](elements.md#hysteresis) |" in doc
    assert "\n### hysteresis\n" in (DOCS / "elements.md").read_text()
