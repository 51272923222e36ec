"""Start-up: what ``rxaudio --help``, each command's ``--help`` and ``inspect`` import.

Every command pays its start-up, so what ``--help`` needs stays declarative: the command table,
the app modules' one-line ``HELP`` and the elements' generated declarations
(:mod:`rxaudio.pipeline.declarations`), never an element's module (and with it numpy and
reactivex), the server, aiohttp (whose connector builds SSL contexts at import), a model runtime
or a plotting library.
Checked on the module sets of fresh processes, never on wall-clock times (those are measured by
``benchmarks/bench_startup.py`` and recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rxaudio.apps._inspect import text_element
from rxaudio.apps.cli import COMMANDS
from rxaudio.pipeline import registry

pytestmark = pytest.mark.timeout(120)

# never imported to show help or an element
HEAVY = (
    "aiohttp",
    "pyarrow",
    "onnxruntime",
    "torch",
    "librosa",
    "scipy",
    "matplotlib",
    "redis",
    "prometheus_client",
    "soundfile",
    "sounddevice",
    "rxaudio.server",
)
# the server's declarative modules: `serve --help` reads its defaults and live settings there
SERVER_DECLARATIONS = {"rxaudio.server", "rxaudio.server.config", "rxaudio.server.options"}
# help and inspect show elements from their declarations: no element module, no numpy or Rx
ELEMENTS = (
    "numpy",
    "reactivex",
    "rxaudio.frames",
    "rxaudio.core.caps",
    "rxaudio.sources",
    "rxaudio.operators",
    "rxaudio.sinks",
    "rxaudio.pipeline.launch",
)
TOP_LEVEL_HEAVY = (*HEAVY, *ELEMENTS)

_PROBE = """
import contextlib, io, json, sys
from rxaudio.apps.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _imports(*argv: str) -> tuple[str, set[str]]:
    """(stdout, modules loaded) of ``rxaudio ARGV`` in a fresh interpreter."""
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["code"] in (0, None), res.stderr
    return data["out"], set(data["modules"])


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` (a package or any of its submodules) in ``modules``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_top_level_help_imports_no_element_or_server() -> None:
    out, modules = _imports("--help")
    assert "usage: rxaudio" in out
    loaded = _loaded(modules, TOP_LEVEL_HEAVY)
    assert loaded == [], f"rxaudio --help imports {loaded[:8]}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_imports_nothing_heavy(command: str) -> None:
    """Not even the elements whose options are its flags: their declarations are data."""
    out, modules = _imports(command, "--help")
    assert out.startswith(f"usage: rxaudio {command}")
    loaded = _loaded(modules, TOP_LEVEL_HEAVY)
    if command == "serve":
        loaded = [m for m in loaded if m not in SERVER_DECLARATIONS]
    assert loaded == [], f"rxaudio {command} --help imports {loaded[:8]}"


@pytest.mark.parametrize("name", list(registry.BUILTINS))
def test_inspect_one_element_imports_no_element(name: str) -> None:
    """``inspect ELEMENT`` shows a built-in from its declaration, exactly as its loaded factory
    would show it, without importing it, any other element or the plugins."""
    out, modules = _imports("inspect", name)
    assert out == text_element(registry.get(name)) + "\n"
    loaded = _loaded(modules, (*TOP_LEVEL_HEAVY, "importlib.metadata"))
    assert loaded == [], f"rxaudio inspect {name} imports {loaded[:8]}"


def test_inspect_listing_imports_no_element() -> None:
    """The list scans the plugins (none here) but loads no built-in element."""
    out, modules = _imports("inspect")
    assert f"{len(registry.BUILTINS)} elements" in out
    loaded = _loaded(modules, TOP_LEVEL_HEAVY)
    assert loaded == [], f"rxaudio inspect imports {loaded[:8]}"
