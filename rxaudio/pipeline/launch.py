"""Launch strings: a pipeline written as text, in the syntax of GStreamer's ``gst-launch``.

::

    file location=talk.wav ! vad ! hysteresis threshold=0.6 ! buffer_utterance
      ! jsonl location=utterances.jsonl

Syntax
------
- Elements are separated by ``!``. An element is its registered name (``rxaudio inspect``
  lists them) followed by ``prop=value`` pairs; property names may use ``-`` for ``_``.
  Sources and sinks take their path as ``location=`` (an alias of ``path``).
- Values are plain words, or quoted with ``'single'`` or ``"double"`` quotes to hold spaces,
  ``!`` or ``#``; a backslash makes the next character literal, inside quotes or out
  (``"say \\"hi\\""``, ``a\\ b.wav``); one with nothing after it (at the end of the text or of
  a line) is an error: ``\\\\`` is a literal backslash.
- ``#`` starts a comment to the end of the line (when it begins a word); newlines are spaces.
- A caps filter ``audio/x-raw,rate=16000,channels=1,frame=512`` between two elements asks for
  that format; the conversions are inserted (``rate=(int)16000`` is accepted too).
- A pipeline has exactly one source, and it comes first. ``tee name=t`` splits the stream; a
  branch starts with ``t.`` (``t.src_0`` is accepted too) anywhere after the first chain::

      file location=a.wav ! tee name=t
        t. ! level ! jsonl location=levels.jsonl
        t. ! vad ! hysteresis ! labels location=speech.rttm

  The chain may also go on after the tee (``... ! tee name=t ! level ! ...``): that is its first
  branch. Every element may be given a ``name=``; only a tee can be branched from.
- A branch may end in an operator instead of a sink: its items then come out of
  :meth:`Pipeline.observable` (and are counted by ``rxaudio launch``), nothing is written.
- Two sinks may not write one file (compared resolved: a relative and an absolute path, or a
  symlink, to one file collide; ``{id}`` templates collide when they are the same text): the
  second is the error.
- A run of adjacent stage-based elements is one loop, however long; a path from the source
  may hold at most :data:`MAX_DEPTH` other hops (tees, sinks, caps filters, unfused elements).

Negotiation
-----------
Building checks the caps along every link before anything runs (:func:`~.caps.link`): the
source's own format (a file's rate and channels, the block size) flows down the chain, and
where an element (or a caps filter) needs another audio format, ``conform`` is inserted
(channels, then rate, then frame size). A link that no conversion can fix (``hysteresis``
after audio, ``wav`` after ``level``) is an error naming both elements, both caps and the
elements that would fit between them. :meth:`Pipeline.caps_report` lists every link's caps
and what was inserted (``rxaudio launch -v``).

Errors
------
Every syntax, property and link error is a :class:`LaunchError` (a
:class:`~rxaudio.errors.ConfigError`) whose message shows the line of the launch string with a
caret under the offending position, and says what would be accepted.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.scheduler import NewThreadScheduler

from ..core.caps import Caps
from ..core.element import Element
from ..core.fuse import fuse
from ..core.props import ElementInfo, Prop
from ..errors import ConfigError, RxAudioError
from ..frames import AudioFrame, CountReceipt, FileReceipt, StreamReceipt
from ..operators._queue import Queue
from . import gst, registry
from .caps import Link, LinkError, link

__all__ = [
    "Branch",
    "ChainElement",
    "ChainGraph",
    "ChainTee",
    "LaunchError",
    "Output",
    "Pipeline",
    "PipelineStats",
    "parse_chain",
    "parse_graph",
    "parse_launch",
]

Operator = Callable[[Observable[Any]], Observable[Any]]

_REF = re.compile(r"^([A-Za-z_][\w-]*)\.(src_[\w%]*)?$")
_MEDIA = re.compile(r"^[a-z]+/[\w.+-]+(,|$)")  # a caps filter: audio/x-raw,rate=16000
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")
_CAPS_FIELDS = {
    "rate": "sample_rate",
    "sample_rate": "sample_rate",
    "channels": "channels",
    "frame": "frame_size",
    "frame_size": "frame_size",
}


class LaunchError(ConfigError):
    """A launch string that cannot be built: the message points at the offending position.

    Attributes ``reason`` (the message without the excerpt), ``text``, ``pos`` (offset in
    ``text``), ``line`` and ``column`` (1-based).
    """

    def __init__(self, reason: str, text: str, pos: int) -> None:
        self.reason, self.text = reason, text
        self.pos = max(0, min(pos, len(text)))
        start = text.rfind("\n", 0, self.pos) + 1
        end = text.find("\n", self.pos)
        line = text[start : end if end >= 0 else len(text)]
        self.line = text.count("\n", 0, self.pos) + 1
        self.column = self.pos - start + 1
        where = f" (line {self.line}, column {self.column})" if "\n" in text.strip() else ""
        pad = "".join("\t" if c == "\t" else " " for c in line[: self.pos - start])
        super().__init__(f"{reason}{where}\n  {line}\n  {pad}^")


# --- tokens -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Tok:
    kind: str  # "link" | "word" | "prop"
    pos: int
    text: str  # the whole word, unescaped
    key: str = ""
    value: str = ""
    value_pos: int = 0


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "!":
            toks.append(_Tok("link", i, "!"))
            i += 1
        else:
            start, buf = i, []
            eq: int | None = None
            value_pos = 0
            while i < n and not text[i].isspace() and text[i] != "!":
                c = text[i]
                if c in "\"'":
                    opened = i
                    i += 1
                    while True:
                        if i >= n:
                            raise LaunchError(
                                f"unterminated quote: this {c} is never closed "
                                f"(expected a closing {c})",
                                text,
                                opened,
                            )
                        if text[i] == "\\" and i + 1 < n:
                            buf.append(text[i + 1])
                            i += 2
                        elif text[i] == c:
                            i += 1
                            break
                        else:
                            buf.append(text[i])
                            i += 1
                elif c == "\\":
                    if i + 1 == n or text[i + 1] == "\n":
                        # else a file named `x\` (or one with a newline in its name)
                        raise LaunchError(
                            "a trailing backslash escapes nothing: write \\\\ for a literal "
                            "backslash (newlines are spaces: no line continuation is needed)",
                            text,
                            i,
                        )
                    buf.append(text[i + 1])
                    i += 2
                else:
                    if c == "=" and eq is None:
                        eq, value_pos = len(buf), i + 1
                    buf.append(c)
                    i += 1
            word = "".join(buf)
            if eq is not None and "/" not in word[:eq]:
                toks.append(_Tok("prop", start, word, word[:eq], word[eq + 1 :], value_pos))
            else:
                toks.append(_Tok("word", start, word))
    return toks


# --- the parsed graph -------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    kind: str  # "element" | "tee" | "caps" | "ref"
    word: str
    pos: int
    info: ElementInfo | None = None
    props: list[_Tok] = field(default_factory=list)
    name: str | None = None
    name_pos: int = 0
    caps: Caps | None = None
    label: str = ""
    obj: Any = None
    location: str | None = None

    @property
    def elkind(self) -> str:
        return self.info.kind if self.info is not None else "operator"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def error(self, reason: str, pos: int) -> LaunchError:
        return LaunchError(reason, self.text, pos)

    def node(self, tok: _Tok) -> _Node:
        word = tok.text
        m = _REF.match(word)
        if m:
            return _Node("ref", m.group(1), tok.pos)
        if _MEDIA.match(word):
            return _Node("caps", word, tok.pos, caps=self.caps_filter(word, tok.pos))
        if word == "tee":
            return _Node("tee", word, tok.pos)
        info = registry.lookup(word)
        if info is None and gst.alias(word) is not None:
            info = registry.lookup(gst.alias(word) or "")  # audiotestsrc, fakesink
        if info is None:
            known = gst.hint(word)
            if known is not None:
                raise self.error(f"no element called {word!r}: {known}", tok.pos)
            reg = registry.registry()
            close = difflib.get_close_matches(word, [*reg, "tee"], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            if "." in word or "/" in word:
                hint += " (a file is given as a property: file location=" + word + ")"
            raise self.error(
                f"no element called {word!r}{hint} (rxaudio inspect lists them all)", tok.pos
            )
        return _Node("element", word, tok.pos, info=info)

    def caps_filter(self, word: str, pos: int) -> Caps:
        parts = word.split(",")
        if parts[0] != "audio/x-raw":
            raise self.error(
                f"unsupported caps {parts[0]!r}: a caps filter is audio/x-raw with "
                "rate=, channels= and frame= fields",
                pos,
            )
        values: dict[str, int] = {}
        off = len(parts[0]) + 1
        for part in parts[1:]:
            key, eq, val = part.partition("=")
            key, val = key.strip(), re.sub(r"^\((int|gint)\)", "", val.strip())
            if not eq or key not in _CAPS_FIELDS:
                raise self.error(
                    f"unknown caps field {key!r}: expected rate=, channels= or frame=", pos + off
                )
            if not val.isdigit() or int(val) <= 0:
                raise self.error(
                    f"caps field {key} must be a positive int, got {val!r}",
                    pos + off + len(key) + 1,
                )
            values[_CAPS_FIELDS[key]] = int(val)
            off += len(part) + 1
        return Caps(values.get("sample_rate"), values.get("channels"), values.get("frame_size"))

    def parse(self) -> list[list[_Node]]:
        toks = _tokenize(self.text)
        if not toks:
            raise self.error(
                "empty pipeline: expected a source, e.g. file location=a.wav ! level ! "
                "jsonl location=l.jsonl",
                0,
            )
        chains: list[list[_Node]] = []
        pending: _Tok | None = None
        for tok in toks:
            cur = chains[-1] if chains else None
            if tok.kind == "link":
                if cur is None:
                    raise self.error("expected a source before `!`", tok.pos)
                if pending is not None:
                    raise self.error("expected an element between `!` and `!`", tok.pos)
                last = cur[-1]
                if last.kind == "element" and last.elkind == "sink":
                    raise self.error(
                        f"{last.word} is a sink: nothing can follow it (to feed several "
                        "sinks, split the stream with a tee)",
                        tok.pos,
                    )
                pending = tok
            elif tok.kind == "prop":
                if cur is None or pending is not None:
                    raise self.error(
                        f"expected an element name, got the property {tok.key}=…; "
                        "properties follow their element's name",
                        tok.pos,
                    )
                self.add_prop(cur[-1], tok)
            else:
                node = self.node(tok)
                if pending is not None:
                    assert cur is not None
                    if node.kind == "ref":
                        raise self.error(
                            f"a branch flows out of a tee: write {node.word}. at the start of "
                            f"the branch ({node.word}. ! ...), not after `!`",
                            tok.pos,
                        )
                    if node.elkind == "source":
                        raise self.error(
                            f"{node.word} is a source: it can only start the pipeline "
                            "(one source per pipeline)",
                            tok.pos,
                        )
                    cur.append(node)
                    pending = None
                elif cur is None:
                    if node.kind != "element" or node.elkind != "source":
                        what = {"ref": "a branch", "caps": "a caps filter", "tee": "a tee"}
                        kind = "an operator" if node.elkind == "operator" else "a sink"
                        sources = ", ".join(registry.names("source"))
                        raise self.error(
                            f"a pipeline starts with a source ({sources}); "
                            f"{node.word} is {what.get(node.kind, kind)}",
                            tok.pos,
                        )
                    chains.append([node])
                elif len(cur) == 1 and cur[0].kind == "ref":
                    raise self.error(f"expected `!` after {cur[0].word}.", tok.pos)
                elif node.kind == "ref":
                    chains.append([node])
                elif node.elkind == "source":
                    raise self.error(
                        f"a second source ({node.word}): a pipeline has one source; split "
                        "it with a tee (tee name=t ... t. ! ...)",
                        tok.pos,
                    )
                else:
                    raise self.error(
                        f"expected `!` between {cur[-1].word} and {node.word} (or a branch "
                        "NAME. to start a new branch)",
                        tok.pos,
                    )
        if pending is not None:
            raise self.error("expected an element after this `!`", pending.pos)
        last_chain = chains[-1]
        if len(last_chain) == 1 and last_chain[0].kind == "ref":
            raise self.error(f"expected `!` after {last_chain[0].word}.", last_chain[0].pos)
        return chains

    def add_prop(self, node: _Node, tok: _Tok) -> None:
        key = tok.key.replace("-", "_")
        if key == "name":
            if node.kind in ("ref", "caps"):
                raise self.error(f"{node.word} takes no properties", tok.pos)
            if not _NAME.match(tok.value):
                raise self.error(
                    f"a name is letters, digits, _ and -, got {tok.value!r}", tok.value_pos
                )
            if node.name is not None:
                raise self.error(f"{node.word}: name is set twice", tok.pos)
            node.name, node.name_pos = tok.value, tok.value_pos
            return
        if node.kind != "element":
            what = "a tee takes only name=" if node.kind == "tee" else f"{node.word} takes none"
            raise self.error(f"{node.word} has no property {tok.key!r}; {what}", tok.pos)
        info = node.info
        assert info is not None
        p = self.prop(info, tok)
        for other in node.props:
            if self.prop(info, other).name == p.name:
                raise self.error(f"{info.name}: {p.name} is set twice", tok.pos)
        node.props.append(tok)

    def prop(self, info: ElementInfo, tok: _Tok) -> Prop:
        key = tok.key.replace("-", "_")
        aliases = dict(info.aliases)
        settable = [p for p in info.props if p.type is not object]
        for cand in (tok.key, key):
            real = aliases.get(cand, cand)
            for p in info.props:
                if p.name == real:
                    if p.type is object:
                        raise self.error(
                            f"{info.name}: {p.name} cannot be set from a launch string "
                            "(set it from Python)",
                            tok.pos,
                        )
                    return p
        names = [p.name for p in settable] + [a for a, _ in info.aliases] + ["name"]
        close = difflib.get_close_matches(key, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        listed = ", ".join(
            p.name + "".join(f" (or {a})" for a, r in info.aliases if r == p.name) for p in settable
        )
        raise self.error(
            f"{info.name} has no property {tok.key!r}; {hint}its properties: "
            f"{listed or 'none'} (and name)",
            tok.pos,
        )


# --- building ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Branch:
    """One stretch of a pipeline, from the source or a tee to a sink, a tee or its last element.

    ``operators`` is the negotiated chain (conversions included, the sink excluded); ``links``
    the caps on each of its links.
    """

    start: str
    """The label of what feeds it: the source or a tee."""
    elements: tuple[str, ...]
    """Labels of its elements as written (caps filters by their text, the tee excluded)."""
    operators: tuple[Operator, ...]
    sink: Operator | None
    """The sink it ends in, or None (it ends in a tee or an operator)."""
    end: str
    """The label of its last element (the tee when it splits)."""
    tee: str | None
    """The tee it ends in, whose branches start there."""
    links: tuple[Link, ...]
    location: str | None = None
    """The file its sink writes, when it has one."""


@dataclass(frozen=True, slots=True)
class Output:
    """What one element writes, as the launch string names it: the options its element
    declares in ``writes`` (:attr:`~rxaudio.core.props.ElementInfo.writes`), with their
    values as written (defaults for those left out)."""

    element: str
    """The element's label."""
    options: tuple[tuple[str, str], ...]
    """(option as written, e.g. ``location``; its value), in the element's ``writes`` order."""
    pos: int
    """Where the first of them is written (the element's name when it is not)."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One element of a built pipeline: its label, its element's name and kind, and its
    properties as written in the launch string (``name=`` aside)."""

    label: str
    element: str
    kind: str
    props: tuple[tuple[str, str], ...]


