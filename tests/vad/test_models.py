"""The Silero ONNX models shipped inside rxaudio: present, as documented, and enough on their own
(no torch, no silero-vad package) for the default backend."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from rxaudio.vad.silero import MODELS_DIR, model_path

NAMES = ("silero_vad.onnx", "silero_vad_16k_sequence.onnx")


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_models_licence_and_source_note_ship_together() -> None:
    for name in (*NAMES, "LICENSE", "SOURCE.md"):
        assert os.path.isfile(os.path.join(MODELS_DIR, name)), name
    assert "Silero Team" in open(os.path.join(MODELS_DIR, "LICENSE")).read()
    note = open(os.path.join(MODELS_DIR, "SOURCE.md")).read()
    assert re.search(r"silero-vad` package, version \d+\.\d+\.\d+", note)
    for name in NAMES:
        row = re.search(rf"\| `{re.escape(name)}` \| `([0-9a-f]{{64}})` \|", note)
        assert row is not None, f"SOURCE.md has no checksum row for {name}"
        assert sha256(model_path(name)) == row.group(1), f"{name} differs from SOURCE.md"


def test_models_equal_the_installed_silero_vad_copies() -> None:
    spec = importlib.util.find_spec("silero_vad")  # does not import it (nor torch)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("silero-vad (the silero-torch extra) not installed: nothing to compare with")
    pkg = os.path.join(next(iter(spec.submodule_search_locations)), "data")
    for name in NAMES:
        assert sha256(model_path(name)) == sha256(os.path.join(pkg, name)), name


def test_default_backend_needs_neither_torch_nor_silero_vad(speech_path: str) -> None:
    # a None entry in sys.modules makes both unimportable and unfindable, as in a plain
    # `pip install rxaudio[vad]`
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['silero_vad'] = None\n"
        "from rxaudio.sources import from_file\n"
        "from rxaudio.operators import vad, hysteresis, buffer_utterance\n"
        "from rxaudio.frames import Utterance\n"
        "from rxaudio.testing import collect\n"
        "from rxaudio.vad.silero import BatchedSileroScorer\n"
        f"out = collect(from_file({speech_path!r}).pipe(vad(), hysteresis(), buffer_utterance()))\n"
        "print(sum(isinstance(u, Utterance) for u in out))\n"
        "shared = BatchedSileroScorer(16000)\n"
        "import numpy as np\n"
        "print(shared.score(shared.register(), np.zeros(512, dtype=np.float32)) < 0.5)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["7", "True"]  # the bundled sample's 7 utterances
