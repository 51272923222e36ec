"""``rxaudio inspect [ELEMENT] [--json | --markdown]``: the elements and their options.

GStreamer's ``gst-inspect`` for rxaudio. Without ``ELEMENT``: every registered element (the
built-ins and those of installed plugins, entry-point group ``rxaudio.elements``) with its kind
and one line, grouped into sources, operators and sinks. With ``ELEMENT``: its description, its
properties (name, type, default, range or choices, unit, doc, aliases such as ``location``) and
the caps it accepts and produces. ``--json`` prints the same as JSON; ``--markdown`` the element
reference ``docs/elements.md`` (built-ins only), which :func:`markdown` generates and a test
keeps current. Everything shown comes from the elements' declarations
(:mod:`rxaudio.core.props`): nothing here restates an option. The list and one element are
shown from :func:`~rxaudio.pipeline.registry.declaration` (a built-in's generated declaration,
:mod:`rxaudio.pipeline.declarations`), so they import no element, numpy or reactivex.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from typing import Any

from ..pipeline.declarations import Declaration, plain

HELP = "list the elements (sources, operators, sinks) or show one: options, defaults, caps"

GROUPS = (("source", "Sources"), ("operator", "Operators"), ("sink", "Sinks"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio inspect``."""
    p.add_argument("element", nargs="?", metavar="ELEMENT", help="the element to show")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument(
        "--markdown",
        action="store_true",
        help="print the element reference (docs/elements.md) of the built-in elements",
    )
    p.add_argument(
        "--gst",
        action="store_true",
        help="GStreamer's element names and their rxaudio equivalents (with --json: as JSON)",
    )


# --- one element as data ---------------------------------------------------------------------


def prop_dict(prop: Any, aliases: list[str]) -> dict[str, Any]:
    """One property as data."""
    d: dict[str, Any] = {
        "name": prop.name,
        "type": prop.type.__name__,
        "required": prop.required,
        "settable": prop.type is not object,  # from text (launch strings, flags)
    }
    if not prop.required:
        d["default"] = plain(prop.default)
    if prop.optional:
        d["optional"] = True  # none is allowed
    if prop.range is not None:
        r = prop.range
        d["range"] = {
            "min": r.lo,
            "max": r.hi,
            "min_open": r.lo_open,
            "max_open": r.hi_open,
            "text": str(r),
        }
    if prop.choices is not None:
        d["choices"] = list(prop.choices)
    if prop.unit:
        d["unit"] = prop.unit
    if prop.text:
        d["also_text"] = True  # a name is allowed where a number is expected
    if aliases:
        d["aliases"] = aliases
    d["allowed"] = prop.describe()
    d["doc"] = prop.doc
    return d


def element_dict(info: Any) -> dict[str, Any]:
    """One element as data (what ``inspect ELEMENT --json`` prints), from its
    :class:`~rxaudio.pipeline.declarations.Declaration` or its loaded ``ElementInfo``."""
    decl = info if isinstance(info, Declaration) else Declaration.of(info)
    aliases: dict[str, list[str]] = {}
    for alias, real in decl.aliases:
        aliases.setdefault(real, []).append(alias)
    return {
        "name": decl.name,
        "kind": decl.kind,
        "description": decl.description,
        "details": decl.details,
        "python": decl.python,
        "properties": [prop_dict(p, aliases.get(p.name, [])) for p in decl.props],
        "accepts": decl.accepts,
        "produces": decl.produces,
    }


def listing(infos: list[Any]) -> list[dict[str, str]]:
    """Every element's name, kind and one line, grouped by kind then sorted by name."""
    order = {k: i for i, (k, _) in enumerate(GROUPS)}
    return [
        {"name": i.name, "kind": i.kind, "description": i.description}
        for i in sorted(infos, key=lambda i: (order.get(i.kind, 9), i.name))
    ]


# --- text ------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    from ._flags import show

    return show(plain(value))


def _strip_rst(text: str) -> str:
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def text_listing(infos: list[Any]) -> str:
    """The element list for people."""
    rows = listing(infos)
    width = max((len(r["name"]) for r in rows), default=0)
    out: list[str] = []
    for kind, title in GROUPS:
        group = [r for r in rows if r["kind"] == kind]
        if not group:
            continue
        out.append(f"{title}:")
        for r in group:
            out.append(f"  {r['name']:<{width}}  {_strip_rst(r['description'])}")
        out.append("")
    out.append(f"{len(rows)} elements; rxaudio inspect ELEMENT shows one")
    return "\n".join(out)


def text_element(info: Any) -> str:
    """One element for people."""
    d = element_dict(info)
    wrap = textwrap.TextWrapper(width=96, initial_indent="  ", subsequent_indent="  ")
    out = [f"{d['name']} ({d['kind']}, {d['python']})", ""]
    out.append(wrap.fill(_strip_rst(d["description"])))
    if d["details"]:
        for para in d["details"].split("\n\n"):
            out += ["", wrap.fill(_strip_rst(para))]
    out += ["", "Properties:"]
    if not d["properties"]:
        out.append("  none")
    width = max((len(p["name"]) for p in d["properties"]), default=0)
    pad = " " * (width + 5)
    for p in d["properties"]:
        doc = textwrap.fill(
            _strip_rst(p["doc"]) or "(no doc)",
            width=96,
            initial_indent=f"  {p['name']:<{width}} : ",
            subsequent_indent=pad,
        )
        facts = [p["allowed"] if p["settable"] else "set from Python only"]
        facts.append("required" if p["required"] else f"default {_show(p.get('default'))}")
        if p.get("aliases"):
            facts.append("alias " + ", ".join(p["aliases"]))
        out += [doc, pad + "; ".join(facts)]
    out += [""]
    if d["accepts"] is not None:
        out.append(f"Accepts:  {d['accepts']['caps']}")
    out.append(f"Produces: {d['produces']['caps']}")
    return "\n".join(out)


