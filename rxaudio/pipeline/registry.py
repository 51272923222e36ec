"""The element registry: every source, operator and sink by name, and plugins' elements.

Built-in elements are the factories declared with :func:`rxaudio.core.props.element` in
:mod:`rxaudio.sources`, :mod:`rxaudio.operators` and :mod:`rxaudio.sinks`. Third-party
packages add theirs through the entry-point group ``rxaudio.elements``: each entry point names
a declared factory (``name = "package.module:factory"``), or a callable returning a list of
them. A plugin whose element clashes with a built-in name is refused with a warning naming both.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from ..core.props import ElementInfo, info_of
from ..errors import ConfigError

ENTRY_POINT_GROUP = "rxaudio.elements"

_registry: dict[str, ElementInfo] | None = None


def _builtins() -> list[Any]:
    from .. import operators, sinks, sources

    found = []
    for mod in (sources, operators, sinks):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if isinstance(getattr(obj, "__element__", None), ElementInfo):
                found.append(obj)
    return found


def _plugins() -> Iterable[tuple[str, Any]]:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break every command
            warnings.warn(
                f"rxaudio: the element plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                stacklevel=2,
            )
            continue
        if getattr(obj, "__element__", None) is None and callable(obj):
            try:
                for f in obj():
                    yield ep.value, f
            except Exception as exc:
                warnings.warn(
                    f"rxaudio: the element plugin {ep.name!r} ({ep.value}) failed: {exc}",
                    stacklevel=2,
                )
            continue
        yield ep.value, obj


def registry(*, reload: bool = False) -> dict[str, ElementInfo]:
    """Every element by name (built-ins first, then plugins; loaded once)."""
    global _registry
    if _registry is not None and not reload:
        return _registry
    reg: dict[str, ElementInfo] = {}
    for f in _builtins():
        info = info_of(f)
        reg[info.name] = info
    for origin, f in _plugins():
        try:
            info = info_of(f)
        except TypeError as exc:
            warnings.warn(f"rxaudio: plugin {origin}: {exc}", stacklevel=2)
            continue
        if info.name in reg:
            warnings.warn(
                f"rxaudio: plugin {origin} declares element {info.name!r}, which already "
                f"exists ({reg[info.name].description}); the plugin's is ignored",
                stacklevel=2,
            )
            continue
        reg[info.name] = info
    _registry = reg
    return reg


def names(kind: str | None = None) -> list[str]:
    """Element names, sorted (only one kind when given)."""
    return sorted(n for n, i in registry().items() if kind is None or i.kind == kind)


def get(name: str) -> ElementInfo:
    """The element called ``name``; ConfigError naming the close ones when unknown."""
    reg = registry()
    if name in reg:
        return reg[name]
    import difflib

    close = difflib.get_close_matches(name, list(reg), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"no element called {name!r}{hint} (rxaudio inspect lists them all)")


def make(name: str, **options: Any) -> Any:
    """Build element ``name`` with ``options`` (by option name or alias), checked."""
    info = get(name)
    kwargs = {info.prop(k).name: v for k, v in options.items()}
    return info.factory(**kwargs)


def from_text(name: str, options: dict[str, str]) -> Callable[..., Any] | Any:
    """Build element ``name`` from text options (``{"rate": "16000"}``), each parsed and checked."""
    info = get(name)
    kwargs = {}
    for k, text in options.items():
        p = info.prop(k)
        if p.type is object:
            raise ConfigError(f"{name}: {p.name} cannot be set from text (set it from Python)")
        kwargs[p.name] = p.parse(name, text)
    return info.factory(**kwargs)
