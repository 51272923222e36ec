"""The golden set (issue 26, "outputs identical"): every case gives exactly what was recorded.

Each case (``golden_cases.CASES``) runs a library chain (``pipe()`` over arrays and files in
several chunkings, settings and rates), an ``rxaudio launch`` string, or real ``rxaudio serve``
sessions over WebSockets, and is reduced to a digest of its events and files; the digest must
equal ``data/<case>.json``, recorded from the tree before the stage-runtime redesign.

Exact: event kinds and their order (library chains: the whole interleaving; server sessions:
each stream's own order and the numbered speech events, since there the interleaving of
``vad``, display and ``stats`` events follows the event loop's scheduling), every field of
every event (times are sample indices / rate, rounded to 6 decimals; ``level`` and
``spectrogram`` are numpy on the input), every file byte for byte (utterance WAVs, labels,
feature CSVs and NPZs, ``events.jsonl`` parsed and compared as events). Within
``P_TOL`` (1e-4, one unit of the event's rounding): the Silero probability ``p``, which is
bit-identical today across chunkings, batching and event arrays, but comes from onnxruntime,
whose kernels may round otherwise on another CPU. Dropped from server events:
``golden_cases.DROPPED`` (random session ids and tokens, the outbox depth).

Regenerate with ``python tests/golden/record.py`` only when an output is meant to change, and
say why in the commit message (docs/testing.md).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load() -> ModuleType:
    name = "rxaudio_tests_golden"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("golden_cases.py")
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


g = _load()
REGEN = "python tests/golden/record.py CASE (and say why in the commit message)"


def test_generated_audio_is_what_was_recorded() -> None:
    expected = json.loads((g.DATA / "audio.json").read_text())
    assert g.audio_fingerprint() == expected, "the test signals changed, not the product"


def test_every_recorded_case_is_a_case() -> None:
    stored = {p.stem for p in g.DATA.glob("*.json")} - {"audio"}
    assert stored == set(g.CASES), f"stale or missing golden files; run {REGEN}"


@pytest.mark.parametrize("name", list(g.CASES))
def test_case_gives_the_recorded_outputs(name: str) -> None:
    diffs = g.compare(g.load(name), g.run_case(name))
    assert not diffs, (
        f"{name}: {len(diffs)} difference(s) from the golden set:\n  "
        + "\n  ".join(diffs[:20])
        + "\n(`record.py --full DIR` on both trees writes every event for a diff)"
    )


def test_compare_sees_one_changed_field_byte_and_probability() -> None:
    ref = g.load("serve_speech_32ms")
    assert g.compare(ref, copy.deepcopy(ref)) == []
    utt = copy.deepcopy(ref)
    utt["client0"]["events"]["events"][4]["audio_start"] += 0.001
    wav = copy.deepcopy(ref)
    first_wav = next(k for k in wav["client0"]["files"] if k.endswith(".wav"))
    wav["client0"]["files"][first_wav]["sha256"] = "0" * 64
    p_ok, p_bad = copy.deepcopy(ref), copy.deepcopy(ref)
    p_ok["client0"]["events"]["vad"]["p"][7] += g.P_TOL / 2
    p_bad["client0"]["events"]["vad"]["p"][7] += 3 * g.P_TOL
    assert any("audio_start" in d for d in g.compare(ref, utt))
    assert any(first_wav in d for d in g.compare(ref, wav))
    assert g.compare(ref, p_ok) == []
    assert any("first [7]" in d for d in g.compare(ref, p_bad))
