"""The server's layout as the docs give it: every module of ``rxaudio/server`` is in the table of
``docs/architecture.md`` (and the table names no module that is gone)."""

from __future__ import annotations

import re
from pathlib import Path

import rxaudio.server

DOCS = Path(__file__).parents[2] / "docs"


def _table(text: str) -> set[str]:
    start = text.index("`rxaudio/server/` is split by job")
    rows = text[start:].split("\n\n")[1]  # the table after that sentence
    return set(re.findall(r"^\| `(\w+\.py)` \|", rows, flags=re.M))


def test_the_architecture_page_lists_every_server_module() -> None:
    here = Path(rxaudio.server.__file__).parent
    modules = {p.name for p in here.glob("*.py") if p.name != "__init__.py"}
    listed = _table((DOCS / "architecture.md").read_text())
    assert not modules - listed, f"add to docs/architecture.md's server table: {modules - listed}"
    assert not listed - modules, f"gone from rxaudio/server, still listed: {listed - modules}"
