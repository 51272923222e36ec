"""What every session's chain is built from: :class:`ChainOptions` and the live settings.

Declarative and light (no aiohttp, Rx or model imports at module level): ``rxaudio serve
--help`` builds its flags from these names, and :mod:`.config` holds a ``ChainOptions``. The
chain itself is built by :mod:`.pipeline`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..core.caps import Caps
    from ..pipeline.launch import ChainElement, ChainGraph

PIPELINE_RATE = 16000
# every session's speech chain, as a launch string built through the registry (the default of
# ``rxaudio serve --pipeline``; its shape is fixed, its properties are not)
SPEECH_CHAIN = "vad ! hysteresis ! buffer_utterance"
HYSTERESIS_KEYS = ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms")
UTTERANCE_KEYS = ("pre_roll_ms", "post_roll_ms", "max_ms")
BACKENDS = ("silero", "webrtc", "energy")
WINDOW = 512  # Silero's window at 16 kHz
# what a chain before a Silero vad may leave the audio as: the model's rate, mono (or unchanged)
_SILERO_CAPS = ((PIPELINE_RATE, 1), (None, 1), (PIPELINE_RATE, None), (None, None))


# the events a session gives by default (``start``'s ``events`` when a client names none, with
# those of any branches of ``--pipeline``) and what each kind of branch end gives: the element
# a display branch ends in names its event (the protocol carries these items)
EVENTS = ("level", "vad", "spectrogram")
BRANCH_EVENTS = {
    "level": "level",
    "spectrogram": "spectrogram",
    "mfcc": "mfcc",
    "spectral": "spectral",
}
EVENT_TYPES = ("level", "vad", "spectrogram", "mfcc", "spectral")

Settings = dict[str, float | None]
"""Live settings by name; ``neg_threshold`` None means derived from ``threshold``."""


def default_settings() -> Settings:
    """The operators' own defaults for every live setting (``neg_threshold``: None = derived)."""
    from dataclasses import asdict

    from ..vad.hysteresis import HysteresisSettings
    from ..vad.utterance import UtteranceSettings

    both = {**asdict(HysteresisSettings()), **asdict(UtteranceSettings())}
    return {k: both[k] for k in (*HYSTERESIS_KEYS, *UTTERANCE_KEYS)}


def check_settings(settings: Mapping[str, Any]) -> None:
    """Validate merged live settings with the operators' own rules (raises ConfigError)."""
    from ..vad.hysteresis import HysteresisSettings
    from ..vad.utterance import UtteranceSettings

    HysteresisSettings(**{k: settings[k] for k in HYSTERESIS_KEYS if k in settings}).checked()
    UtteranceSettings(**{k: settings[k] for k in UTTERANCE_KEYS if k in settings}).checked()