@dataclass
class PipelineStats:
    """What a running pipeline has done (reset on every subscription)."""

    audio_seconds: float = 0.0
    """Audio the source has emitted, in seconds (the last frame's end)."""
    items: dict[str, int] = field(default_factory=dict)
    """Items that reached each branch end (into its sink, or out of its last element)."""
    receipts: dict[str, FileReceipt | StreamReceipt | CountReceipt] = field(default_factory=dict)
    """The receipt of each sink whose file is final."""


def _identity(source: Observable[Any]) -> Observable[Any]:
    return source


def _source_caps(obj: Any, info: ElementInfo) -> Caps:
    """The caps a built source guarantees (a file's header, a microphone's settings, or the
    ``caps`` a source states itself, as ``redis_src`` does)."""
    stated = getattr(obj, "caps", None)
    if isinstance(stated, Caps):
        return stated
    finfo = getattr(obj, "info", None)
    block = getattr(obj, "block_size", None)
    block = block if isinstance(block, int) and block > 0 else None
    rate = getattr(finfo, "sample_rate", None) if finfo is not None else None
    chans = getattr(finfo, "channels", None) if finfo is not None else None
    rate = rate if rate is not None else getattr(obj, "sample_rate", None)
    chans = chans if chans is not None else getattr(obj, "channels", None)
    try:
        return Caps(
            rate if isinstance(rate, int) else None,
            chans if isinstance(chans, int) else None,
            block,
        )
    except ConfigError:
        return info.produces


