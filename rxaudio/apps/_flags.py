"""Command-line flags generated from element properties.

An app that exposes an element's option (``--threshold`` for ``hysteresis``) does not restate
its default, range or doc: :func:`add_flags` builds the flag from the element's
:class:`~rxaudio.core.props.Prop` (declared once, in the factory's signature), so the value is
parsed and checked as a launch string would be, and the help shows the element's own doc,
allowed values and default.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from ..core.props import Prop, info_of
from ..errors import ConfigError


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


def flag_type(element: str, prop: Prop) -> Callable[[str], Any]:
    """Read a flag's text as the element does.

    Text that is no value of the option's type is argparse's one-line usage error; a value of
    the right type but out of range is passed on, for the element itself to refuse when the
    command builds it (its message: element, option, value, allowed range; exit 2).
    """

    def parse(text: str) -> Any:
        try:
            return prop.parse(element, text)
        except ConfigError as exc:
            try:
                return prop.type(text.strip()) if prop.type in (int, float) else text.strip()
            except ValueError:
                raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = prop.type.__name__
    return parse


def add_flags(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    factory: Any,
    options: Sequence[str],
    *,
    unset: bool = False,
) -> None:
    """Add ``--option`` flags for ``options`` of the element ``factory``.

    With ``unset`` the flags default to ``None`` (not given: whatever the consumer defaults to,
    e.g. a server's per-session settings); otherwise to the element's own default.
    """
    info = info_of(factory)
    for name in options:
        prop = info.prop(name)
        group.add_argument(
            flag_name(name),
            dest=name,
            type=flag_type(info.name, prop),
            default=None if unset else prop.default,
            metavar=_metavar(prop),
            help=flag_help(prop),
        )
