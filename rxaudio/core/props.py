"""Element properties: one source of truth for every option's type, default, range and doc.

An element factory declares its options in its own keyword signature, each annotated with
``typing.Annotated`` metadata, and documents them in its numpydoc ``Parameters`` section::

    @element("resample", kind="operator", produces=Caps())
    def resample(
        rate: Annotated[int, Range(1, 768_000), Unit("Hz")],
        *,
        quality: Annotated[str, Choices(QUALITIES)] = "HQ",
    ) -> Operator[AudioFrame, AudioFrame]:
        '''Convert audio to ``rate`` Hz with soxr, streaming.
        ...
        Parameters
        ----------
        rate
            Output sample rate in Hz.
        '''

:func:`element` reads that once into :class:`Prop` objects (name, type, default, range or
choices, unit, doc) kept on the function as ``__element__`` (an :class:`ElementInfo`), and
checks every call's arguments against them before the body runs, so a bad value raises
:class:`~rxaudio.errors.ConfigError` naming the element, the option, the value and what is
allowed. The registry (:mod:`rxaudio.pipeline.registry`), launch strings, ``rxaudio inspect``,
the apps' flags and ``docs/elements.md`` are all generated from these objects; the body keeps
only checks that span several options.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError

if TYPE_CHECKING:  # imported where used: the flags of `rxaudio CMD --help` need no numpy
    from .caps import Caps

F = TypeVar("F", bound=Callable[..., Any])

KINDS = ("source", "operator", "sink")
REQUIRED: Any = inspect.Parameter.empty


def _num(v: float) -> str:
    """A bound for people: ``3600000`` rather than ``3.6e+06``, ``1e-30`` stays short."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds (``None``: unbounded); ``lo_open``/``hi_open`` make a bound exclusive."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        """Whether ``v`` lies within the bounds."""
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self) -> str:
        if self.hi is None and self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.lo is None and self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


@dataclass(frozen=True, slots=True)
class Choices:
    """The allowed values of an option."""

    values: tuple[Any, ...]

    def __init__(self, values: Sequence[Any]) -> None:
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True, slots=True)
class Unit:
    """The unit of a numeric option, for docs and messages (``Hz``, ``ms``, ``dB``...)."""

    name: str


@dataclass(frozen=True, slots=True)
class Prop:
    """One option of an element."""

    name: str
    type: type  # int, float, str, bool (the base type; ``optional`` says None is allowed too)
    default: Any = REQUIRED
    doc: str = ""
    unit: str | None = None
    range: Range | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    positional: bool = False  # may be given without its name (first parameter)
    loose: bool = False  # the annotation also admits non-text values (a callable...): unchecked
    text: bool = False  # the annotation also admits str: text not parsing as ``type`` stays text

    @property
    def required(self) -> bool:
        """Whether the option has no default."""
        return self.default is REQUIRED

    def describe(self) -> str:
        """What values are allowed, in words (``an int in [1, 768000] Hz``)."""
        if self.choices is not None:
            what = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            what = {
                int: "an int",
                float: "a finite number",
                str: "a string",
                bool: "true or false",
            }.get(self.type, self.type.__name__)
            if self.range is not None:
                what += f" {'in ' if str(self.range)[0] in '[(' else ''}{self.range}"
            if self.unit:
                what += f" {self.unit}"
            if self.text:
                what += " or a name"
        return what + (" or none" if self.optional else "")

    def check(self, element: str, value: Any) -> Any:
        """Validate ``value`` (ConfigError naming ``element``, the option and what is allowed)."""
        if value is None and self.optional:
            return None
        if self.loose and not isinstance(value, self.type):
            return value  # e.g. a scorer factory where a backend name is also allowed
        ok = True
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.type is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        elif self.type is str:
            ok = isinstance(value, str)
        if ok and self.choices is not None:
            ok = value in self.choices
        if ok and self.range is not None and self.type in (int, float):
            ok = self.range.contains(value)
        if not ok:
            raise ConfigError(f"{element}: {self.name} must be {self.describe()}, got {value!r}")
        return float(value) if self.type is float else value

    def parse(self, element: str, text: str) -> Any:
        """A value from text (a launch string or a command line), then :meth:`check`."""
        t = text.strip()
        if self.optional and t.lower() in ("none", "null", ""):
            return None
        value: Any = t
        try:
            if self.type is bool:
                low = t.lower()
                if low not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ValueError(t)
                value = low in ("true", "yes", "1", "on")
            elif self.type is int:
                value = int(t, 0) if t.lower().startswith(("0x", "0o", "0b")) else int(t)
            elif self.type is float:
                value = float(t)
        except ValueError:
            if self.text:
                return self.check(element, t)  # e.g. a device name where an index is also allowed
            raise ConfigError(
                f"{element}: {self.name} must be {self.describe()}, got {text!r}"
            ) from None
        return self.check(element, value)


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """What an element is: its name, kind, one line, options and caps."""

    name: str
    kind: str  # "source" | "operator" | "sink"
    description: str
    props: tuple[Prop, ...]
    accepts: Caps | None  # None for sources
    produces: Caps
    factory: Callable[..., Any] = field(repr=False, compare=False)
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, option name), e.g. ("location", "path")
    writes: tuple[str, ...] = ()
    """The options that name what the element writes (``("path",)``; ``wavdir``: its folder and
    its file names' ``stem``). Equal values, equal files: two runs with the same values write
    the same names, so a pipeline run once per item (``rxaudio worker``) must make one of them
    differ per item. Empty for elements that write nothing, or names unique by construction."""

    def prop(self, name: str) -> Prop:
        """The option called ``name`` (or by one of its aliases); ConfigError when unknown."""
        return find_prop(self.name, self.props, self.aliases, name)