MAX_DEPTH = 100
"""The most Rx hops on one path from the source (tees, sinks, elements that are not fused, runs
of fused ones): an item crosses them by nested calls, a few frames each, within Python's
recursion limit (1,000) with room to spare. A run of stage-based elements is one hop however
long: it is a loop (:func:`~rxaudio.core.fuse.fuse`)."""

_Segment = tuple[Sequence[_Node], str, Caps, int]  # a branch's nodes, its start, caps, depth


class _Builder:
    def __init__(self, parser: _Parser, chains: list[list[_Node]]) -> None:
        self.p, self.chains = parser, chains
        self.branches: list[Branch] = []
        self.outputs: list[Output] = []
        self.queues: dict[str, Queue] = {}
        self.nodes: dict[str, NodeInfo] = {}
        self.written: dict[tuple[str, Any], tuple[_Node, str, int]] = {}  # see claim()

    def label(self) -> None:
        nodes = [n for c in self.chains for n in c if n.kind != "ref"]
        named: dict[str, _Node] = {}
        for n in nodes:
            if n.name is not None:
                if n.name in named:
                    raise self.p.error(f"the name {n.name!r} is used twice", n.name_pos)
                named[n.name] = n
        counts: dict[str, int] = {}
        for n in nodes:
            counts[n.word] = counts.get(n.word, 0) + 1
        seen: dict[str, int] = {}
        for n in nodes:
            if n.name is not None:
                n.label = n.name
            elif counts[n.word] > 1 and n.kind != "caps":
                k = seen.get(n.word, 0)
                seen[n.word] = k + 1
                n.label = f"{n.word}{k}"
                while n.label in named:  # a user's name= took it
                    n.label += "_"
            else:
                n.label = n.word
        self.named = named

    def build(self, node: _Node) -> None:
        info = node.info
        assert info is not None
        kwargs: dict[str, Any] = {}
        for tok in node.props:
            p = self.p.prop(info, tok)
            try:
                kwargs[p.name] = p.parse(info.name, tok.value)
            except ConfigError as exc:
                raise self.p.error(str(exc), tok.value_pos) from None
        for p in info.props:
            if p.required and p.name not in kwargs:
                alias = "".join(f" (or {a}=)" for a, r in info.aliases if r == p.name)
                doc = f": {p.doc}" if p.doc else ""
                raise self.p.error(
                    f"{info.name} needs {p.name}={alias}{doc} ({p.describe()})", node.pos
                )
        if info.kind == "sink" and isinstance(kwargs.get("path"), str):
            node.location = kwargs["path"]
            self.claim(node, info, kwargs)
        if info.writes:
            self.outputs.append(self.output(node, info))
        self.nodes[node.label] = NodeInfo(
            node.label, info.name, info.kind, tuple((t.key, t.value) for t in node.props)
        )
        try:
            node.obj = info.factory(**kwargs)
            if isinstance(node.obj, Queue):
                self.queues[node.label] = node.obj
        except RxAudioError as exc:
            pos = node.pos
            for tok in node.props:  # point at the value the error is about, when it says
                if tok.value and tok.value in str(exc):
                    pos = tok.value_pos
                    break
            raise self.p.error(str(exc), pos) from exc

    def output(self, node: _Node, info: ElementInfo) -> Output:
        given = {self.p.prop(info, tok).name: tok for tok in node.props}
        options: list[tuple[str, str]] = []
        where: list[int] = []
        for name in info.writes:
            tok = given.get(name)
            if tok is None:
                default = info.prop(name).default
                options.append((name, "" if default is None else str(default)))
            else:
                options.append((tok.key, tok.value))
                where.append(tok.value_pos)
        return Output(node.label, tuple(options), where[0] if where else node.pos)

    def claim(self, node: _Node, info: ElementInfo, kwargs: dict[str, Any]) -> None:
        """Refuse a file another sink of this pipeline already writes, with a caret under the
        second use naming the first (each would replace the other's file at the end).

        Paths are compared resolved (``a.jsonl``, ``./a.jsonl``, its absolute path and a
        symlink to it are one file); a templated location (``out/{id}.wav``) collides with the
        same template only. ``wavdir`` writes a folder: two share one when their ``stem`` (the
        file names in it) is the same too.
        """
        path = kwargs["path"]
        stem = [p.default for p in info.props if p.name == "stem"]
        key = (os.path.realpath(path), kwargs.get("stem", stem[0] if stem else None))
        tok = next((t for t in node.props if dict(info.aliases).get(t.key, t.key) == "path"), None)
        pos = tok.value_pos if tok is not None else node.pos
        first = self.written.get(key)
        if first is None:
            self.written[key] = (node, path, pos)
            return
        other, other_path, other_pos = first
        line = self.p.text.count("\n", 0, other_pos) + 1
        col = other_pos - self.p.text.rfind("\n", 0, other_pos)
        at = f"line {line}, column {col}" if "\n" in self.p.text.strip() else f"column {col}"
        same = "" if other_path == path else f" ({other_path!r} and {path!r} are one file)"
        raise self.p.error(
            f"{node.label} writes {path!r}, which {other.label} ({at}) writes already{same}: "
            "one file cannot take two sinks' output (the last to finish would replace the "
            "other's); give each sink its own location",
            pos,
        )

    def run(self) -> tuple[_Node, Caps]:
        self.label()
        for chain in self.chains:
            for n in chain:
                if n.kind == "element":
                    self.build(n)
        # branches of every tee: the rest of its own chain, then the chains naming it
        children: dict[int, list[list[_Node]]] = {}
        tees: dict[str, _Node] = {}
        for chain in self.chains:
            for n in chain:
                if n.kind == "tee":
                    children[id(n)] = []
                    if n.name is not None:
                        tees[n.name] = n
        for chain in self.chains:
            for k, n in enumerate(chain):
                if n.kind == "tee" and k + 1 < len(chain):
                    children[id(n)].append(chain[k + 1 :])
        for chain in self.chains[1:]:
            ref = chain[0]
            tee = tees.get(ref.word)
            if tee is None:
                other = self.named.get(ref.word)
                if other is not None:
                    raise self.p.error(
                        f"{ref.word} is a {other.word}, not a tee: a stream splits only at a "
                        f"tee (... ! tee name={ref.word} ! ...)",
                        ref.pos,
                    )
                close = difflib.get_close_matches(ref.word, list(tees), n=3)
                known = f"did you mean {', '.join(close)}? " if close else ""
                names = ", ".join(f"{t}." for t in tees) or "none (add tee name=t)"
                raise self.p.error(
                    f"no tee named {ref.word!r} to branch from; {known}branches: {names}",
                    ref.pos,
                )
            children[id(tee)].append(chain[1:])
        head = self.chains[0][0]
        if len(self.chains[0]) == 1:
            raise self.p.error(
                f"{head.word} leads nowhere: expected `!` and an element after it", head.pos
            )
        assert head.info is not None
        caps = _source_caps(head.obj, head.info)
        self.children = children
        self.reached: set[int] = set()
        # a work list, not recursion: a tee nested in a tee nested in ... builds in one frame
        todo: list[_Segment] = [(self.chains[0][1:], head.label, caps, 0)]
        while todo:
            todo.extend(reversed(self.segment(*todo.pop())))  # its branches next, in order
        for chain in self.chains[1:]:
            if id(chain[1]) not in self.reached:
                raise self.p.error(f"this branch is never reached ({chain[0].word}.)", chain[0].pos)
        return head, caps

    def segment(self, nodes: Sequence[_Node], start: str, caps: Caps, depth: int) -> list[_Segment]:
        """Build the branch of ``nodes`` up to its first tee; return that tee's branches.

        ``depth`` is the number of Rx hops from the source to this branch's start.
        """
        if nodes:
            self.reached.add(id(nodes[0]))
        cut = next((k for k, n in enumerate(nodes) if n.kind == "tee"), len(nodes))
        body, tee = nodes[:cut], nodes[cut] if cut < len(nodes) else None
        elements: list[Operator] = []
        for n in body:
            if n.kind == "caps":
                assert n.caps is not None
                elements.append(Element(n.label, _identity, accepts=n.caps, produces=n.caps))
            elif isinstance(n.obj, Element):
                elements.append(n.obj)
            else:
                info = n.info
                assert info is not None
                elements.append(
                    Element(n.label, n.obj, accepts=info.accepts, produces=info.produces)
                )
        try:
            linked = link(
                elements,
                upstream=caps,
                upstream_name=start,
                names=[n.label for n in body],
                kinds=[n.elkind for n in body],
            )
        except LinkError as exc:
            raise self.p.error(str(exc), body[exc.index].pos) from None
        links = linked.links
        if tee is not None:
            last = body[-1].label if body else start
            links += (Link(last, tee.label, linked.caps, linked.caps),)
        sink = body[-1] if body and body[-1].elkind == "sink" else None
        steps = linked.steps
        # Each hop (a tee, a sink, an element that is not fused, a run of fused ones) is one
        # nested Rx call for every item, so the deepest path is bounded (see MAX_DEPTH).
        depth += len(fuse(*steps)) + (tee is not None)
        if depth > MAX_DEPTH:
            where = tee if tee is not None else body[-1]
            raise self.p.error(
                f"pipeline too deep: {depth} hops from the source to here (tees, sinks, "
                f"elements that are not fused), at most {MAX_DEPTH}: an item crosses each by a "
                "nested call; split one tee into several branches (t. ! a  t. ! b) rather than "
                "nesting tees",
                where.pos,
            )
        self.branches.append(
            Branch(
                start=start,
                elements=tuple(n.label for n in body),
                operators=steps[:-1] if sink is not None else steps,
                sink=steps[-1] if sink is not None else None,
                end=tee.label if tee is not None else body[-1].label if body else start,
                tee=tee.label if tee is not None else None,
                links=links,
                location=sink.location if sink is not None else None,
            )
        )
        if tee is not None:
            kids = self.children[id(tee)]
            if not kids:
                raise self.p.error(
                    f"{tee.label} has no branches: continue after it (! ...) or start them "
                    f"with {tee.name or 't'}. (give the tee a name=)",
                    tee.pos,
                )
            return [(kid, tee.label, linked.caps, depth) for kid in kids]
        return []


