"""The built-in elements' declarations as data (``rxaudio/pipeline/elements.json``).

``--help`` and ``inspect`` read them instead of importing the elements; they must say exactly
what the factories declare, or the help would lie and the flags would check other ranges.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import pytest

from rxaudio.apps.cli import COMMANDS, build_parser
from rxaudio.pipeline import declarations as decl
from rxaudio.pipeline import registry as reg


def test_the_generated_declarations_are_current() -> None:
    with open(decl.FILE, encoding="utf-8") as f:
        stored = f.read()
    assert stored == decl.current(), f"rxaudio/pipeline/elements.json is stale: run {decl.WRITE}"


@pytest.mark.parametrize("name", list(reg.BUILTINS))
def test_a_builtins_declaration_holds_its_factorys_props(name: str) -> None:
    stored = decl.load()[name]
    live = reg.builtin(name)
    # everything but the props as the factory declares it
    assert dataclasses.replace(stored, props=live.props) == decl.Declaration.of(live)
    for mine, theirs in zip(stored.props, live.props, strict=True):
        if theirs.type is object:  # set from Python only: shown by name
            assert mine == theirs or mine.default == decl.plain(theirs.default)
        else:  # parsed and checked from text by the very same rules
            assert mine == theirs
    assert stored.aliases == live.aliases


def _helps() -> dict[str, str]:
    out = {}
    for command in COMMANDS:
        sub = next(
            a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction)
        )
        out[command] = sub.choices[command].format_help()
    return out


def test_every_commands_help_reads_the_same_from_the_table_as_from_the_factories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(reg, "_declared", None)
    from_table = _helps()
    monkeypatch.setattr(reg, "_declared", {})  # a table without them: the factories' own
    assert _helps() == from_table


def test_a_table_missing_an_element_falls_back_to_its_factory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reg, "_declared", {})
    assert reg.declaration("gain") == decl.Declaration.of(reg.builtin("gain"))


def test_check_and_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "elements.json"
    shutil.copy(decl.FILE, copy)
    monkeypatch.setattr(decl, "FILE", str(copy))
    assert decl.main(["--check"]) == 0
    copy.write_text(copy.read_text().replace('"default": 0.5', '"default": 0.25', 1))
    assert decl.main(["--check"]) == 1
    assert decl.WRITE in capsys.readouterr().err
    assert decl.main(["--write"]) == 0
    assert decl.main(["--check"]) == 0
    assert decl.load(str(copy)) == decl.load()
