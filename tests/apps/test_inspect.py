"""``rxaudio inspect``: the element list, one element, JSON, and the generated docs/elements.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rxaudio.apps._inspect import _strip_rst as plain
from rxaudio.apps._inspect import markdown
from rxaudio.apps.cli import main
from rxaudio.pipeline.registry import names, registry

DOC = Path(__file__).parents[2] / "docs" / "elements.md"


def test_list_groups_every_element_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 0
    out = capsys.readouterr().out
    heads = [out.index(h) for h in ("Sources:", "Operators:", "Sinks:")]
    assert heads == sorted(heads)
    for name, info in registry().items():
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        start = heads[["source", "operator", "sink"].index(info.kind)]
        assert out.index(line) > start
        assert line.endswith(plain(info.description))


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == names()
    assert all(r["kind"] in ("source", "operator", "sink") and r["description"] for r in rows)


def test_one_element_shows_properties_and_caps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "hysteresis"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hysteresis (operator, rxaudio.operators.hysteresis)")
    assert "threshold" in out and "a finite number in (0, 1]; default 0.5" in out
    assert "[0, 60000] ms; default 250" in out and "set from Python only" in out
    assert "Accepts:  rxaudio/vad" in out and "Produces: rxaudio/vad|speechstart" in out

    assert main(["inspect", "wav"]) == 0
    out = capsys.readouterr().out
    assert "alias location" in out and "one of 'PCM_16', 'FLOAT'; default PCM_16" in out


def test_one_element_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "resample", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["name"] == "resample" and d["kind"] == "operator"
    assert d["python"] == "rxaudio.operators.resample"
    rate, quality = d["properties"]
    assert rate == {
        "name": "rate",
        "type": "int",
        "required": True,
        "settable": True,
        "range": {"min": 1, "max": 768000, "min_open": False, "max_open": False,
                  "text": "[1, 768000]"},
        "unit": "Hz",
        "allowed": "an int in [1, 768000] Hz",
        "doc": "Output sample rate in Hz.",
    }  # fmt: skip
    assert quality["default"] == "HQ" and quality["choices"] == ["QQ", "LQ", "MQ", "HQ", "VHQ"]
    assert d["accepts"] == {"caps": "audio/x-raw", "frames": ["audio"]}

    assert main(["inspect", "file", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["properties"][0]["aliases"] == ["location"] and d["accepts"] is None


def test_unknown_element_exits_2_naming_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "hysterisis"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("rxaudio inspect: error: no element called 'hysterisis'")
    assert "did you mean hysteresis" in err


def test_docs_elements_md_is_current() -> None:
    """docs/elements.md is generated: regenerate it with
    ``rxaudio inspect --markdown > docs/elements.md`` after changing an element."""
    assert DOC.read_text() == markdown(), "docs/elements.md is stale: regenerate it"


def test_markdown_covers_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert text == markdown()
    for name in names():
        assert f"\n### {name}\n" in text
    assert "| `threshold` | float | `0.5` | a finite number in (0, 1] |" in text
    assert main(["inspect", "gain", "--markdown"]) == 2
