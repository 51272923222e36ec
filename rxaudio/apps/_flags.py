"""Command-line flags generated from element properties.

An app that exposes an element's option (``--threshold`` for ``hysteresis``) does not restate
its default, range or doc: :func:`add_flags` builds the flag from the element's
:class:`~rxaudio.core.props.Prop` (declared once, in the factory's signature), so the value is
parsed and checked as a launch string would be, and the help shows the element's own doc,
allowed values and default. A built-in element's props are read from its generated declaration
(:func:`rxaudio.pipeline.registry.declaration`), so building a command's flags imports no
element, numpy or reactivex.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.props import ElementInfo, Prop, Range, info_of
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..pipeline.declarations import Declaration


def flag_name(option: str) -> str:
    """``min_speech_ms`` -> ``--min-speech-ms``."""
    return "--" + option.replace("_", "-")


def show(value: Any) -> str:
    """A default as people write it on a command line (``0.5``, ``250``, ``none``)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if not value.is_integer() or abs(value) >= 1e15 else str(int(value))
    return str(value)


def _plain(text: str) -> str:
    """A doc line for a terminal: no reST markup, ``%`` escaped for argparse."""
    return text.replace("``", "").replace(":class:", "").replace("`", "").replace("%", "%%")


def in_flags(message: str, info: ElementInfo | Declaration) -> str:
    """An element's error in the words of the command line, its option names as their flags:
    ``mfcc: delta_width must be odd`` -> ``--delta-width must be odd``."""
    message = message.removeprefix(f"{info.name}: ")
    names = sorted((p.name for p in info.props), key=len, reverse=True)
    words = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")\b")
    return words.sub(lambda m: flag_name(m.group(1)), message)


def flag_help(prop: Prop, *, default: str | None = None) -> str:
    """The help of a flag: the option's doc, its allowed values and its default."""
    doc = _plain(prop.doc).rstrip(".")
    dflt = show(prop.default) if default is None else default
    if prop.choices is not None:  # the metavar lists them
        return f"{doc} (default {dflt})"
    return f"{doc} ({_plain(prop.describe())}; default {dflt})"


def _metavar(prop: Prop) -> str | None:
    if prop.choices is not None:  # shown as argparse shows choices; the element checks them
        return "{" + ",".join(str(c) for c in prop.choices) + "}"
    if prop.unit:
        return prop.unit.upper()
    return {int: "N", float: "X", bool: "BOOL"}.get(prop.type, "TEXT")


def flag_type(element: str, prop: Prop, *, flag: str | None = None) -> Callable[[str], Any]:
    """Read a flag's text as the element does.

    Text that is no value of the option's type is argparse's one-line usage error; a value of
    the right type but out of range is passed on, for the element itself to refuse when the
    command builds it (its message: element, option, value, allowed range; exit 2). With
    ``flag`` (strict) an out-of-range value is refused here too, in a line naming the flag.
    """

    def parse(text: str) -> Any:
        try:
            return prop.parse(element, text)
        except ConfigError as exc:
            try:
                value = prop.type(text.strip()) if prop.type in (int, float) else text.strip()
            except ValueError:
                if flag is None:
                    raise argparse.ArgumentTypeError(str(exc)) from None
                what = "an integer" if prop.type is int else "a number"
                raise argparse.ArgumentTypeError(f"{flag} must be {what}, got {text!r}") from None
            if flag is not None:
                raise argparse.ArgumentTypeError(
                    f"{flag} must be in {prop.range}, got {text.strip()}"
                    if prop.range is not None
                    else f"{flag}: {exc}"
                ) from None
            return value

    parse.__name__ = prop.type.__name__
    return parse


def add_flags(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    element: str | Any,
    options: Sequence[str],
    *,
    unset: bool = False,
    names: Mapping[str, str] | None = None,
    ranges: Mapping[str, Range] | None = None,
    strict: bool = False,
) -> None:
    """Add ``--option`` flags for ``options`` of ``element`` (its name, or a declared factory).

    With ``unset`` the flags default to ``None`` (not given: whatever the consumer defaults to,
    e.g. a server's per-session settings, or the element's own default when the command passes
    on only the options given); otherwise to the element's own default. ``names`` keeps a
    command's established flag for an option (``{"sample_rate": "rate"}``: ``--rate``, read
    into ``args.sample_rate``). ``ranges`` narrows an option's range for this command (a
    recorder refuses a 7 Hz rate the element would take). With ``strict`` a value out of range
    is refused as it is parsed, in one line naming the flag, rather than by the element.
    """
    if isinstance(element, str):
        from ..pipeline.registry import declaration

        info: ElementInfo | Declaration = declaration(element)
    else:
        info = info_of(element)
    names = names or {}
    ranges = ranges or {}
    for name in options:
        prop = info.prop(name)
        if name in ranges:
            prop = dataclasses.replace(prop, range=ranges[name])
        flag = flag_name(names.get(name, name))
        group.add_argument(
            flag,
            dest=name,
            type=flag_type(info.name, prop, flag=flag if strict else None),
            default=None if unset else prop.default,
            metavar=_metavar(prop),
            help=flag_help(prop),
        )