def find_prop(
    element: str, props: Sequence[Prop], aliases: Sequence[tuple[str, str]], name: str
) -> Prop:
    """The option of ``element`` called ``name`` or by one of its ``(alias, option)`` pairs;
    ConfigError naming the element's options when there is none."""
    real = dict(aliases).get(name, name)
    for p in props:
        if p.name == real:
            return p
    known = ", ".join(p.name for p in props) or "none"
    raise ConfigError(f"{element}: no option {name!r}; its options: {known}")


def _doc_params(doc: str) -> dict[str, str]:
    """The numpydoc ``Parameters`` section as {name: text} (first paragraph, one line)."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    try:
        i = next(k for k, ln in enumerate(lines) if ln.strip() == "Parameters")
    except StopIteration:
        return out
    i += 2  # the dashes
    name: list[str] | None = None
    buf: list[str] = []
    while i < len(lines):
        ln = lines[i]
        if ln and not ln.startswith(" ") and i + 1 < len(lines) and set(lines[i + 1]) == {"-"}:
            break  # the next section
        if ln and not ln.startswith(" "):
            if name:
                for n in name:
                    out[n] = " ".join(buf).strip()
            name = [n.strip() for n in ln.split(":")[0].split(",")]
            buf = []
        elif ln.strip():
            if not (buf and buf[-1] == ""):
                buf.append(ln.strip())
        elif buf:
            buf.append("")  # a paragraph ends: keep only the first
        i += 1
    if name:
        for n in name:
            out[n] = " ".join(x for x in buf if x).strip()
    for k, v in out.items():  # first paragraph only
        out[k] = v.split("  ")[0]
    return out


_TEXT = (bool, int, float, str)


def _base(tp: Any) -> tuple[Any, bool, bool, bool]:
    """(base type, optional, loose, text) of an annotation like ``int``, ``float | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional, False, False
        text = [a for a in args if a in _TEXT]
        if text:  # e.g. str | ScorerFactory: settable as text, other values pass unchecked
            # int | str (a device index or name): text that is no int is passed on as a name
            return text[0], optional, True, text[0] is not str and str in text
        return object, optional, False, False
    return tp, False, False, False


