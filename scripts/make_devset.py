"""Generate the labelled VAD dev set: espeak-ng speech with silences, mixed with noise.

Every clip strings together sentences in several espeak-ng voices with random pauses
(0.4-2.5 s), mixes in noise (white, pink or a low hum plus white) at a given SNR measured over
the speech, and stores the clip at a given sample rate with its true segments:

    OUT/<name>.wav      mono PCM 16-bit
    OUT/<name>.jsonl    one {"start", "end"} per true speech segment, seconds
    OUT/<name>.rttm     the same as RTTM

The truth is where the *clean* speech is active: 10 ms frames within 40 dB of the clip's
loudest frame, with pauses shorter than 250 ms (between words) bridged. Deterministic for a
seed. The default grid is 4 SNRs (20, 10, 5, 0 dB) x 4 rates (8, 16, 44.1, 48 kHz), one clip
each, about 25 s per clip.

    python scripts/make_devset.py OUT [--snr 20 10 5 0] [--rates 8000 16000 44100 48000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

BASE_RATE = 16000
VOICES = ["en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb+f2", "en-sc"]
SENTENCES = [
    "The pipeline reads audio from the microphone in small blocks.",
    "Every frame carries its own sample index and rate.",
    "Voice activity detection marks where someone is speaking.",
    "Short pauses between words should not split an utterance.",
    "A long silence ends the segment and writes it to disk.",
    "Please leave a message after the tone.",
    "Numbers like three hundred and forty two are spoken too.",
    "The weather will be cloudy with a chance of rain tomorrow.",
    "She sells sea shells by the sea shore.",
    "Turn left at the second traffic light and park behind the shop.",
    "Measure twice and cut once.",
    "Background noise makes this task much harder.",
]
NOISES = ("white", "pink", "hum")


def synth(text: str, voice: str, speed: int) -> np.ndarray:
    """One sentence from espeak-ng at 16 kHz, float32, peak 0.5."""
    with tempfile.TemporaryDirectory() as d:
        wav = os.path.join(d, "s.wav")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", wav, text],
            check=True,
            capture_output=True,
        )
        x, sr = sf.read(wav, dtype="float32")
    x = np.asarray(soxr.resample(x, sr, BASE_RATE), dtype=np.float32)
    return (0.5 * x / max(1e-6, float(np.max(np.abs(x))))).astype(np.float32)


def truth_segments(clean: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """Active 10 ms frames (within 40 dB of the loudest), pauses < 250 ms bridged."""
    hop = rate // 100
    n = len(clean) // hop
    rms = np.sqrt(np.mean(clean[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    active = db > db.max() - 40.0
    segs: list[list[int]] = []
    for i in np.flatnonzero(active):
        if segs and i - segs[-1][1] <= 25:
            segs[-1][1] = i + 1
        else:
            segs.append([i, i + 1])
    return [(a * hop / rate, b * hop / rate) for a, b in segs if b - a >= 3]


def noise(kind: str, n: int, rng: np.random.Generator, rate: int) -> np.ndarray:
    """Unit-RMS noise of a kind."""
    w = rng.standard_normal(n)
    if kind == "pink":
        f = np.fft.rfft(w)
        f /= np.sqrt(np.maximum(np.arange(len(f)), 1.0))
        w = np.fft.irfft(f, n)
    elif kind == "hum":
        t = np.arange(n) / rate
        w = 0.3 * w + sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3, 5))
    return (w / np.sqrt(np.mean(w**2))).astype(np.float32)


def make_clip(
    seed: int, snr_db: float, rate: int, *, n_sentences: int = 6
) -> tuple[np.ndarray, list[tuple[float, float]], str]:
    """One clip at ``rate``: (samples, true segments in seconds, noise kind)."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    for _ in range(n_sentences):
        parts.append(np.zeros(int(rng.uniform(0.4, 2.5) * BASE_RATE), dtype=np.float32))
        text = SENTENCES[int(rng.integers(len(SENTENCES)))]
        voice = VOICES[int(rng.integers(len(VOICES)))]
        x = synth(text, voice, int(rng.integers(140, 190)))
        parts.append(x * np.float32(rng.uniform(0.3, 1.0)))
    parts.append(np.zeros(int(rng.uniform(0.5, 1.5) * BASE_RATE), dtype=np.float32))
    clean16 = np.concatenate(parts)
    clean = np.asarray(soxr.resample(clean16, BASE_RATE, rate), dtype=np.float32)
    segs = truth_segments(clean, rate)
    mask = np.zeros(len(clean), dtype=bool)
    for a, b in segs:
        mask[int(a * rate) : int(b * rate)] = True
    p_speech = float(np.mean(clean[mask] ** 2))
    kind = NOISES[seed % len(NOISES)]
    nz = noise(kind, len(clean), rng, rate) * np.float32(np.sqrt(p_speech / 10 ** (snr_db / 10)))
    y = clean + nz
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y = y * np.float32(0.99 / peak)
    return y.astype(np.float32), segs, kind


def write_clip(
    out: str, name: str, y: np.ndarray, rate: int, segs: list[tuple[float, float]]
) -> None:
    """Write the WAV and its labels."""
    sf.write(os.path.join(out, name + ".wav"), y, rate, subtype="PCM_16")
    with open(os.path.join(out, name + ".jsonl"), "w", encoding="utf-8") as f:
        for a, b in segs:
            f.write(json.dumps({"start": round(a, 3), "end": round(b, 3)}) + "\n")
    with open(os.path.join(out, name + ".rttm"), "w", encoding="utf-8") as f:
        for a, b in segs:
            f.write(f"SPEAKER {name} 1 {a:.3f} {b - a:.3f} <NA> <NA> speech <NA> <NA>\n")


def make_devset(
    out: str, snrs: list[float], rates: list[int], seed: int = 5, n_sentences: int = 6
) -> list[str]:
    """Generate the grid; return the clip names."""
    os.makedirs(out, exist_ok=True)
    names = []
    for i, snr in enumerate(snrs):
        for j, rate in enumerate(rates):
            s = seed * 1000 + 10 * i + j
            y, segs, kind = make_clip(s, snr, rate, n_sentences=n_sentences)
            name = f"dev_{rate // 1000 if rate % 1000 == 0 else rate / 1000:g}k_snr{snr:g}_{kind}"
            write_clip(out, name, y, rate, segs)
            names.append(name)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--snr", type=float, nargs="+", default=[20, 10, 5, 0])
    ap.add_argument("--rates", type=int, nargs="+", default=[8000, 16000, 44100, 48000])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=6, help="sentences per clip")
    a = ap.parse_args()
    for name in make_devset(a.out, a.snr, a.rates, a.seed, a.sentences):
        print(os.path.join(a.out, name + ".wav"))


if __name__ == "__main__":
    main()
