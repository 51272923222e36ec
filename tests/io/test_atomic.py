"""``atomic_path``: the final name only ever holds a finished file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rxaudio.io.atomic import atomic_path, partial_name


def test_renamed_when_the_block_succeeds(tmp_path: Path) -> None:
    out = str(tmp_path / "a.txt")
    with atomic_path(out) as tmp:
        assert tmp == partial_name(out) and not os.path.exists(out)
        Path(tmp).write_text("done")
    assert Path(out).read_text() == "done"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_old_file_kept_and_partial_removed_when_the_block_fails(tmp_path: Path) -> None:
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(str(out)) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]