class Pipeline:
    """A built pipeline: one source, its branches (operator chains, sinks), negotiated caps.

    Built by :func:`parse_launch`. Nothing runs until :meth:`observable` is subscribed or
    :meth:`run` is called; each subscription opens the source once, however many branches.
    """

    def __init__(
        self,
        text: str,
        source: Observable[Any],
        source_label: str,
        source_caps: Caps,
        branches: Sequence[Branch],
        outputs: Sequence[Output] = (),
        queues: Mapping[str, Queue] | None = None,
        nodes: Mapping[str, NodeInfo] | None = None,
    ) -> None:
        self.text = text
        self.source = source
        self.source_label = source_label
        self.source_caps = source_caps
        self.branches = tuple(branches)
        self.outputs = tuple(outputs)
        """What its elements write, as named in :attr:`text` (:class:`Output`)."""
        self.queues: dict[str, Queue] = dict(queues or {})
        """Its ``queue`` elements by label; each one's ``stats`` counts what it dropped."""
        self.nodes: dict[str, NodeInfo] = dict(nodes or {})
        """Its elements by label, with their properties as written (for :meth:`to_dot`)."""
        self.stats = PipelineStats()

    @property
    def links(self) -> tuple[Link, ...]:
        """Every link, in the order of the branches."""
        return tuple(k for b in self.branches for k in b.links)

    @property
    def ends(self) -> tuple[str, ...]:
        """Labels of the branch ends (sinks, or last elements), as counted in :attr:`stats`."""
        return tuple(b.end for b in self.branches if b.tee is None)

    def caps_report(self) -> str:
        """The negotiated caps on every link and the conversions inserted, one per line."""
        lines = [f"{self.source_label}: {self.source_caps}"]
        lines += [f"{k.upstream} ! {k.downstream}: {k.caps}" for k in self.links]
        inserted = [k for k in self.links if k.inserted]
        if inserted:
            lines.append("conversions inserted:")
            lines += [
                f"  before {k.downstream}: {', '.join(k.inserted)} ({k.produced} -> {k.caps})"
                for k in inserted
            ]
        else:
            lines.append("conversions inserted: none")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """The pipeline as built, in Graphviz's DOT language: each element with its properties,
        each link labelled with its negotiated caps, inserted conversions as dashed nodes
        (:func:`~rxaudio.pipeline.graph.to_dot`)."""
        from .graph import to_dot

        return to_dot(self)

    def draw(self, path: str | os.PathLike[str]) -> str:
        """Write :meth:`to_dot`'s picture to ``path``: ``.dot`` as text, ``.svg``/``.png``/
        ``.pdf``... drawn by Graphviz's ``dot`` (:func:`~rxaudio.pipeline.graph.draw`, whose
        ConfigError names the package when ``dot`` is missing). Returns the path."""
        from .graph import draw

        return draw(self, path)

    def observable(self) -> Observable[Any]:
        """The merged outputs of every branch end (sinks' receipts, or the items of a branch
        ending in an operator); completes when every branch has completed.

        Each subscription builds the graph afresh: the source and every tee are published
        (``ops.publish()``) and connected only once every branch has subscribed, deepest first.
        (``ops.share()`` would let a source that emits on subscribe, a file, run to its end into
        the first branch before the second subscribes, and then open it again.) Disposing stops
        the source first, then disposes the sinks, which finalize their files.
        """

        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            stats = self.stats
            stats.audio_seconds = 0.0
            stats.items.clear()
            stats.receipts.clear()
            stats.items.update((e, 0) for e in self.ends)

            def on_source(item: Any) -> None:
                if isinstance(item, AudioFrame):
                    stats.audio_seconds = item.end / item.sample_rate

            connectables: list[Any] = []
            ends: list[Observable[Any]] = []
            by_start: dict[str, list[Branch]] = {}
            for b in self.branches:
                by_start.setdefault(b.start, []).append(b)

            def grow(obs: Observable[Any], b: Branch) -> list[tuple[Observable[Any], Branch]]:
                # adjacent stage-based elements run as one operator: same items, fewer hops
                x = obs.pipe(*fuse(*b.operators)) if b.operators else obs
                if b.tee is not None:
                    pub = x.pipe(ops.publish())
                    connectables.append(pub)
                    return [(pub, kid) for kid in by_start.get(b.tee, [])]
                end = b.end

                def count(_: Any, end: str = end) -> None:
                    stats.items[end] += 1

                x = x.pipe(ops.do_action(count))
                if b.sink is not None:

                    def receipt(r: Any, end: str = end) -> None:
                        if isinstance(r, FileReceipt | StreamReceipt | CountReceipt):
                            stats.receipts[end] = r

                    x = x.pipe(b.sink, ops.do_action(receipt))
                ends.append(x)
                return []

            lock = threading.Lock()
            left = [0]  # branch ends still running
            stopped = [False]
            held: list[abc.DisposableBase] = []  # subscriptions, then connections (root last)
            torn = [False]

            def keep(d: abc.DisposableBase) -> None:
                with lock:
                    if not torn[0]:
                        held.append(d)
                        return
                d.dispose()  # the stream already ended (an error while connecting)

            def teardown() -> None:
                # the source (root connection) first, then the tees, then every branch: each
                # sink finalizes its file on dispose, here, before the end is reported. Every
                # one is disposed even when one fails (a file that cannot be closed); the
                # first failure is raised after them all.
                with lock:
                    torn[0] = True
                    items, held[:] = held[::-1], []
                failures: list[Exception] = []
                for d in items:
                    try:
                        d.dispose()
                    except Exception as exc:
                        failures.append(exc)
                if failures:
                    raise failures[0]

            def on_error(exc: Exception) -> None:
                with lock:
                    if stopped[0]:
                        return
                    stopped[0] = True
                try:
                    teardown()  # the other branches' files are final before anyone hears of it
                except Exception as exc2:  # the stream's error is the one to report
                    exc.add_note(f"and while stopping the pipeline: {exc2!r}")
                observer.on_error(exc)

            def on_completed() -> None:
                with lock:
                    left[0] -= 1
                    if left[0] or stopped[0]:
                        return
                    stopped[0] = True
                try:
                    teardown()
                except Exception as exc:  # a sink could not finalize: the run failed
                    observer.on_error(exc)
                    return
                observer.on_completed()

            def guard(source: Observable[Any]) -> Observable[Any]:
                # What an element raises into its upstream's call (an observer that fails in
                # on_error, say) would otherwise reach the source, which reports it as on_error
                # down the same chain, where the element that raised has already ended and
                # drops it: nobody would hear of the end, and run() would wait for ever. It is
                # caught here instead and ends the run as its error.
                def subscribe_guarded(
                    obs: abc.ObserverBase[Any], sched: abc.SchedulerBase | None = None
                ) -> abc.DisposableBase:
                    def g_next(item: Any) -> None:
                        try:
                            obs.on_next(item)
                        except Exception as exc:
                            on_error(exc)

                    def g_error(exc: Exception) -> None:
                        try:
                            obs.on_error(exc)
                        except Exception as exc2:
                            on_error(exc2)

                    def g_completed() -> None:
                        try:
                            obs.on_completed()
                        except Exception as exc:
                            on_error(exc)

                    return source.subscribe(g_next, g_error, g_completed, scheduler=sched)

                return Observable(subscribe_guarded)

            # the source's first hop catches what its downstream raises (see ``guard``)
            root = self.source.pipe(ops.do_action(on_source), guard, ops.publish())
            connectables.append(root)
            # a work list, not recursion, in the order the branches were built
            todo: list[tuple[Observable[Any], Branch]] = [
                (root, b) for b in reversed(by_start.get(self.source_label, []))
            ]
            while todo:
                todo.extend(reversed(grow(*todo.pop())))

            left[0] = len(ends)
            for e in ends:
                keep(e.subscribe(observer.on_next, on_error, on_completed, scheduler=scheduler))
            for c in reversed(connectables):  # deepest tee first, the source last
                keep(c.connect(scheduler=scheduler))
            return Disposable(teardown)

        return Observable(subscribe)

    def run(
        self,
        *,
        scheduler: abc.SchedulerBase | None = None,
        on_poll: Callable[[], None] | None = None,
        poll_s: float = 0.1,
    ) -> list[FileReceipt | StreamReceipt | CountReceipt]:
        """Run until every branch has ended; return the sinks' receipts.

        The wait is a loop of short timed waits (``on_poll`` is called after each), so Ctrl-C
        is seen at once; on ``KeyboardInterrupt`` (or any exception raised into the wait) the
        pipeline is disposed, which stops the source and finalizes every sink's file, before
        the exception goes on. An error in the stream is raised after the files are final.
        """
        done = threading.Event()
        receipts: list[FileReceipt | StreamReceipt | CountReceipt] = []
        failed: list[Exception] = []

        def on_next(item: Any) -> None:
            if isinstance(item, FileReceipt | StreamReceipt | CountReceipt):
                receipts.append(item)

        def on_error(exc: Exception) -> None:
            failed.append(exc)
            done.set()

        sub = self.observable().subscribe(
            on_next, on_error, done.set, scheduler=scheduler or NewThreadScheduler()
        )
        try:
            while not done.wait(poll_s):
                if on_poll is not None:
                    on_poll()
        except BaseException:
            sub.dispose()
            raise
        sub.dispose()
        if failed:
            raise failed[0]
        return receipts

    def __repr__(self) -> str:
        return f"Pipeline({self.text.strip()!r})"


