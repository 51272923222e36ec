"""Generated flags: ``record`` takes its capture and WAV options from the ``mic`` and ``wav``
elements (doc, default, range), keeping its own flag names and narrower ranges."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import rxaudio_tests_cli as h
import soundfile as sf

from rxaudio.apps._flags import flag_help
from rxaudio.apps._record import MIC_RANGES
from rxaudio.apps.cli import build_parser, main
from rxaudio.core.props import info_of
from rxaudio.sinks import to_wav
from rxaudio.sources import from_microphone


def _record() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["record"]
    return parser


@pytest.mark.parametrize(
    ("flag", "factory", "option", "default"),
    [
        ("--device", from_microphone, "device", None),
        ("--rate", from_microphone, "sample_rate", None),  # not given: mic's, or the file's
        ("--channels", from_microphone, "channels", None),
        ("--block-size", from_microphone, "block_size", 512),
        ("--subtype", to_wav, "subtype", "PCM_16"),
    ],
)
def test_record_flags_come_from_the_elements(
    flag: str, factory: object, option: str, default: object
) -> None:
    action = next(a for a in _record()._actions if flag in a.option_strings)
    prop = info_of(factory).prop(option)
    if option in MIC_RANGES:
        prop = dataclasses.replace(prop, range=MIC_RANGES[option])
    assert action.dest == option and action.default == default
    assert action.help == flag_help(prop)


def test_record_subtype_reaches_the_wav_sink(tmp_path: Path) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(0.2))
    out = tmp_path / "out.wav"
    assert main(["record", str(out), "--source", str(src), "--subtype", "FLOAT", "--quiet"]) == 0
    assert sf.info(str(out)).subtype == "FLOAT"
