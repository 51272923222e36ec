"""The apps' chains: one launch string, flags generated from its elements, built by registry."""

from __future__ import annotations

import argparse

import pytest

from rxaudio.apps._chain import FlagChain
from rxaudio.apps._flags import in_flags
from rxaudio.core.fuse import Fused
from rxaudio.errors import ConfigError
from rxaudio.pipeline import registry


def _chain() -> FlagChain:
    return FlagChain(
        "vad backend=energy ! hysteresis threshold=0.7",
        {"vad": ("frame_ms",), "hysteresis": ("threshold", "min_speech_ms")},
    )


def test_flags_come_from_the_elements_and_build_through_the_registry() -> None:
    p = argparse.ArgumentParser()
    _chain().add_arguments(p)
    args = p.parse_args(["--min-speech-ms", "40"])
    hyst = registry.get("hysteresis")
    # not given: the element's own default; the string's options stay unless a flag is given
    assert (
        args.min_speech_ms == 40 and args.frame_ms == registry.get("vad").prop("frame_ms").default
    )
    opts = _chain().options(args, {"hysteresis": {"max_gap_ms": 500.0}})
    assert opts["vad"]["backend"] == "energy"
    assert opts["hysteresis"]["min_speech_ms"] == 40
    assert opts["hysteresis"]["max_gap_ms"] == 500.0
    assert opts["hysteresis"]["threshold"] == hyst.prop("threshold").default  # the flag's
    args = p.parse_args(["--threshold", "0.3"])
    assert _chain().options(args)["hysteresis"]["threshold"] == 0.3
    (built,) = _chain().build(args)  # the two elements, run fused as one operator
    assert isinstance(built, Fused) and [e.name for e in built.parts] == ["vad", "hysteresis"]


def test_unset_flags_leave_the_strings_options() -> None:
    chain = FlagChain("hysteresis threshold=0.7", {"hysteresis": ("threshold",)}, unset=True)
    p = argparse.ArgumentParser()
    chain.add_arguments(p)
    assert chain.options(p.parse_args([]))["hysteresis"]["threshold"] == 0.7


def test_a_value_out_of_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    _chain().add_arguments(p)
    with pytest.raises(ConfigError, match="threshold"):  # by the element, as it is built
        _chain().build(p.parse_args(["--threshold", "2"]))
    strict = argparse.ArgumentParser()
    _chain().add_arguments(strict, strict=True)
    with pytest.raises(SystemExit):  # or as it is parsed, naming the flag
        strict.parse_args(["--threshold", "2"])
    assert "--threshold" in capsys.readouterr().err


def test_a_chain_naming_an_element_it_lacks_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="mfcc"):
        _ = FlagChain("vad", {"mfcc": ("n_mfcc",)}).elements


def test_element_errors_read_in_flags() -> None:
    info = registry.get("mfcc")
    msg = in_flags("mfcc: delta_width must be odd and at least 3, got 4", info)
    assert msg == "--delta-width must be odd and at least 3, got 4"
    with pytest.raises(ConfigError):
        registry.make("mfcc", delta_width=4, deltas=1)