@dataclass(frozen=True, slots=True)
class ChainOptions:
    """What a session's chain is built from (fixed at start) and its initial live settings.

    ``vad`` holds the vad element's other options (``mode``, ``frame_ms``, ``rate``), ``fixed``
    the options of ``hysteresis``/``buffer_utterance`` that are not live settings (by element
    name: ``{"hysteresis": {"max_gap_ms": 1500}}``), ``transcribe`` the ``transcribe`` element's
    options when utterances are transcribed (``None``: they are not). :meth:`from_pipeline`
    reads all of them from a chain string (``rxaudio serve --pipeline``).
    """

    events: tuple[str, ...] = EVENTS
    backend: str = "silero"
    settings: dict[str, float] = field(default_factory=dict)
    vad: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcribe: dict[str, Any] | None = None
    before: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Elements before ``vad`` (name, options), on the session's 16 kHz mono audio."""
    branches: tuple[tuple[int, ChainGraph], ...] = ()
    """Display branches of ``--pipeline``: (after how many of :attr:`before`, the branch's
    graph), each ending in elements whose items the protocol carries (:data:`BRANCH_EVENTS`)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"serve: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        check_settings(self.settings)
        if self.transcribe is not None:
            if {"passthrough", "scheduler"} & set(self.transcribe):
                raise ConfigError("serve: transcribe passthrough and scheduler are the server's")
            from ..pipeline import registry

            registry.make("transcribe", **self.transcribe)  # checked at once
        self.before_operators()  # built and linked at once: errors before the server starts

    def event_types(self) -> tuple[str, ...]:
        """Every event this chain can give: the session's own and its branches' ends."""
        extra = [e for _, g in self.branches for e in _graph_events(g) if e not in EVENTS]
        return (*EVENTS, *dict.fromkeys(extra))

    def before_operators(self) -> list[Callable[[Any], Any]]:
        """The elements before ``vad``, freshly built, with any conversion they need."""
        return [op for seg in self.before_segments() for op in seg]

    def before_segments(self, cuts: tuple[int, ...] = ()) -> list[list[Callable[[Any], Any]]]:
        """:meth:`before_operators` split after the first ``k`` elements for each ``k`` in
        ``cuts`` (where branches leave): one list per stretch, linked stretch by stretch."""
        return [ops for ops, _ in self._segments(cuts)]

    def _segments(self, cuts: tuple[int, ...]) -> list[tuple[list[Callable[[Any], Any]], Caps]]:
        from ..core.caps import Caps
        from ..pipeline import registry

        bounds = sorted({0, *cuts, len(self.before)})
        caps: Caps = Caps(sample_rate=PIPELINE_RATE, channels=1, frame_size=WINDOW)
        upstream = "the session's audio"
        out: list[tuple[list[Callable[[Any], Any]], Caps]] = []
        for a, b in itertools.pairwise(bounds):
            part = self.before[a:b]
            built = [registry.make(name, **opts) for name, opts in part]
            steps, caps = _linked(built, caps, upstream)
            upstream = part[-1][0]
            out.append((steps, caps))
        if not out:
            out.append(([], caps))
        if self.before:
            end = out[-1][1]
            from ..frames import AudioFrame

            if end.frame not in (None, AudioFrame) or (
                self.backend == "silero" and (end.sample_rate, end.channels) not in _SILERO_CAPS
            ):
                raise ConfigError(
                    f"serve: vad takes the session's {PIPELINE_RATE} Hz mono audio; "
                    f"{self.before[-1][0]} gives {end}"
                )
        return out

    def branch_caps(self) -> dict[int, Caps]:
        """The caps of the audio at each point where a branch leaves (after ``k`` elements)."""
        cuts = tuple(sorted({k for k, _ in self.branches}))
        bounds = sorted({0, *cuts, len(self.before)})
        segs = self._segments(cuts)
        from ..core.caps import Caps

        start = Caps(sample_rate=PIPELINE_RATE, channels=1, frame_size=WINDOW)
        at = {0: start}
        for b, (_, caps) in zip(bounds[1:], segs, strict=False):
            at[b] = caps
        return {k: at[k] for k in cuts}

    @classmethod
    def from_pipeline(
        cls, text: str, *, settings: Mapping[str, float] | None = None
    ) -> ChainOptions:
        """The options a per-session graph string describes (``vad ! hysteresis ! ...``).

        The speech chain is the server's: ``vad ! hysteresis ! buffer_utterance``, each with any
        of its properties (checked as in a launch string; errors point into ``text``), and
        optionally ``! transcribe`` with its properties. Any operators the registry builds may
        come before ``vad`` (``gain db=-3 ! vad ! ...``): they run on the session's 16 kHz mono
        audio, and the batched scorer scores what reaches ``vad``. A tee on the audio before
        ``vad`` gives display branches (``tee name=t ! vad ! hysteresis ! buffer_utterance t. !
        spectral``), each ending in an element whose items the protocol carries (``level``,
        ``spectrogram kind=log_mel``, ``mfcc``, ``spectral``: :data:`BRANCH_EVENTS`); a branch
        of an event the server has by default replaces the server's own. The hysteresis and
        buffer_utterance properties that clients may change live become the sessions' default
        settings; ``settings`` (from flags) may not set one of them again.
        """
        from ..pipeline.launch import LaunchError, parse_chain, parse_graph

        graph = parse_graph(text)
        want = [e.name for e in parse_chain(SPEECH_CHAIN)]
        vads = [e for e in _graph_elements(graph) if e.name == "vad"]
        if not vads:
            raise LaunchError(
                f"the server's per-session chain has vad in it ({SPEECH_CHAIN}, with any "
                "elements on the session's audio before vad)",
                text,
                graph.pos,
            )
        if len(vads) > 1:
            raise LaunchError(
                "one vad per session: the batched scorer scores one stream per session",
                text,
                vads[1].pos,
            )
        for el in _graph_elements(graph):
            if el.name == "queue":
                raise LaunchError(
                    "queue is a thread boundary, and a session runs on the server's event loop "
                    "(its windows are batched across sessions, its events sent from the loop); "
                    "drop it here, or use it in rxaudio launch",
                    text,
                    el.pos,
                )
        before, branches, els = _speech_path(graph, text)
        for el in before:
            if el.name in (*want, "transcribe"):
                raise LaunchError(f"{el.name} goes after vad", text, el.pos)
        for _, g in branches:
            for el in _graph_elements(g):
                if el.name in (*want, "transcribe"):
                    raise LaunchError(
                        f"{el.name} belongs on the speech chain ({SPEECH_CHAIN}), not on a "
                        "display branch",
                        text,
                        el.pos,
                    )
        transcribe: dict[str, Any] | None = None
        if len(els) == len(want) + 1 and els[-1].name == "transcribe":
            transcribe = dict(els[-1].options)
            if "passthrough" in transcribe:
                raise LaunchError(
                    "transcribe passthrough is the server's to set", text, els[-1].pos
                )
            els = els[:-1]
        for i, el in enumerate(els):
            if i >= len(want) or el.name != want[i]:
                raise LaunchError(
                    f"the server's per-session chain is {SPEECH_CHAIN}, "
                    f"each with its properties; {el.name} does not fit here",
                    text,
                    el.pos,
                )
        if len(els) < len(want):
            raise LaunchError(
                f"the chain must go on with {want[len(els)]} (the server's per-session chain is "
                f"{SPEECH_CHAIN})",
                text,
                len(text),
            )
        vad_opts = dict(els[0].options)
        backend = str(vad_opts.pop("backend", "silero"))
        if backend not in BACKENDS:
            raise LaunchError(
                f"the server's vad backend is one of {', '.join(BACKENDS)}, got {backend!r}",
                text,
                els[0].pos,
            )
        if vad_opts.get("resample", True) is not True:
            raise LaunchError("vad resample=false: the server converts for the model", text, 0)
        vad_opts.pop("resample", None)
        if backend == "silero" and vad_opts.get("rate") not in (None, PIPELINE_RATE):
            raise LaunchError(
                f"the server runs Silero at {PIPELINE_RATE} Hz; drop vad rate=", text, els[0].pos
            )
        live: dict[str, float] = {}
        fixed: dict[str, dict[str, Any]] = {}
        for el, keys in ((els[1], HYSTERESIS_KEYS), (els[2], UTTERANCE_KEYS)):
            for k, v in el.options.items():
                if k in keys:
                    if v is not None:
                        live[k] = float(v)
                elif k == "passthrough":
                    raise LaunchError(
                        "buffer_utterance passthrough is the server's to set", text, el.pos
                    )
                else:
                    fixed.setdefault(el.name, {})[k] = v
        for k in settings or {}:
            if k in live:
                raise ConfigError(
                    f"serve: {k} is set twice, in --pipeline and with --{k.replace('_', '-')}; "
                    "keep one"
                )
        for i, el in enumerate(before):  # each built and linked now, with a caret on error
            try:
                cls(
                    backend=backend,
                    before=tuple((e.name, dict(e.options)) for e in before[: i + 1]),
                )
            except ConfigError as exc:
                raise LaunchError(str(exc), text, el.pos) from None
        out = cls(
            backend=backend,
            settings={**live, **(settings or {})},
            vad=vad_opts,
            fixed=fixed,
            transcribe=transcribe,
            before=tuple((e.name, dict(e.options)) for e in before),
        )
        if branches:
            out = replace(out, branches=tuple(branches))
            at = out.branch_caps()
            for cut, g in branches:
                up = "the session's audio" if cut == 0 else before[cut - 1].name
                _check_branch(g, at[cut], up, text)
            out = replace(out, events=out.event_types())
        return out


def _linked(built: list[Any], caps: Caps, upstream: str) -> tuple[list[Callable[[Any], Any]], Caps]:
    """``built`` linked after ``caps`` (conversions inserted): its steps and end caps."""
    if not built:
        return [], caps
    from ..pipeline.caps import link

    linked = link(built, upstream=caps, upstream_name=upstream)
    return list(linked.steps), linked.caps


def _graph_elements(graph: ChainGraph) -> list[ChainElement]:
    """Every element of ``graph``, branches included, in the order written along each line."""
    out: list[ChainElement] = []
    todo = [graph]
    while todo:
        g = todo.pop()
        out.extend(g.elements)
        todo.extend(b for t in g.tees for b in t.branches)
    return sorted(out, key=lambda e: e.pos)


def _graph_events(graph: ChainGraph) -> list[str]:
    """The events a display branch's ends give, in the order written."""
    out: list[str] = []
    ends = [graph]
    while ends:
        g = ends.pop(0)
        if g.elements and not any(t.at == len(g.elements) for t in g.tees):
            out.append(BRANCH_EVENTS.get(g.elements[-1].name, "?"))
        ends.extend(b for t in g.tees for b in t.branches)
    return out


