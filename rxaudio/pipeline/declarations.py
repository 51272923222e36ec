"""Element declarations as data: what ``--help`` and ``inspect`` show, without the elements.

An element's options, docs and caps are declared once, in its factory (:mod:`rxaudio.core.props`).
Reading them means importing the element's module, and so numpy, reactivex and whatever the
element computes with: about two thirds of a command's start-up, paid by every ``--help``. So
the built-in elements' declarations are also kept as data, in ``elements.json`` beside this
module, generated from the live factories exactly as docs/elements.md is::

    python -m rxaudio.pipeline.declarations --write

``tests/pipeline/test_declarations.py`` fails when the file differs from what the factories
declare (a changed default, range, doc or caps), naming that command. A command's flags and
``rxaudio inspect`` read a :class:`Declaration` (:func:`rxaudio.pipeline.registry.declaration`):
from the file for a built-in, from the loaded factory for a plugin's element. Building and
running an element always uses the factory itself; the flags' values are parsed and checked by
the same :class:`~rxaudio.core.props.Prop` objects, rebuilt from the file (equal to the
factory's, tested).
"""

from __future__ import annotations

import inspect as pyinspect
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.props import REQUIRED, ElementInfo, Prop, Range, find_prop

FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "elements.json")
WRITE = "python -m rxaudio.pipeline.declarations --write"

_TYPES: dict[str, type] = {t.__name__: t for t in (bool, int, float, str, object)}
_SCALARS = (type(None), bool, int, float, str)


def plain(value: Any) -> Any:
    """A default as JSON can hold it (a function by its name)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return getattr(value, "__name__", repr(value))


def details(doc: str | None) -> str:
    """A docstring's paragraphs after the one-line description, up to the first section."""
    paras = pyinspect.cleandoc(doc or "").split("\n\n")[1:]
    keep: list[str] = []
    for para in paras:
        lines = para.strip().splitlines()
        if not lines:
            continue
        if lines[0].startswith(".. ") or (len(lines) > 1 and set(lines[1]) == {"-"}):
            break
        keep.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(keep)


def public_name(factory: Any) -> str:
    """A factory's public dotted name (``rxaudio.operators.hysteresis``)."""
    mod = factory.__module__
    if mod.startswith("rxaudio."):  # private module ``_name`` inside its public package
        mod = ".".join(part for part in mod.split(".") if not part.startswith("_"))
    return f"{mod}.{factory.__name__}"


def caps_dict(caps: Any) -> dict[str, Any] | None:
    """Caps as data: frame class names and, for audio, the fixed format fields."""
    if caps is None:
        return None
    from ..core.caps import type_name

    d: dict[str, Any] = {"caps": str(caps), "frames": [type_name(t) for t in caps.types]}
    if caps.is_audio:
        for k in ("sample_rate", "channels", "frame_size"):
            if getattr(caps, k) is not None:
                d[k] = getattr(caps, k)
    return d


