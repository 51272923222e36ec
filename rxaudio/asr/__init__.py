"""Speech recognition backends, free of Rx (numpy audio in, text and word times out).

* ``pocketsphinx`` -- :class:`~rxaudio.asr.sphinx.PocketSphinx` (default), CMU PocketSphinx with
  the US-English model shipped in its wheel.

:mod:`~rxaudio.asr.runner` starts a recogniser inline or, when it holds the GIL while decoding
(PocketSphinx does), in a child process, so it cannot stall the other threads.

Other recognisers plug in as one class (:class:`~rxaudio.asr.base.Recognizer`) registered under
the entry-point group :data:`ENTRY_POINT_GROUP`. The ``transcribe`` operator runs them.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigError
from .base import Recognition, Recognizer, WordTiming, prepare

ENTRY_POINT_GROUP = "rxaudio.asr"
BUILTIN = {"pocketsphinx": "rxaudio.asr.sphinx:PocketSphinx"}

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Recognition",
    "Recognizer",
    "WordTiming",
    "backend_class",
    "backend_names",
    "prepare",
]


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def backend_names() -> list[str]:
    """The built-in backends, then those installed through entry points."""
    import importlib.metadata  # 10-20 ms: not at import (`rxaudio segment --help` needs none)

    names = list(BUILTIN)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in names:
            names.append(ep.name)
    return names


def backend_class(name: str) -> type[Recognizer]:
    """The recogniser class called ``name``; ConfigError listing the known ones otherwise."""
    if name in BUILTIN:
        cls: type[Recognizer] = _load(BUILTIN[name])
        return cls
    import importlib.metadata

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                loaded: type[Recognizer] = ep.load()
            except Exception as exc:
                raise ConfigError(f"transcribe: backend {name!r} failed to load: {exc}") from exc
            return loaded
    raise ConfigError(
        f"transcribe: unknown backend {name!r}; use one of {', '.join(backend_names())} "
        f"(or install one under the entry-point group {ENTRY_POINT_GROUP})"
    )
