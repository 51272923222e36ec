"""The element registry: every element fully declared, options that round-trip through text,
and plugins installed the way a third-party distribution installs them (entry points)."""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx

from rxaudio.apps._flags import show
from rxaudio.apps.cli import main
from rxaudio.core.props import KINDS, REQUIRED, ElementInfo, Prop
from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame
from rxaudio.pipeline import registry as reg
from rxaudio.testing import collect

ELEMENTS = sorted(reg.registry(reload=True).items())
SETTABLE = [(n, p) for n, i in ELEMENTS for p in i.props if p.type is not object]


def test_the_builtins_are_all_there() -> None:
    names = reg.names()
    for n in ("mic", "file", "array", "resample", "vad", "hysteresis", "buffer_utterance"):
        assert n in names
    for n in ("wav", "jsonl", "labels", "gain", "reframe", "spectrogram", "mfcc", "level"):
        assert n in names
    assert reg.names("source") == ["array", "file", "mic", "redis_src", "testsrc"]
    assert set(reg.names("sink")) >= {"wav", "jsonl", "labels"}


@pytest.mark.parametrize(("name", "info"), ELEMENTS, ids=[n for n, _ in ELEMENTS])
def test_every_element_is_described(name: str, info: ElementInfo) -> None:
    assert info.name == name and info.kind in KINDS
    assert info.description and info.description[0].isupper(), name
    assert info.description.endswith("."), info.description
    assert (info.accepts is None) == (info.kind == "source")
    for alias, real in info.aliases:
        assert info.prop(alias) is info.prop(real)


@pytest.mark.parametrize(
    ("name", "prop"),
    [(n, p) for n, i in ELEMENTS for p in i.props],
    ids=[f"{n}.{p.name}" for n, i in ELEMENTS for p in i.props],
)
def test_every_option_has_a_doc(name: str, prop: Prop) -> None:
    assert prop.doc.strip(), f"{name}: option {prop.name} has no Parameters entry"


def _samples(prop: Prop) -> list[Any]:
    """Values of an option worth round-tripping: its default, every choice, closed bounds."""
    out: list[Any] = []
    if prop.default is not REQUIRED and prop.default is not None:
        out.append(prop.default)
    if prop.choices is not None:
        out.extend(prop.choices)
    if prop.range is not None:
        r = prop.range
        if r.lo is not None and not r.lo_open:
            out.append(prop.type(r.lo))
        if r.hi is not None and not r.hi_open:
            out.append(prop.type(r.hi))
    if prop.optional:
        out.append(None)
    return out


@pytest.mark.parametrize(("name", "prop"), SETTABLE, ids=[f"{n}.{p.name}" for n, p in SETTABLE])
def test_text_settable_options_round_trip_and_defaults_pass_their_checks(
    name: str, prop: Prop
) -> None:
    if not prop.required:
        assert prop.check(name, prop.default) == prop.default  # the default is allowed
    for value in _samples(prop):
        got = prop.parse(name, show(value))
        assert got == value and type(got) is type(value), (value, got)
    if prop.range is not None and prop.range.lo is not None:  # just below: refused, and said so
        below = prop.range.lo - (1 if prop.type is int else 1e-3 * max(1.0, abs(prop.range.lo)))
        with pytest.raises(ConfigError) as info:
            prop.parse(name, show(prop.type(below)))
        msg = str(info.value)
        assert msg.startswith(f"{name}: {prop.name} must be ") and str(prop.range) in msg


def test_a_bad_value_names_element_option_value_and_range(from_text: Any) -> None:
    with pytest.raises(
        ConfigError, match=r"^gain: db must be a finite number in \[-120, 60\] dB, got 100$"
    ):
        reg.make("gain", db=100)
    with pytest.raises(
        ConfigError, match=r"^reframe: tail must be one of 'flush', 'pad', 'drop', got 'x'$"
    ):
        from_text("reframe", {"size": "512", "tail": "x"})
    with pytest.raises(
        ConfigError, match=r"^resample: rate must be an int in \[1, 768000\] Hz, got 'fast'$"
    ):
        from_text("resample", {"rate": "fast"})


def test_aliases_and_names_in_text() -> None:
    # mic's device is an index or a name; latency seconds or a name
    p = reg.get("mic").prop("device")
    assert p.parse("mic", "3") == 3 and p.parse("mic", "pulse") == "pulse"
    assert reg.get("mic").prop("latency").parse("mic", "0.05") == 0.05
    assert reg.get("wav").prop("location").name == "path"


