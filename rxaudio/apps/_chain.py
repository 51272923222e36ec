"""An app's chain: a launch string of registered elements whose options are also its flags.

Each app declares its chain once, as text, with the options of each element it offers on the
command line::

    SEGMENT = FlagChain(
        "vad ! hysteresis ! buffer_utterance",
        {"vad": ("backend", "mode", "frame_ms"), "hysteresis": ("threshold", ...)},
    )

:meth:`FlagChain.add_arguments` generates the flags from the elements' declarations (type,
default, range, help; see :mod:`._flags`); :meth:`FlagChain.build` builds the chain through the
registry with, per element, the string's own options, then the flags given, then what the app
fixes (``fixed``). Nothing about an option is written in the app: a new option on an element
becomes a flag by naming it here.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline.launch import ChainElement

Options = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class FlagChain:
    """A chain string and, per element name, the options offered as flags.

    With ``unset`` the flags default to ``None``: an option not given is left to the element
    (or to ``fixed``) rather than passed with the element's default.
    """

    text: str
    flags: Mapping[str, Sequence[str]]
    unset: bool = False

    @cached_property
    def elements(self) -> list[ChainElement]:
        """The parsed chain (options checked; errors point into :attr:`text`)."""
        from ..pipeline.launch import parse_chain

        els = parse_chain(self.text)
        names = [e.name for e in els]
        for name in self.flags:
            if name not in names:
                raise ValueError(f"{name!r} is not an element of {self.text!r}")
        return els

    def add_arguments(
        self, group: argparse.ArgumentParser | argparse._ArgumentGroup, **kw: Any
    ) -> None:
        """Add every element's flags to ``group``, in the order of :attr:`flags` (``kw`` as
        :func:`._flags.add_flags`).

        Built from the elements' declarations alone: the chain is not parsed (nor its elements
        imported) to show ``--help``; :attr:`elements` checks it when the command runs."""
        from ._flags import add_flags

        for name, options in self.flags.items():
            if options:
                add_flags(group, name, options, unset=self.unset, **kw)

    def options(self, args: argparse.Namespace, fixed: Mapping[str, Any] | None = None) -> Options:
        """Per element: the string's options, the flags given (not ``None``), then ``fixed``."""
        out: Options = {}
        for el in self.elements:
            opts = dict(el.options)
            for name in self.flags.get(el.name, ()):
                value = getattr(args, name, None)
                if value is not None:
                    opts[name] = value
            opts.update((fixed or {}).get(el.name, {}))
            out[el.name] = opts
        return out

    def build(self, args: argparse.Namespace, fixed: Mapping[str, Any] | None = None) -> list[Any]:
        """The chain's operators, built through the registry (options checked at once).

        Adjacent stage-based elements come fused into one operator (:func:`~rxaudio.core.fuse.fuse`:
        the same items, fewer Rx hops).
        """
        from ..core.fuse import fuse
        from ..pipeline import registry

        return fuse(
            *(registry.make(name, **opts) for name, opts in self.options(args, fixed).items())
        )