def parse_launch(text: str) -> Pipeline:
    """Build a :class:`Pipeline` from a launch string (see this module's docs for the syntax).

    Every element is built (options parsed and checked, files probed) and every link's caps
    negotiated before this returns; nothing runs yet.

    Raises
    ------
    LaunchError
        A syntax error, an unknown element or property, a bad value, or a link no conversion
        can fix: the message shows the line with a caret under the position.
    """
    parser = _Parser(text)
    chains = parser.parse()
    builder = _Builder(parser, chains)
    head, caps = builder.run()
    return Pipeline(
        text,
        head.obj,
        head.label,
        caps,
        builder.branches,
        builder.outputs,
        builder.queues,
        builder.nodes,
    )


# --- operator-only chains (a server's per-session chain) ---------------------------------


@dataclass(frozen=True, slots=True)
class ChainElement:
    """One operator of a chain string: its info, its options (parsed and checked), its place."""

    name: str
    info: ElementInfo
    options: dict[str, Any]
    pos: int


_CHAIN_PREFIX = "array ! "  # parsed behind a stand-in source; positions are shifted back


def _parse_behind_stand_in(text: str) -> tuple[_Parser, list[list[_Node]]]:
    """Parse ``text`` behind the stand-in source; errors point into ``text`` itself."""
    off = len(_CHAIN_PREFIX)
    parser = _Parser(_CHAIN_PREFIX + text)
    try:
        return parser, parser.parse()
    except LaunchError as exc:
        if exc.pos < off:
            msg = "empty chain: expected operators, e.g. vad ! hysteresis"
            raise LaunchError(msg, text, 0) from None
        raise LaunchError(exc.reason, text, exc.pos - off) from None