def test_unknown_element_names_the_close_ones() -> None:
    with pytest.raises(ConfigError, match=r"no element called 'resampel'; did you mean resample"):
        reg.get("resampel")


# --- a plugin, installed as a distribution would install it -----------------------------------

PLUGIN = '''
"""A third-party element package."""

from typing import Annotated

from rxaudio.core.caps import Caps
from rxaudio.core.element import map_operator
from rxaudio.core.props import Range, Unit, element
from rxaudio.frames import AudioFrame


@element("louder", kind="operator", accepts=Caps(), produces=Caps())
def louder(times: Annotated[float, Range(1.0, 8.0), Unit("x")] = 2.0):
    """Multiply every sample by ``times``.

    Parameters
    ----------
    times
        The factor.
    """
    return map_operator(
        "louder", lambda f: AudioFrame(f.samples * times, f.sample_rate, f.start)
    )


@element("gain", kind="operator")
def my_gain(db: float = 0.0):
    """A second gain, clashing with the built-in one.

    Parameters
    ----------
    db
        Decibels.
    """
    return map_operator("gain", lambda f: f)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``rxaudio-louder`` 1.0 on sys.path: a module and its ``.dist-info`` with entry points."""
    (tmp_path / "rxaudio_louder.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "rxaudio_louder-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rxaudio-louder\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rxaudio.elements]\nlouder = rxaudio_louder:louder\ngain = rxaudio_louder:my_gain\n"
    )
    (dist / "RECORD").write_text("")
    with monkeypatch.context() as m:
        m.syspath_prepend(str(tmp_path))
        yield tmp_path
    sys.modules.pop("rxaudio_louder", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.registry(reload=True)  # the other tests see the built-ins only
    assert "louder" not in reg.names()


def test_a_plugin_is_listed_buildable_and_cannot_replace_a_builtin(
    plugin: Path, capsys: pytest.CaptureFixture[str], from_text: Any
) -> None:
    with pytest.warns(UserWarning, match=r"declares element 'gain', which already exists"):
        elements = reg.registry(reload=True)
    assert elements["louder"].kind == "operator"
    assert elements["gain"].factory.__module__ == "rxaudio.operators._gain"  # the built-in stays

    op = reg.make("louder", times=3.0)
    (out,) = collect(rx.just(AudioFrame(np.full((4, 1), 0.1, np.float32), 16000)).pipe(op))
    assert np.allclose(out.samples, 0.3)
    with pytest.raises(ConfigError, match=r"^louder: times must be a finite number in \[1, 8\] x"):
        from_text("louder", {"times": "9"})

    assert main(["inspect"]) == 0
    listing = capsys.readouterr().out
    assert "louder" in listing and "Multiply every sample by times." in listing
    assert main(["inspect", "louder", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["python"] == "rxaudio_louder.louder"
    assert d["properties"][0]["range"]["text"] == "[1, 8]" and d["properties"][0]["unit"] == "x"


def test_the_builtin_table_names_every_declared_factory_under_its_own_name() -> None:
    """``BUILTINS`` lets one element load alone; it must list exactly the declared factories
    that sources, operators and sinks export, each under the name it declares."""
    import importlib

    declared = {}
    for package in ("rxaudio.sources", "rxaudio.operators", "rxaudio.sinks"):
        mod = importlib.import_module(package)
        for attr in mod.__all__:
            info = getattr(getattr(mod, attr), "__element__", None)
            if isinstance(info, ElementInfo):
                declared[info.name] = f"{package}:{attr}"
    assert reg.BUILTINS == declared
    kinds = [reg.BUILTINS[n].split(":")[0].rsplit(".", 1)[1] for n in reg.BUILTINS]
    assert kinds == sorted(kinds, key=("sources", "operators", "sinks").index)  # registry order


def test_a_builtin_looked_up_alone_is_the_registry_one() -> None:
    reg.registry(reload=True)
    listed = reg.registry()
    saved = reg._registry
    try:
        reg._registry = None  # as in a fresh process: nothing listed yet
        for name in reg.BUILTINS:
            info = reg.get(name)
            assert info.name == name
            assert info.factory is listed[name].factory
        assert reg._registry is None  # no full listing (no plugin scan) was needed
        with pytest.raises(ConfigError, match=r"no element called 'hysteresys'; did you mean hyst"):
            reg.get("hysteresys")
    finally:
        reg._registry = saved
