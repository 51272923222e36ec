"""Lazy package attributes: a package's public names, imported from their module on first use.

``rxaudio --help`` (and every command's ``--help``) imports only what it shows: a command that
builds its flags from ``hysteresis`` imports ``rxaudio.operators._hysteresis``, not every
operator, sink and source with their dependencies. A package lists its names once as
``{name: submodule}`` and installs :func:`attributes` (PEP 562); its ``TYPE_CHECKING`` block
imports the same names for type checkers (``tests/test_lazy.py`` checks the two agree).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class _Package(types.ModuleType):
    """A lazy package: a public name the same as a submodule's (``rxaudio.core.fuse``, the
    function, from the submodule ``rxaudio.core.fuse``) stays the public name when the import
    system binds the submodule on its parent after a first ``import rxaudio.core.fuse``."""

    def __setattr__(self, name: str, value: Any) -> None:
        names = vars(self).get("_NAMES", {})
        if (
            name in names
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            return  # the submodule stays in sys.modules; the name resolves to the public object
        super().__setattr__(name, value)


def attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` (kept as the package's
    ``_NAMES``) maps a public name to the submodule (relative, e.g. ``"._gain"``) it is
    imported from on first use."""
    sys.modules[package].__class__ = _Package

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(names[name], package)
        value = getattr(module, name)
        vars(importlib.import_module(package))[name] = value  # the next lookup is plain
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *names})

    return __getattr__, __dir__
