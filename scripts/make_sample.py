"""Regenerate the bundled speech sample (rxaudio/data/speech_16k.wav) with espeak-ng.

Three sentences in three voices, separated by silences, over a faint noise floor, 16 kHz mono.
The true speech segments (where each synthesised clip is above -50 dBFS) are written beside it
as speech_16k.json. The text was written for this project; the audio is released CC0.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
LINES = [
    ("en-us", "Hello, this is a test of the real time audio pipeline."),
    ("en-gb", "Speech is detected, buffered with pre roll, and written to disk."),
    ("en-us+f3", "The quick brown fox jumps over the lazy dog, twice."),
]
GAPS = [1.0, 1.2, 1.5, 1.0]  # seconds of silence before each line and after the last


def main() -> None:
    out_dir = os.path.join(os.path.dirname(__file__), "..", "rxaudio", "data")
    rng = np.random.default_rng(1234)
    pieces, segments, t = [], [], 0
    with tempfile.TemporaryDirectory() as d:
        for i, (voice, text) in enumerate(LINES):
            pieces.append(np.zeros(int(GAPS[i] * RATE), dtype=np.float32))
            t += int(GAPS[i] * RATE)
            wav = os.path.join(d, f"{i}.wav")
            subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", wav, text], check=True)
            x, sr = sf.read(wav, dtype="float32")
            x = soxr.resample(x, sr, RATE).astype(np.float32)
            x = 0.5 * x / np.max(np.abs(x))
            loud = np.flatnonzero(np.abs(x) > 10 ** (-50 / 20))
            segments.append({"start": (t + int(loud[0])) / RATE, "end": (t + int(loud[-1])) / RATE,
                             "text": text, "voice": voice})
            pieces.append(x)
            t += len(x)
        pieces.append(np.zeros(int(GAPS[-1] * RATE), dtype=np.float32))
    y = np.concatenate(pieces)
    y = y + (10 ** (-60 / 20) * rng.standard_normal(len(y))).astype(np.float32)
    sf.write(os.path.join(out_dir, "speech_16k.wav"), y, RATE, subtype="PCM_16")
    with open(os.path.join(out_dir, "speech_16k.json"), "w") as f:
        json.dump({"sample_rate": RATE, "duration": len(y) / RATE, "segments": segments,
                   "licence": "CC0-1.0; synthesised with espeak-ng from text written for rxaudio"},
                  f, indent=2)


if __name__ == "__main__":
    main()
