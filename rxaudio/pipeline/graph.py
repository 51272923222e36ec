"""Pictures of built pipelines: Graphviz's DOT language, drawn by its ``dot`` program.

:func:`to_dot` writes a built :class:`~rxaudio.pipeline.launch.Pipeline` as a DOT graph, as
GStreamer's ``GST_DEBUG_DUMP_DOT_DIR`` does: every element with the properties it was given,
every link labelled with its negotiated caps, and every conversion inserted on a link as a
node of its own (dashed) between the two elements. :func:`draw` writes the DOT text itself
(``.dot``, ``.gv``: no Graphviz needed) or runs ``dot`` for any other extension (``.svg``,
``.png``, ``.pdf``), through a temporary name renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..io.atomic import target

if TYPE_CHECKING:
    from .launch import Pipeline

__all__ = ["draw", "to_dot"]

DOT_SUFFIXES = (".dot", ".gv")

_STYLE = {
    "source": 'shape=box, style="rounded,filled", fillcolor="#d9ead3"',
    "operator": 'shape=box, style="rounded,filled", fillcolor="#f3f3f3"',
    "queue": 'shape=box, style="rounded,filled,bold", fillcolor="#fff2cc"',
    "sink": 'shape=box, style="rounded,filled", fillcolor="#cfe2f3"',
    "tee": 'shape=invtriangle, style=filled, fillcolor="#eeeeee"',
    "caps": 'shape=note, style=filled, fillcolor="#ffffff"',
    "conversion": 'shape=box, style="dashed,rounded", fontcolor="#444444"',
}


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, lines joined with ``\\l`` or ``\\n``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(pipeline: Pipeline) -> str:
    """The pipeline as built, as a DOT digraph (see the module's docs)."""
    nodes = pipeline.nodes
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", fontsize=11, labelloc=t, '
        f"label={_quote(_title(pipeline.text))}];",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    ids: dict[str, str] = {}

    def node_id(label: str) -> str:
        if label not in ids:
            ids[label] = f"n{len(ids)}"
            info = nodes.get(label)
            if info is not None:
                kind = "queue" if info.element == "queue" else info.kind
                title = label if label == info.element else f"{label} ({info.element})"
                text = "\n".join([title, *(f"{k}={v}" for k, v in info.props)])
                if info.element == "queue":
                    text += "\n(a thread of its own)"
            elif label.startswith("audio/") or "/" in label:
                kind, text = "caps", label.replace(",", "\n")
            else:  # a tee (they are elements of no registered kind)
                kind, text = "tee", label
            lines.append(f"  {ids[label]} [label={_quote(text)}, {_STYLE[kind]}];")
        return ids[label]

    node_id(pipeline.source_label)
    conversions = 0
    for link in pipeline.links:
        a, b = node_id(link.upstream), node_id(link.downstream)
        if link.inserted:
            c = f"c{conversions}"
            conversions += 1
            text = "\n".join(["inserted: conform", *link.inserted])
            lines.append(f"  {c} [label={_quote(text)}, {_STYLE['conversion']}];")
            lines.append(f"  {a} -> {c} [label={_quote(_caps(link.produced))}];")
            lines.append(f"  {c} -> {b} [label={_quote(_caps(link.caps))}];")
        else:
            lines.append(f"  {a} -> {b} [label={_quote(_caps(link.caps))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _title(text: str) -> str:
    """The launch string on lines of at most about 100 characters, for the picture's title."""
    import textwrap

    return "\n".join(textwrap.wrap("rxaudio launch: " + " ".join(text.split()), 100))


def _caps(caps: object) -> str:
    return str(caps).replace(",", "\n")


def draw(pipeline: Pipeline, path: str | os.PathLike[str]) -> str:
    """Write the pipeline's picture to ``path``; return the path written.

    ``.dot``/``.gv``: the DOT text (no Graphviz needed). Any other extension is the format
    given to Graphviz's ``dot -T`` (``svg``, ``png``, ``pdf``...).

    Raises
    ------
    ConfigError
        ``dot`` is not installed (the message names the package), the path has no extension,
        or ``dot`` failed (its own message).
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if not ext:
        raise ConfigError(
            f"--graph {p}: give the file an extension: .svg, .png or .pdf (drawn by Graphviz), "
            "or .dot (the graph as text)"
        )
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise ConfigError(f"--graph {p}: the folder {folder} does not exist; create it first")
    text = to_dot(pipeline)
    out = target(p)
    if ext in DOT_SUFFIXES:
        with open(out.tmp, "w", encoding="utf-8") as f:
            f.write(text)
        out.commit()
        return p
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            f"--graph {p}: drawing needs Graphviz's dot program, which is not installed "
            "(Debian/Ubuntu: apt install graphviz); or write --graph out.dot, which needs none"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{ext[1:]}", "-o", out.tmp],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out.discard()
        raise ConfigError(f"--graph {p}: dot did not finish within 60 s") from exc
    if done.returncode != 0:
        out.discard()
        msg = (done.stderr or "").strip().splitlines()
        raise ConfigError(f"--graph {p}: dot failed: {msg[-1] if msg else done.returncode}")
    out.commit()
    return p
