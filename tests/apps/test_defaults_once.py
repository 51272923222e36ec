"""Each option's default and range lives once, in rxaudio.vad's settings and the elements' props:
the operators, the apps' flags and help, and the server's tunables and defaults read them there.
A restated default (a flag's ``default=0.5``, a help's "(250)", a server range) fails here."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from typing import Any

import pytest

from rxaudio.apps._flags import flag_help, flag_name, show
from rxaudio.apps.cli import build_parser
from rxaudio.core.props import Prop, info_of
from rxaudio.errors import ConfigError
from rxaudio.operators import buffer_utterance, hysteresis, spectrogram, vad
from rxaudio.server import protocol
from rxaudio.server.pipeline import HYSTERESIS_KEYS, UTTERANCE_KEYS, default_settings
from rxaudio.vad.hysteresis import HysteresisSettings
from rxaudio.vad.utterance import UtteranceSettings

SETTINGS = ((HysteresisSettings, hysteresis), (UtteranceSettings, buffer_utterance))


def _props(factory: Any) -> dict[str, Prop]:
    return {p.name: p for p in info_of(factory).props}


def _prop(name: str) -> Prop:
    for _, factory in SETTINGS:
        if name in _props(factory):
            return _props(factory)[name]
    raise KeyError(name)


def _command(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices[name]
    return parser


def _action(parser: argparse.ArgumentParser, option: str) -> argparse.Action:
    return next(a for a in parser._actions if flag_name(option) in a.option_strings)


@pytest.mark.parametrize(("settings", "factory"), SETTINGS)
def test_operators_take_their_defaults_and_ranges_from_the_settings(
    settings: Any, factory: Any
) -> None:
    props = _props(factory)
    for f in fields(settings):
        p = props[f.name]
        assert p.default == f.default, f.name
        # the settings' own validation is the props' (live settings refused alike)
        if p.range is not None and p.range.hi is not None:
            too_big = p.range.hi * 2 + 1
            with pytest.raises(ConfigError, match=f"{f.name} must be .*{re.escape(str(p.range))}"):
                settings(**{f.name: too_big}).checked()


@pytest.mark.parametrize(
    ("command", "factory", "options", "unset"),
    [
        ("segment", vad, ("backend", "mode", "frame_ms"), False),
        ("segment", hysteresis, HYSTERESIS_KEYS, False),
        ("segment", buffer_utterance, (*UTTERANCE_KEYS, "min_ms"), False),
        ("plot", hysteresis, ("threshold",), False),
        ("plot", vad, ("backend",), False),
        ("plot", spectrogram, ("n_mels", "n_fft", "hop"), False),
        ("serve", hysteresis, HYSTERESIS_KEYS, True),
        ("serve", buffer_utterance, UTTERANCE_KEYS, True),
    ],
)
def test_app_flags_are_generated_from_the_elements(
    command: str, factory: Any, options: tuple[str, ...], unset: bool
) -> None:
    parser = _command(command)
    props = _props(factory)
    for name in options:
        p, a = props[name], _action(parser, name)
        assert a.default == (None if unset else p.default), (command, name)
        assert a.help == flag_help(p), (command, name)  # doc, range and default from the prop
        assert a.type is not None
        if p.default is not None:
            assert a.type(show(p.default)) == p.default  # read as the element reads it
        if p.choices is not None:
            assert a.metavar == "{" + ",".join(map(str, p.choices)) + "}"


def test_server_tunables_are_the_operators_ranges_within_the_client_bounds() -> None:
    assert list(protocol.TUNABLE) == [*HYSTERESIS_KEYS, *UTTERANCE_KEYS]
    for key, (lo, hi) in protocol.TUNABLE.items():
        rng = _prop(key).range
        assert rng is not None and rng.lo is not None and rng.hi is not None
        assert rng.contains(lo) and rng.contains(hi), key  # never wider than the operator
        cap_lo, cap_hi = protocol.CLIENT_BOUNDS.get(key, (None, None))
        assert lo == (rng.lo if cap_lo is None else max(cap_lo, rng.lo)), key
        assert hi == (rng.hi if cap_hi is None else min(cap_hi, rng.hi)), key
    for key in protocol.CLIENT_BOUNDS:
        assert key in protocol.TUNABLE
    # what clients see in hello.tunable: a change here is a protocol change (docs/protocol.md)
    assert protocol.TUNABLE == {
        "threshold": (0.01, 0.99),
        "neg_threshold": (0.0, 0.99),
        "min_speech_ms": (0.0, 10_000.0),
        "min_silence_ms": (0.0, 10_000.0),
        "pre_roll_ms": (0.0, 2_000.0),
        "post_roll_ms": (0.0, 2_000.0),
        "max_ms": (1_000.0, 120_000.0),
    }


def test_server_defaults_are_the_operators() -> None:
    for key, value in default_settings().items():
        assert value == _prop(key).default, key


def test_features_flags_are_the_feature_operators_options() -> None:
    from rxaudio.apps._features import KIND_OPTIONS, SHARED_OPTIONS
    from rxaudio.apps._flags import show
    from rxaudio.operators import mfcc, spectral, spectrogram

    parser = _command("features")
    ops = [_props(f) for f in (mfcc, spectral, spectrogram)]
    for name in SHARED_OPTIONS:  # one default for every feature operator, and the flag's
        assert len({props[name].default for props in ops}) == 1, name
        assert _action(parser, name).default == ops[0][name].default
    for name in KIND_OPTIONS:
        a = _action(parser, name)
        assert a.default is None and a.help is not None  # not given: the operator's default
        for props in ops:
            if name in props:
                assert f"default {show(props[name].default)}" in a.help or (
                    f"{show(props[name].default)} for " in a.help
                ), name