def _chain_element(parser: _Parser, node: _Node, text: str) -> ChainElement:
    """An operator node of a chain parsed behind the stand-in, its options parsed and checked."""
    assert node.info is not None
    off = len(_CHAIN_PREFIX)
    options: dict[str, Any] = {}
    for tok in node.props:
        p = parser.prop(node.info, tok)
        try:
            options[p.name] = p.parse(node.info.name, tok.value)
        except ConfigError as exc:
            raise LaunchError(str(exc), text, tok.value_pos - off) from None
    return ChainElement(node.word, node.info, options, node.pos - off)


def parse_chain(text: str) -> list[ChainElement]:
    """Parse an operator-only chain (``"vad ! hysteresis threshold=0.6"``) without building it.

    Each element's options are parsed and checked as in a launch string; every error is a
    :class:`LaunchError` pointing into ``text``. No source, sink, tee or caps filter.
    """
    parser, chains = _parse_behind_stand_in(text)
    off = len(_CHAIN_PREFIX)
    if len(chains) != 1:
        raise LaunchError("a chain here has no branches or tees", text, chains[1][0].pos - off)
    out: list[ChainElement] = []
    for node in chains[0][1:]:
        if node.kind != "element" or node.elkind != "operator" or node.info is None:
            raise LaunchError(
                f"only operators can be chained here; {node.word} is not one", text, node.pos - off
            )
        out.append(_chain_element(parser, node, text))
    if not out:
        raise LaunchError("empty chain: expected operators, e.g. vad ! hysteresis", text, 0)
    return out


