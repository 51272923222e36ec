"""The element registry: every source, operator and sink by name, and plugins' elements.

Built-in elements are the factories declared with :func:`rxaudio.core.props.element` in
:mod:`rxaudio.sources`, :mod:`rxaudio.operators` and :mod:`rxaudio.sinks`, listed by name in
:data:`BUILTINS` so that one element (``rxaudio inspect hysteresis``, a command's flags) is
loaded without importing the others and their dependencies; a test checks the table names every
declared factory those packages export, under its declared name. Third-party
packages add theirs through the entry-point group ``rxaudio.elements``: each entry point names
a declared factory (``name = "package.module:factory"``), or a callable returning a list of
them. A plugin whose element clashes with a built-in name is refused with a warning naming both.

What a command's flags and ``rxaudio inspect`` show comes from :func:`declaration` and
:func:`declarations`: a built-in's from the generated table (:mod:`.declarations`; no element
module, numpy or reactivex is imported), a plugin's from its loaded factory.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.props import ElementInfo, info_of
from ..errors import ConfigError

if TYPE_CHECKING:
    from .declarations import Declaration

T = TypeVar("T", ElementInfo, "Declaration")

ENTRY_POINT_GROUP = "rxaudio.elements"

_registry: dict[str, ElementInfo] | None = None
_declared: dict[str, Declaration] | None = None  # the built-ins' generated declarations


# element name -> "package:factory"; in registry order (sources, operators, sinks)
BUILTINS: dict[str, str] = {
    "array": "rxaudio.sources:from_array",
    "file": "rxaudio.sources:from_file",
    "mic": "rxaudio.sources:from_microphone",
    "redis_src": "rxaudio.sources:from_redis",
    "testsrc": "rxaudio.sources:testsrc",
    "buffer_utterance": "rxaudio.operators:buffer_utterance",
    "channels": "rxaudio.operators:channels",
    "gain": "rxaudio.operators:gain",
    "hysteresis": "rxaudio.operators:hysteresis",
    "level": "rxaudio.operators:level",
    "mfcc": "rxaudio.operators:mfcc",
    "queue": "rxaudio.operators:queue",
    "reframe": "rxaudio.operators:reframe",
    "resample": "rxaudio.operators:resample",
    "spectral": "rxaudio.operators:spectral",
    "spectrogram": "rxaudio.operators:spectrogram",
    "to_mono": "rxaudio.operators:to_mono",
    "transcribe": "rxaudio.operators:transcribe",
    "vad": "rxaudio.operators:vad",
    "features": "rxaudio.sinks:to_features",
    "jsonl": "rxaudio.sinks:to_jsonl",
    "labels": "rxaudio.sinks:to_labels",
    "null": "rxaudio.sinks:to_null",
    "redis": "rxaudio.sinks:to_redis",
    "subtitles": "rxaudio.sinks:to_subtitles",
    "wavdir": "rxaudio.sinks:to_utterances",
    "wav": "rxaudio.sinks:to_wav",
}


def builtin(name: str) -> ElementInfo:
    """The built-in element ``name``, importing only its own module."""
    module, attr = BUILTINS[name].split(":")
    return info_of(getattr(importlib.import_module(module), attr))


def _plugins() -> Iterable[tuple[str, Any]]:
    import importlib.metadata  # 10-20 ms: only when every element is listed

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
    reg = {name: builtin(name) for name in BUILTINS}
    _registry = _with_plugins(reg, lambda info: info)
    return _registry


def _with_plugins(reg: dict[str, T], wrap: Callable[[ElementInfo], T]) -> dict[str, T]:
    """``reg`` (the built-ins) with every plugin's element added as ``wrap`` makes it."""
    for origin, f in _plugins():
        try:
            info = info_of(f)
        except TypeError as exc:
            warnings.warn(f"rxaudio: plugin {origin}: {exc}", stacklevel=3)
            continue
        if info.name in reg:
            warnings.warn(
                f"rxaudio: plugin {origin} declares element {info.name!r}, which already "
                f"exists ({reg[info.name].description}); the plugin's is ignored",
                stacklevel=3,
            )
            continue
        reg[info.name] = wrap(info)
    return reg


def _builtin_declaration(name: str) -> Declaration:
    """The built-in ``name``'s generated declaration (its loaded factory's when the generated
    table lacks it: a stale table is slow, never wrong about which elements exist)."""
    global _declared
    from .declarations import Declaration, load

    if _declared is None:
        _declared = load()
    decl = _declared.get(name)
    return decl if decl is not None else Declaration.of(builtin(name))


def declaration(name: str) -> Declaration:
    """What element ``name`` declares (options, docs, caps), for flags and ``inspect``.

    A built-in's comes from the generated table without importing the element (its module,
    numpy, reactivex); a plugin's from its factory, loaded. ConfigError naming the close ones
    when there is no such element."""
    if name in BUILTINS:
        return _builtin_declaration(name)
    from .declarations import Declaration

    return Declaration.of(get(name))


def declarations() -> dict[str, Declaration]:
    """Every element's declaration by name: the built-ins' from the generated table (none
    loaded), then the plugins' (loaded, as :func:`registry` lists them)."""
    from .declarations import Declaration

    reg = {name: _builtin_declaration(name) for name in BUILTINS}
    return _with_plugins(reg, Declaration.of)


def names(kind: str | None = None) -> list[str]:
    """Element names, sorted (only one kind when given)."""
    return sorted(n for n, i in registry().items() if kind is None or i.kind == kind)


def lookup(name: str) -> ElementInfo | None:
    """The element called ``name``, or None.

    A built-in is loaded alone (no plugin may replace one), so ``rxaudio inspect hysteresis``,
    a command's flags or a launch string of built-ins import those elements, not every element
    and plugin."""
    if _registry is None and name in BUILTINS:
        return builtin(name)
    return registry().get(name)


def get(name: str) -> ElementInfo:
    """The element called ``name``; ConfigError naming the close ones when unknown."""
    info = lookup(name)
    if info is not None:
        return info
    reg = registry()
    import difflib

    close = difflib.get_close_matches(name, list(reg), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"no element called {name!r}{hint} (rxaudio inspect lists them all)")


def make(name: str, **options: Any) -> Any:
    """Build element ``name`` with ``options`` (by option name or alias), checked."""
    info = get(name)
    kwargs = {info.prop(k).name: v for k, v in options.items()}
    return info.factory(**kwargs)