def props_of(fn: Callable[..., Any]) -> tuple[Prop, ...]:
    """The options of an element factory, from its signature, annotations and docstring."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    docs = _doc_params(fn.__doc__ or "")
    props = []
    for i, (name, p) in enumerate(sig.parameters.items()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        tp = hints.get(name, Any)
        meta: tuple[Any, ...] = ()
        if typing.get_origin(tp) is typing.Annotated:
            tp, *rest = typing.get_args(tp)
            meta = tuple(rest)
        positional = i == 0 and p.kind is not p.KEYWORD_ONLY
        props.append(_prop(name, tp, meta, p.default, docs.get(name, ""), positional))
    return tuple(props)


def _prop(
    name: str, tp: Any, meta: tuple[Any, ...], default: Any, doc: str, positional: bool = False
) -> Prop:
    """One :class:`Prop` from an annotation's base type and its ``Annotated`` metadata."""
    base, optional, loose, text = _base(tp)
    if base not in _TEXT:
        base = object
    rng = next((m for m in meta if isinstance(m, Range)), None)
    ch = next((m for m in meta if isinstance(m, Choices)), None)
    unit = next((m.name for m in meta if isinstance(m, Unit)), None)
    return Prop(
        name=name,
        type=base,
        default=default,
        doc=doc,
        unit=unit,
        range=rng,
        choices=ch.values if ch else None,
        optional=optional,
        positional=positional,
        loose=loose,
        text=text,
    )


def field_props(cls: type) -> dict[str, tuple[Prop, tuple[Any, ...]]]:
    """The fields of a dataclass declared like an element's options, by name.

    Each field's ``Annotated`` metadata gives its :class:`Range`, :class:`Choices` and
    :class:`Unit` as in :func:`props_of`, its numpydoc ``Parameters`` entry its doc; the
    metadata itself comes back beside the :class:`Prop` for what the caller adds (a command's
    flag, say). A field whose default is a factory has :data:`REQUIRED` as its default.
    """
    import dataclasses

    hints = typing.get_type_hints(cls, include_extras=True)
    docs = _doc_params(cls.__doc__ or "")
    out: dict[str, tuple[Prop, tuple[Any, ...]]] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        meta: tuple[Any, ...] = ()
        if typing.get_origin(tp) is typing.Annotated:
            tp, *rest = typing.get_args(tp)
            meta = tuple(rest)
        default = REQUIRED if f.default is dataclasses.MISSING else f.default
        out[f.name] = (_prop(f.name, tp, meta, default, docs.get(f.name, "")), meta)
    return out


def first_line(doc: str | None) -> str:
    """The one-line description of a docstring."""
    text = inspect.cleandoc(doc or "").strip()
    line = text.split("\n\n")[0].replace("\n", " ")
    return re.sub(r"\s+", " ", line)


def element(
    name: str,
    *,
    kind: str,
    accepts: Caps | None = None,
    produces: Caps | None = None,
    aliases: dict[str, str] | None = None,
    writes: Sequence[str] = (),
) -> Callable[[F], F]:
    """Declare an element factory: its info is kept as ``fn.__element__``, calls are checked.

    ``accepts``/``produces`` are the static caps shown by ``inspect`` (what the element takes
    and gives whatever its options; the built element's own ``accepts``/``produces`` may be
    narrower, e.g. ``resample(16000)`` produces ``rate=16000``). Options typed ``object``
    (callables, arrays, schedulers) are documented but not settable from text. ``writes``
    names the options that fix the names of the files the element writes (see
    :attr:`ElementInfo.writes`).
    """
    if kind not in KINDS:
        raise ValueError(f"element {name}: kind must be one of {KINDS}, got {kind!r}")
    from .caps import Caps

    def wrap(fn: F) -> F:
        props = props_of(fn)
        unknown = [w for w in writes if w not in {p.name for p in props}]
        if unknown:
            raise ValueError(f"element {name}: writes names no option: {', '.join(unknown)}")
        sig = inspect.signature(fn)
        checked = [p for p in props if p.type is not object]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise ConfigError(f"{name}: {exc}") from None
            for p in checked:
                if p.name in bound.arguments:
                    bound.arguments[p.name] = p.check(name, bound.arguments[p.name])
            return fn(*bound.args, **bound.kwargs)

        info = ElementInfo(
            name=name,
            kind=kind,
            description=first_line(fn.__doc__),
            props=props,
            accepts=None if kind == "source" else (accepts or Caps()),
            produces=produces or Caps(),
            factory=call,
            aliases=tuple((aliases or {}).items()),
            writes=tuple(writes),
        )
        call.__element__ = info  # type: ignore[attr-defined]
        return typing.cast(F, call)

    return wrap


def info_of(factory: Any) -> ElementInfo:
    """The :class:`ElementInfo` of a factory declared with :func:`element`."""
    info = getattr(factory, "__element__", None)
    if not isinstance(info, ElementInfo):
        raise TypeError(f"{factory!r} is not an element factory (declare it with @element)")
    return info
