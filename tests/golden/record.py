"""Regenerate the golden set: ``python tests/golden/record.py [CASE ...] [--full DIR]``.

Writes ``tests/golden/data/<case>.json`` for every case (or the named ones) from the tree it
runs in, and ``data/audio.json`` (the generated signals' sha256). A regeneration changes what
``test_golden.py`` holds the product to: say in the commit message why the outputs changed.
``--full DIR`` also writes every event stream whole (not stored) for a diff between trees.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def _cases():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "rxaudio_tests_golden", Path(__file__).with_name("golden_cases.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    g = _cases()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="*", help=f"cases to record (default all: {', '.join(g.CASES)})")
    p.add_argument("--full", type=Path, default=None, help="also write every event stream here")
    args = p.parse_args(argv)
    unknown = [c for c in args.cases if c not in g.CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(g.CASES)}")
    g.DATA.mkdir(exist_ok=True)
    (g.DATA / "audio.json").write_text(g.dump(g.audio_fingerprint()))
    for name in args.cases or g.CASES:
        (g.DATA / f"{name}.json").write_text(g.dump(g.run_case(name, args.full)))
        print(f"recorded {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