# --- markdown --------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_doc(text: str) -> str:
    """reST roles to markdown code."""
    return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")


def builtin_infos() -> list[Any]:
    """The elements rxaudio itself declares (not plugins')."""
    from ..pipeline.registry import registry

    return [i for i in registry().values() if i.factory.__module__.startswith("rxaudio.")]


def markdown(infos: list[Any] | None = None) -> str:
    """The element reference (``docs/elements.md``), generated from the declarations."""
    infos = builtin_infos() if infos is None else infos
    by_name = {i.name: i for i in infos}
    out = [
        "# Elements",
        "",
        "<!-- Generated by `rxaudio inspect --markdown > docs/elements.md` from the elements'",
        "     declarations; do not edit by hand (tests/apps/test_inspect.py fails when stale). -->",
        "",
        "Every source, operator and sink, with its options as declared once in its factory: the",
        "Python API, launch strings, the apps' flags, the server's tunables and `rxaudio inspect`",
        "read the same declarations. Options marked *Python* take values text cannot hold.",
        "",
    ]
    rows = listing(infos)
    for kind, title in GROUPS:
        group = [r for r in rows if r["kind"] == kind]
        if not group:
            continue
        out += [f"## {title}", "", "| Element | Description |", "| --- | --- |"]
        out += [
            f"| [`{r['name']}`](#{r['name']}) | {_cell(_md_doc(r['description']))} |" for r in group
        ]
        out.append("")
        for r in group:
            out += _md_element(by_name[r["name"]])
    return "\n".join(out).rstrip() + "\n"


def _md_element(info: Any) -> list[str]:
    d = element_dict(info)
    out = [f"### {d['name']}", "", _md_doc(d["description"]), ""]
    if d["details"]:
        out += [_md_doc(p) + "\n" for p in d["details"].split("\n\n")]
    out.append(f"Python: `{d['python']}`; kind: {d['kind']}.")
    out.append("")
    if d["properties"]:
        out += [
            "| Option | Type | Default | Allowed | Description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in d["properties"]:
            name = f"`{p['name']}`"
            if p.get("aliases"):
                name += " (" + ", ".join(f"`{a}`" for a in p["aliases"]) + ")"
            typ = p["type"] if p["settable"] else "*Python*"
            default = "required" if p["required"] else f"`{_show(p.get('default'))}`"
            allowed = p["allowed"] if p["settable"] else ""
            out.append(
                f"| {name} | {typ} | {_cell(default)} | {_cell(allowed)} | "
                f"{_cell(_md_doc(p['doc']))} |"
            )
        out.append("")
    else:
        out += ["No options.", ""]
    if d["accepts"] is not None:
        out.append(f"Accepts: `{d['accepts']['caps']}`  ")
    out += [f"Produces: `{d['produces']['caps']}`", ""]
    return out


# --- the command -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """List the elements, or show one (exit 2 naming close matches for an unknown name)."""
    from ..errors import ConfigError
    from ..pipeline import gst
    from ..pipeline.registry import declaration, declarations

    if args.markdown:
        if args.element:
            print(
                "rxaudio inspect: error: --markdown writes the whole reference; drop ELEMENT",
                file=sys.stderr,
            )
            return 2
        print(markdown(), end="")
        return 0
    if args.gst:
        if args.markdown:
            print("rxaudio inspect: error: --gst and --markdown: choose one", file=sys.stderr)
            return 2
        return _gst(args)
    if args.element is None:
        infos = list(declarations().values())
        if args.json:
            print(json.dumps(listing(infos), indent=2))
        else:
            print(text_listing(infos))
        return 0
    name = gst.alias(args.element) or args.element  # audiotestsrc is testsrc
    known = gst.hint(name)
    if known is not None:
        raise ConfigError(f"no element called {name!r}: {known}")
    info = declaration(name)  # ConfigError naming close ones: one line, exit 2
    if args.json:
        print(json.dumps(element_dict(info), indent=2))
    else:
        print(text_element(info))
    return 0


def gst_table() -> str:
    """The table of GStreamer names (``rxaudio inspect --gst``), one row per name."""
    from ..pipeline.gst import GST_NAMES

    rows = [("GStreamer", "rxaudio", "write")]
    rows += [(g.gst + (" (alias)" if g.alias else ""), g.rxaudio, g.write) for g in GST_NAMES]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * w0 + "  " + "-" * w1 + "  " + "-" * 5)
    return "\n".join(lines)


def _gst(args: argparse.Namespace) -> int:
    from ..pipeline.gst import GST_NAMES

    if args.element:
        print("rxaudio inspect: error: --gst prints the whole table; drop ELEMENT", file=sys.stderr)
        return 2
    if args.json:
        rows = [
            {"gstreamer": g.gst, "rxaudio": g.rxaudio, "write": g.write, "alias": g.alias}
            for g in GST_NAMES
        ]
        print(json.dumps(rows, indent=2))
    else:
        print(gst_table())
    return 0
