"""What every session's chain is built from: :class:`ChainOptions` and the live settings.

Declarative and light (no aiohttp, Rx or model imports at module level): ``rxaudio serve
--help`` builds its flags from these names, and :mod:`.config` holds a ``ChainOptions``. The
chain itself is built by :mod:`.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

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

    events: tuple[str, ...] = ("level", "vad", "spectrogram")
    backend: str = "silero"
    settings: dict[str, float] = field(default_factory=dict)
    vad: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    transcribe: dict[str, Any] | None = None
    before: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Elements before ``vad`` (name, options), on the session's 16 kHz mono audio."""

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

    def before_operators(self) -> list[Callable[[Any], Any]]:
        """The elements before ``vad``, freshly built, with any conversion they need."""
        if not self.before:
            return []
        from ..core.caps import Caps
        from ..frames import AudioFrame
        from ..pipeline import registry
        from ..pipeline.caps import link

        built = [registry.make(name, **opts) for name, opts in self.before]
        linked = link(
            built,
            upstream=Caps(sample_rate=PIPELINE_RATE, channels=1, frame_size=WINDOW),
            upstream_name="the session's audio",
        )
        end = linked.caps
        if end.frame not in (None, AudioFrame) or (
            self.backend == "silero" and (end.sample_rate, end.channels) not in _SILERO_CAPS
        ):
            raise ConfigError(
                f"serve: vad takes the session's {PIPELINE_RATE} Hz mono audio; "
                f"{self.before[-1][0]} gives {end}"
            )
        return list(linked.steps)

    @classmethod
    def from_pipeline(
        cls, text: str, *, settings: Mapping[str, float] | None = None
    ) -> ChainOptions:
        """The options a per-session chain string describes (``vad ! hysteresis ! ...``).

        The chain is the server's: ``vad ! hysteresis ! buffer_utterance``, each with any of
        its properties (checked as in a launch string; errors point into ``text``), and
        optionally ``! transcribe`` with its properties. Any operators the registry builds may
        come before ``vad`` (``gain db=-3 ! vad ! ...``): they run on the session's 16 kHz mono
        audio, and the batched scorer scores what reaches ``vad``. The
        hysteresis and buffer_utterance properties that clients may change live become the
        sessions' default settings; ``settings`` (from flags) may not set one of them again.
        """
        from ..pipeline.launch import LaunchError, parse_chain

        els = parse_chain(text)
        want = [e.name for e in parse_chain(SPEECH_CHAIN)]
        at = next((i for i, e in enumerate(els) if e.name == "vad"), None)
        if at is None:
            raise LaunchError(
                f"the server's per-session chain has vad in it ({SPEECH_CHAIN}, with any "
                "elements on the session's audio before vad)",
                text,
                els[0].pos,
            )
        before, els = els[:at], els[at:]
        for el in before:
            if el.name in (*want, "transcribe"):
                raise LaunchError(f"{el.name} goes after vad", text, el.pos)
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
        return cls(
            backend=backend,
            settings={**live, **(settings or {})},
            vad=vad_opts,
            fixed=fixed,
            transcribe=transcribe,
            before=tuple((e.name, dict(e.options)) for e in before),
        )