@dataclass(frozen=True, slots=True)
class ChainTee:
    """A tee along a :class:`ChainGraph`'s line, after its first ``at`` elements."""

    at: int
    name: str
    pos: int
    branches: tuple[ChainGraph, ...]
    """The lines that start ``NAME. ! ...``, in the order written."""


@dataclass(frozen=True, slots=True)
class ChainGraph:
    """An operator-only launch graph: a line of elements with tees along it, a graph per
    branch of each tee (:func:`parse_graph`)."""

    elements: tuple[ChainElement, ...]
    tees: tuple[ChainTee, ...] = ()
    pos: int = 0
    """Where the line starts in the text (its first element, or its ``NAME.``)."""


def parse_graph(text: str) -> ChainGraph:
    """Parse an operator-only graph (``"tee name=t ! vad ! hysteresis t. ! level"``).

    Like :func:`parse_chain`, on a stream given from outside (no source), with tees and
    branches as in a launch string: ``tee name=t`` anywhere along a line, ``t. ! ...`` for
    each branch. Every element's options are parsed and checked; every error is a
    :class:`LaunchError` pointing into ``text``. No sinks and no caps filters.
    """
    parser, chains = _parse_behind_stand_in(text)
    off = len(_CHAIN_PREFIX)
    named: dict[str, _Node] = {}
    for k, chain in enumerate(chains):
        for node in chain if k else chain[1:]:  # chain 0 starts at the stand-in source
            if node.kind == "ref":
                continue
            if node.kind == "caps":
                raise LaunchError(
                    "no caps filters here: the stream's caps are given", text, node.pos - off
                )
            if node.kind == "element" and node.elkind != "operator":
                raise LaunchError(
                    f"only operators and tees here; {node.word} is a {node.elkind}",
                    text,
                    node.pos - off,
                )
            if node.name is not None:
                if node.name in named:
                    raise LaunchError(
                        f"the name {node.name!r} is used twice", text, node.name_pos - off
                    )
                named[node.name] = node
    by_tee: dict[str, list[list[_Node]]] = {}
    for chain in chains[1:]:
        ref = chain[0]
        tee = named.get(ref.word)
        if tee is None or tee.kind != "tee":
            tees = [n for n, v in named.items() if v.kind == "tee"]
            names = ", ".join(f"{t}." for t in tees) or "none (add tee name=t where it splits)"
            what = (
                f"{ref.word} is a {tee.word}, not a tee"
                if tee is not None
                else (f"no tee named {ref.word!r} to branch from")
            )
            raise LaunchError(f"{what}; branches: {names}", text, ref.pos - off)
        by_tee.setdefault(ref.word, []).append(chain)

    seen: set[str] = set()

    def line(nodes: Sequence[_Node], pos: int) -> ChainGraph:
        els: list[ChainElement] = []
        tees: list[ChainTee] = []
        for node in nodes:
            if node.kind == "tee":
                if node.name is None:
                    raise LaunchError(
                        "a tee here needs a name for its branches: tee name=t ... t. ! ...",
                        text,
                        node.pos - off,
                    )
                seen.add(node.name)
                branches = tuple(line(c[1:], c[0].pos - off) for c in by_tee.get(node.name, []))
                tees.append(ChainTee(len(els), node.name, node.pos - off, branches))
            else:
                els.append(_chain_element(parser, node, text))
        return ChainGraph(tuple(els), tuple(tees), pos)

    root = chains[0][1:]
    if not root:
        raise LaunchError("empty chain: expected operators, e.g. vad ! hysteresis", text, 0)
    graph = line(root, root[0].pos - off)
    for name, branches in by_tee.items():
        if name not in seen:  # a tee only reached from a branch of its own
            raise LaunchError(
                f"this branch is never reached ({name}.)", text, branches[0][0].pos - off
            )
    return graph