@dataclass(frozen=True, slots=True)
class Declaration:
    """What an element declares, as data: everything ``inspect`` shows and flags are built from.

    ``props`` are the element's own :class:`~rxaudio.core.props.Prop` objects (for options
    text cannot set, the default is kept as :func:`plain` shows it); ``accepts``/``produces``
    are its caps as :func:`caps_dict` gives them; ``details`` and ``python`` come from the
    factory's docstring and module.
    """

    name: str
    kind: str
    description: str
    details: str
    python: str
    props: tuple[Prop, ...]
    aliases: tuple[tuple[str, str], ...]
    accepts: dict[str, Any] | None
    produces: dict[str, Any]

    @classmethod
    def of(cls, info: ElementInfo) -> Declaration:
        """The declaration of a loaded element."""
        produces = caps_dict(info.produces)
        assert produces is not None  # every element produces something
        return cls(
            name=info.name,
            kind=info.kind,
            description=info.description,
            details=details(info.factory.__doc__),
            python=public_name(info.factory),
            props=info.props,
            aliases=info.aliases,
            accepts=caps_dict(info.accepts),
            produces=produces,
        )

    def prop(self, name: str) -> Prop:
        """The option called ``name`` (or by one of its aliases); ConfigError when unknown."""
        return find_prop(self.name, self.props, self.aliases, name)

    def to_json(self) -> dict[str, Any]:
        """The declaration as JSON data (:meth:`from_json` reads it back)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "details": self.details,
            "python": self.python,
            "props": [_prop_json(self.name, p) for p in self.props],
            "aliases": [list(a) for a in self.aliases],
            "accepts": self.accepts,
            "produces": self.produces,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Declaration:
        """A declaration from :meth:`to_json`'s data."""
        return cls(
            name=d["name"],
            kind=d["kind"],
            description=d["description"],
            details=d["details"],
            python=d["python"],
            props=tuple(_prop_from_json(p) for p in d["props"]),
            aliases=tuple((a, r) for a, r in d["aliases"]),
            accepts=d["accepts"],
            produces=d["produces"],
        )


def _prop_json(element: str, p: Prop) -> dict[str, Any]:
    d: dict[str, Any] = {"name": p.name, "type": p.type.__name__}
    if not p.required:
        if p.type is not object and not isinstance(p.default, _SCALARS):
            raise ValueError(f"{element}: the default of {p.name} is no text value: {p.default!r}")
        d["default"] = p.default if p.type is not object else plain(p.default)
    d["doc"] = p.doc
    if p.unit is not None:
        d["unit"] = p.unit
    if p.range is not None:
        r = p.range
        d["range"] = {"lo": r.lo, "hi": r.hi}
        d["range"].update({k: True for k in ("lo_open", "hi_open") if getattr(r, k)})
    if p.choices is not None:
        d["choices"] = list(p.choices)
    for flag in ("optional", "positional", "loose", "text"):
        if getattr(p, flag):
            d[flag] = True
    return d


def _prop_from_json(d: dict[str, Any]) -> Prop:
    r = d.get("range")
    choices = d.get("choices")
    return Prop(
        name=d["name"],
        type=_TYPES[d["type"]],
        default=d.get("default", REQUIRED),
        doc=d["doc"],
        unit=d.get("unit"),
        range=None if r is None else Range(**r),
        choices=None if choices is None else tuple(choices),
        optional=d.get("optional", False),
        positional=d.get("positional", False),
        loose=d.get("loose", False),
        text=d.get("text", False),
    )


def load(path: str = FILE) -> dict[str, Declaration]:
    """The built-in elements' declarations by name, from the generated file (empty when the
    file is missing: the callers then read the factories themselves)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    return {d["name"]: Declaration.from_json(d) for d in data["elements"]}


def generate(infos: Iterable[ElementInfo]) -> str:
    """The text of ``elements.json`` for ``infos`` (the built-in elements, in registry order)."""
    data = {
        "generated": f"by `{WRITE}` from the elements' declarations; do not edit by hand",
        "elements": [Declaration.of(i).to_json() for i in infos],
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def current() -> str:
    """What ``elements.json`` should hold now: every built-in element, loaded."""
    from .registry import BUILTINS, builtin

    return generate(builtin(name) for name in BUILTINS)


def main(argv: list[str] | None = None) -> int:
    """``--write``: regenerate ``elements.json``; ``--check``: exit 1 when it is stale."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rxaudio.pipeline.declarations")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate elements.json")
    mode.add_argument("--check", action="store_true", help="exit 1 when elements.json is stale")
    args = parser.parse_args(argv)
    text = current()
    try:
        with open(FILE, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if args.check:
        if old != text:
            print(f"{FILE} is stale: run {WRITE}", file=sys.stderr)
            return 1
        return 0
    if old != text:
        with open(FILE, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {FILE}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