def _speech_path(
    graph: ChainGraph, text: str
) -> tuple[list[ChainElement], list[tuple[int, ChainGraph]], list[ChainElement]]:
    """Split ``graph`` at its one ``vad``: the elements before it on the way there, the
    display branches that leave that way (after how many of those elements), and the speech
    chain from ``vad`` on."""
    from ..pipeline.launch import ChainGraph, LaunchError

    def has_vad(g: ChainGraph) -> bool:
        return any(e.name == "vad" for e in g.elements) or any(
            has_vad(b) for t in g.tees for b in t.branches
        )

    before: list[ChainElement] = []
    branches: list[tuple[int, ChainGraph]] = []
    g = graph
    while True:
        i = next((k for k, e in enumerate(g.elements) if e.name == "vad"), None)
        if i is not None:  # vad on this line: every tee before it gives branches
            for t in g.tees:
                if t.at > i:
                    raise LaunchError(
                        "a tee after vad: the session's events come from its speech chain; "
                        "branch the audio before vad (tee name=t ! vad ! ... t. ! level)",
                        text,
                        t.pos,
                    )
                branches.extend((len(before) + t.at, b) for b in t.branches)
            before.extend(g.elements[:i])
            return before, branches, list(g.elements[i:])
        # vad is down one branch of one tee: the rest of this line is a branch there too
        t, b = next((t, b) for t in g.tees for b in t.branches if has_vad(b))
        for other in g.tees:
            if other.at < t.at or (other.at == t.at and other is not t):
                branches.extend((len(before) + other.at, x) for x in other.branches)
        k = len(before) + t.at
        rest = ChainGraph(
            g.elements[t.at :],
            tuple(replace(o, at=o.at - t.at) for o in g.tees if o.at > t.at),
            g.elements[t.at].pos if t.at < len(g.elements) else t.pos,
        )
        if rest.elements or rest.tees:
            branches.append((k, rest))
        branches.extend((k, x) for x in t.branches if x is not b)
        before.extend(g.elements[: t.at])
        g = b


