"""Lazy packages (rxaudio._lazy): each public name resolves, and the type checkers' imports
(the ``TYPE_CHECKING`` block) name the same module as the runtime table."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

PACKAGES = [
    "rxaudio.core",
    "rxaudio.sources",
    "rxaudio.operators",
    "rxaudio.sinks",
    "rxaudio.pipeline",
    "rxaudio.server",
]


def _type_checking_imports(source: str) -> dict[str, str]:
    """{name: relative module} of the imports under ``if TYPE_CHECKING:``."""
    out: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    out[alias.asname or alias.name] = "." * imp.level + (imp.module or "")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_from_its_declared_module(package: str) -> None:
    mod = importlib.import_module(package)
    table: dict[str, str] = mod._NAMES
    assert set(table) == set(mod.__all__)
    assert _type_checking_imports(inspect.getsource(mod)) == table
    # every submodule first: importing one binds it on its parent, which must not replace a
    # public name of the same name (rxaudio.core.fuse, the function, from rxaudio.core.fuse)
    modules = {where: importlib.import_module(where, package) for where in table.values()}
    for name, where in table.items():
        assert getattr(mod, name) is getattr(modules[where], name)
    assert set(mod.__all__) <= set(dir(mod))
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        _ = mod.nope
