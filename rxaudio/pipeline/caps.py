"""Caps and negotiation: re-exports :class:`~rxaudio.core.Caps` and ``conform``; :func:`link`
checks the caps along a chain of elements, inserting the audio conversions it needs and
reporting them, and :func:`negotiate` composes such a chain.

(:class:`Caps` lives in the bottom layer, :mod:`rxaudio.core.caps`; ``conform`` is an operator,
:mod:`rxaudio.operators`; both are named here too for existing imports.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reactivex import Observable, compose

from ..core.caps import Caps
from ..errors import ConfigError
from ..operators._conform import conform

__all__ = ["Caps", "Link", "LinkError", "Linked", "conform", "fitting", "link", "negotiate"]

Operator = Callable[[Observable[Any]], Observable[Any]]

_FIELD_WORDS = {
    "sample_rate": ("rate", " Hz"),
    "channels": ("channels", ""),
    "frame_size": ("frame", ""),
}


@dataclass(frozen=True, slots=True)
class Link:
    """One negotiated link: what ``upstream`` gives and what ``downstream`` receives."""

    upstream: str
    downstream: str
    produced: Caps
    """The caps ``upstream`` guarantees."""
    caps: Caps
    """The caps ``downstream`` receives (after the conversions inserted here)."""
    inserted: tuple[str, ...] = ()
    """The conversions inserted on this link, in words (``rate 44100 -> 16000 Hz``)."""

    def __str__(self) -> str:
        text = f"{self.upstream} ! {self.downstream}: {self.caps}"
        if self.inserted:
            text += f"  (inserted: {', '.join(self.inserted)}; from {self.produced})"
        return text


@dataclass(frozen=True, slots=True)
class Linked:
    """A checked chain: the steps to run (conversions included), its links and its end caps."""

    steps: tuple[Operator, ...]
    links: tuple[Link, ...]
    caps: Caps

    @property
    def inserted(self) -> tuple[Link, ...]:
        """The links where a conversion was inserted."""
        return tuple(k for k in self.links if k.inserted)

    def __call__(self, source: Observable[Any]) -> Observable[Any]:
        return compose(*self.steps)(source) if self.steps else source


class LinkError(ConfigError):
    """Two elements cannot be linked: the upstream's frames are not what the downstream takes.

    ``index`` is the position of the downstream element in the chain given to :func:`link`;
    ``fits`` the registered elements that could go between them.
    """

    def __init__(
        self,
        message: str,
        *,
        upstream: str,
        downstream: str,
        produced: Caps,
        accepts: Caps,
        index: int,
        fits: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.upstream, self.downstream = upstream, downstream
        self.produced, self.accepts = produced, accepts
        self.index = index
        self.fits = tuple(fits)


def fitting(produced: Caps, accepts: Caps) -> list[str]:
    """Registered operators that take ``produced`` and give what ``accepts`` takes."""
    from .registry import registry

    out = []
    for name, info in sorted(registry().items()):
        if info.kind != "operator" or info.accepts is None:
            continue
        if info.accepts.can_take(produced) and accepts.can_take(produced.then(info.produces)):
            out.append(name)
    return out


def _takers(produced: Caps, kind: str) -> list[str]:
    from .registry import registry

    return sorted(
        n
        for n, i in registry().items()
        if i.kind == kind and i.accepts is not None and i.accepts.can_take(produced)
    )


def _conversion(current: Caps, accepts: Caps) -> tuple[Caps | None, tuple[str, ...]]:
    """The conform caps (only the fields that may differ) and the words for them."""
    need: dict[str, int | None] = {}
    words = []
    for name in ("channels", "sample_rate", "frame_size"):  # conform's order
        want, have = getattr(accepts, name), getattr(current, name)
        if want is not None and want != have:
            need[name] = want
            word, unit = _FIELD_WORDS[name]
            words.append(f"{word} {'?' if have is None else have} -> {want}{unit}")
    if not need:
        return None, ()
    return (
        Caps(need.get("sample_rate"), need.get("channels"), need.get("frame_size")),
        tuple(words),
    )


def _after(current: Caps, produces: Caps) -> Caps:
    """``current.then(produces)``, where a change of rate also unfixes the frame size (a
    resampler's output frames are not the size of its input frames) unless it is declared."""
    out = current.then(produces)
    rate_changed = produces.sample_rate is not None and produces.sample_rate != current.sample_rate
    if out.is_audio and rate_changed and produces.frame_size is None and out.frame_size is not None:
        return Caps(out.sample_rate, out.channels, None)
    return out


def _name(el: Any, names: Sequence[str] | None, i: int) -> str:
    if names is not None:
        return names[i]
    return str(getattr(el, "name", None) or getattr(el, "__name__", None) or el)


def link(
    elements: Sequence[Operator],
    *,
    upstream: Caps | None = None,
    upstream_name: str = "source",
    names: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> Linked:
    """Check the caps along ``upstream ! elements[0] ! elements[1] ! ...`` and insert
    :func:`conform` wherever an element's declared input caps (its ``accepts`` attribute, see
    :class:`~rxaudio.core.element.Element`) are not guaranteed by what comes before it: only
    the fields that may differ are converted (channels, then rate, then frame size).

    Parameters
    ----------
    elements
        Operators or sinks; their ``accepts``/``produces`` attributes are read (none: any audio).
    upstream
        What the stream carries before the first element (default: audio, format unknown, so the
        first element that constrains its audio input always gets a conversion, a pass-through
        when the stream matches).
    upstream_name
        Name of what feeds the first element, for the report and errors.
    names
        Names of the elements (default: their ``name`` attribute).
    kinds
        Their kinds (``operator``, ``sink``), for the hint when a sink cannot take a stream.

    Raises
    ------
    LinkError
        An element takes frames that the one before it cannot produce (e.g. ``hysteresis``
        after audio): the message names both elements, both caps, and the registered elements
        that would fit between them.
    """
    steps: list[Operator] = []
    links: list[Link] = []
    current = upstream if upstream is not None else Caps()
    prev = upstream_name
    for i, el in enumerate(elements):
        name = _name(el, names, i)
        accepts: Caps = getattr(el, "accepts", None) or Caps()
        produces: Caps = getattr(el, "produces", None) or Caps()
        if not accepts.can_take(current):
            fits = fitting(current, accepts)
            if fits:
                hint = f"put {' or '.join(fits)} between them ({prev} ! {fits[0]} ! {name})"
            else:
                hint = f"no registered element turns {current.kind} frames into {accepts.kind}"
                sinks = _takers(current, "sink")
                if sinks and kinds is not None and kinds[i] == "sink":
                    hint += f"; sinks that take {current.kind}: {', '.join(sinks)}"
            raise LinkError(
                f"cannot link {prev} to {name}: {name} accepts {accepts.kind} frames but "
                f"receives {current.kind} frames ({prev} produces {current}; {name} accepts "
                f"{accepts}); {hint}",
                upstream=prev,
                downstream=name,
                produced=current,
                accepts=accepts,
                index=i,
                fits=fits,
            )
        produced, words = current, tuple[str, ...]()
        if accepts.is_audio:
            need, words = _conversion(current, accepts)
            if need is not None:
                steps.append(conform(need))
                current = _after(current, need)
        links.append(Link(prev, name, produced, current, words))
        steps.append(el)
        if not getattr(el, "passthrough", False):  # a queue gives what it takes
            current = _after(current, produces)
        prev = name
    return Linked(tuple(steps), tuple(links), current)


def negotiate(*elements: Operator) -> Operator:
    """Compose elements, inserting :func:`conform` wherever an element's declared input caps
    are not guaranteed by what the elements before it produce (see :func:`link`, which also
    reports what it inserted). The source's caps are unknown, so the first element that
    constrains its audio input always gets a conversion (a pass-through when it matches).

    Example: ``negotiate(level())`` needs nothing; ``negotiate(reframe(512), resample(8000))``
    keeps both as written; an element declaring ``Caps(16000, 1, 512)`` gets
    ``conform(Caps(16000, 1, 512))`` in front of it unless its predecessors guarantee that.

    Raises
    ------
    LinkError
        An element needs frames the one before it does not produce (a :class:`ConfigError`).
    """
    return compose(*link(elements).steps)