def _check_branch(graph: ChainGraph, caps: Caps, upstream: str, text: str) -> None:
    """Build and link a display branch (after ``caps``); each of its ends must give items the
    protocol carries. Every error points at its element in ``text``."""
    from ..errors import ConfigError as _ConfigError
    from ..pipeline import registry
    from ..pipeline.launch import LaunchError

    todo = [(graph, caps, upstream)]
    while todo:
        g, c, up = todo.pop()
        cuts = sorted({t.at for t in g.tees})
        done = 0
        for cut in [*cuts, len(g.elements)]:
            part = g.elements[done:cut]
            for j, el in enumerate(part):
                try:
                    built = registry.make(el.name, **el.options)
                    _, c = _linked([built], c, up)
                except _ConfigError as exc:
                    raise LaunchError(str(exc), text, el.pos) from None
                up = el.name
                if el.name == "spectrogram" and el.options.get("kind", "power") != "log_mel":
                    raise LaunchError(
                        "the protocol's spectrogram events carry log-mel rows (dB, as uint8): "
                        "spectrogram kind=log_mel (or mfcc, spectral for other features)",
                        text,
                        el.pos,
                    )
                last = done + j == len(g.elements) - 1 and cut == len(g.elements)
                if not last and el.name in BRANCH_EVENTS:
                    nxt = g.elements[done + j + 1] if done + j + 1 < len(g.elements) else None
                    if nxt is not None and nxt.name not in BRANCH_EVENTS:
                        raise LaunchError(
                            f"{el.name} ends its branch: its items go to the client as events",
                            text,
                            nxt.pos,
                        )
            for t in g.tees:
                if t.at == cut:
                    todo.extend((b, c, up) for b in t.branches)
            done = cut
        ends_in_tee = any(t.at == len(g.elements) for t in g.tees)
        if not ends_in_tee:
            end = g.elements[-1] if g.elements else None
            if end is None or end.name not in BRANCH_EVENTS:
                where = end.pos if end is not None else g.pos
                gives = f"{end.name} gives {c}" if end is not None else "the branch is empty"
                raise LaunchError(
                    "a display branch ends in an element whose items the protocol carries "
                    f"({', '.join(BRANCH_EVENTS)}); {gives}",
                    text,
                    where,
                )
