"""Transcription: word error rate and real-time factor of the ``transcribe`` element.

    python -m benchmarks.bench_transcribe [--voices en-us,en-gb,en-us+m3,en-us+f2]
                                          [--snr 20,10] [--isolation thread]

The set: :data:`SENTENCES` (24 ordinary English sentences, fixed, written for this benchmark
and not adjusted to any recogniser) spoken by each espeak-ng voice (22.05 kHz output, resampled
to 16 kHz with the library's soxr resampler), padded with 0.3 s of silence each side (what
``buffer_utterance``'s pre- and post-roll give), clean and with white Gaussian noise at each
SNR (seeded, SNR against the speech's power). Each condition goes through
``transcribe(overflow="wait")``: WER with jiwer over the normalised text (lower case, no
punctuation, hyphens split; :func:`rxaudio.asr.metrics.normalize`), checked against our own
WER; real-time factor per core = CPU seconds of recognition / seconds of audio (below 1: one
core keeps up with one talker). Also the bundled sample: its three sentences cut at their true
times (+-0.2 s), and through the segment chain ``vad ! hysteresis ! buffer_utterance``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

import numpy as np
import soundfile as sf
from reactivex import from_iterable

from rxaudio.asr.metrics import corpus_wer, normalize
from rxaudio.data import speech_sample, speech_segments
from rxaudio.dsp.resample import resample_offline
from rxaudio.frames import Transcript, Utterance
from rxaudio.operators import buffer_utterance, hysteresis, transcribe, vad
from rxaudio.sources import from_file
from rxaudio.testing import collect

RATE = 16000
PAD_S = 0.3
SEED = 14

SENTENCES = (
    "The library opens at nine in the morning and closes at six.",
    "Please put the green box on the top shelf.",
    "My brother moved to a small town near the coast last year.",
    "We need three more chairs for the meeting room.",
    "It started to rain just as we left the house.",
    "The train to the city was twenty minutes late again.",
    "She reads a chapter of her book every night before bed.",
    "Could you turn the music down a little, please?",
    "The children played in the park until it got dark.",
    "He forgot his keys at the office on Friday.",
    "Our neighbours have a black dog and two cats.",
    "The soup needs a little more salt and pepper.",
    "I will call you back after lunch.",
    "The water in the lake was colder than we expected.",
    "They painted the kitchen a pale shade of yellow.",
    "Most of the shops in the old market are closed on Sunday.",
    "The doctor said he should drink more water.",
    "A strong wind blew the leaves across the road.",
    "We watched a film about the history of flight.",
    "The bus stops right in front of the school.",
    "Turn left at the bridge and follow the river.",
    "Her new phone has a much better camera.",
    "The farmer sold fresh eggs and milk at the gate.",
    "Nobody knew the answer to the last question.",
)

VOICES = ("en-us", "en-gb", "en-us+m3", "en-us+f2")


def speak(text: str, voice: str, tmp: str) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice``, as float32 mono at 16 kHz with the pads."""
    path = os.path.join(tmp, "s.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", path, text], check=True)
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    y = resample_offline(x[:, :1], sr, RATE)[:, 0]
    pad = np.zeros(int(PAD_S * RATE), dtype=np.float32)
    return np.concatenate([pad, y, pad])


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` below the speech's power (pads excluded)."""
    pad = int(PAD_S * RATE)
    power = float(np.mean(x[pad:-pad] ** 2))
    noise = rng.standard_normal(x.shape[0]) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(x + noise, -1.0, 1.0).astype(np.float32)


def utterances(signals: list[np.ndarray]) -> list[Utterance]:
    """Each signal as an utterance of its own stream position (start after the pre-roll)."""
    out, at = [], 0
    for i, x in enumerate(signals):
        pad = int(PAD_S * RATE)
        n = x.shape[0]
        speech = (at + pad, at + n - pad)
        out.append(Utterance(x.reshape(-1, 1), RATE, *speech, at, at + n, "silence", i))
        at += n
    return out


def run(utts: list[Utterance], isolation: str) -> tuple[list[Transcript], float]:
    """Transcripts of ``utts`` and the wall seconds it took."""
    t0 = time.perf_counter()
    ts = collect(from_iterable(utts).pipe(transcribe(overflow="wait", isolation=isolation)), 3600)
    return ts, time.perf_counter() - t0


def score(refs: list[str], ts: list[Transcript], seconds: float) -> dict[str, Any]:
    """WER (jiwer and ours), RTF per core (CPU) and the mean confidence."""
    import jiwer

    hyps = [t.text for t in ts]
    ours = corpus_wer(refs, hyps)
    j = jiwer.wer(
        [" ".join(normalize(r)) for r in refs], [" ".join(normalize(h)) or "" for h in hyps]
    )
    assert abs(j - ours.wer) < 1e-9, (j, ours.wer)
    conf = [t.confidence for t in ts if t.confidence is not None]
    return {
        "wer": ours.wer,
        "sub": ours.substitutions,
        "del": ours.deletions,
        "ins": ours.insertions,
        "words": ours.reference_words,
        "cpu": sum(t.cpu_s for t in ts),
        "seconds": seconds,
        "rtf": sum(t.cpu_s for t in ts) / seconds,
        "conf": float(np.mean(conf)) if conf else float("nan"),
    }


def row(name: str, s: dict[str, Any]) -> str:
    return (
        f"| {name} | {s['seconds']:.0f} s | {s['words']} | **{s['wer']:.3f}** | "
        f"{s['sub']}/{s['del']}/{s['ins']} | {s['rtf']:.3f} | {s['conf']:.2f} |"
    )


def bundled(isolation: str) -> list[str]:
    """The bundled sample: true cuts, and the segment chain."""
    x, sr = sf.read(speech_sample(), dtype="float32")
    truth = speech_segments()
    refs = [str(s["text"]) for s in truth]
    cuts = []
    for i, s in enumerate(truth):
        a, b = int((s["start"] - 0.2) * sr), int((s["end"] + 0.2) * sr)
        speech = (int(s["start"] * sr), int(s["end"] * sr))
        cuts.append(Utterance(x[a:b].reshape(-1, 1), sr, *speech, a, b, "silence", i))
    ts, _ = run(cuts, isolation)
    cut_s = sum(u.samples.shape[0] / sr for u in cuts)
    lines = [row("bundled sample, true cuts (3 sentences)", score(refs, ts, cut_s))]
    chain = (vad(), hysteresis(), buffer_utterance())
    step = transcribe(overflow="wait", isolation=isolation)
    ts = collect(from_file(speech_sample(), block_size=512).pipe(*chain, step), 600)
    whole = Transcript(0, 0, 1, sr, " ".join(t.text for t in ts), cpu_s=sum(t.cpu_s for t in ts))
    s = score([" ".join(refs)], [whole], len(x) / sr)
    lines.append(row(f"bundled sample, segment chain ({len(ts)} utterances)", s))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voices", default=",".join(VOICES))
    p.add_argument("--snr", default="20,10", help="noise conditions, dB (comma-separated)")
    p.add_argument("--isolation", default="thread", choices=("thread", "process"))
    args = p.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("bench_transcribe: espeak-ng is not installed (apt-get install espeak-ng)")
        return 1
    voices = [v for v in args.voices.split(",") if v]
    snrs = [float(s) for s in args.snr.split(",") if s]
    load = os.getloadavg()
    print(
        f"# bench_transcribe {datetime.date.today()}, {os.cpu_count()} cores, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    given = argv if argv is not None else sys.argv[1:]
    print("# python -m benchmarks.bench_transcribe " + " ".join(given))
    with tempfile.TemporaryDirectory() as tmp:
        clean = {v: [speak(t, v, tmp) for t in SENTENCES] for v in voices}
    rng = np.random.default_rng(SEED)
    conditions: dict[str, dict[str, list[np.ndarray]]] = {"clean": clean}
    for snr in snrs:
        conditions[f"{snr:g} dB SNR"] = {
            v: [add_noise(x, snr, rng) for x in xs] for v, xs in clean.items()
        }
    print("\n| set | audio | words | WER | S/D/I | RTF per core | mean confidence |")
    print("|---|---|---|---|---|---|---|")
    per_voice: dict[str, list[str]] = defaultdict(list)
    for name, by_voice in conditions.items():
        all_refs: list[str] = []
        all_ts: list[Transcript] = []
        secs = 0.0
        for v, xs in by_voice.items():
            ts, _ = run(utterances(xs), args.isolation)
            n = sum(x.shape[0] for x in xs) / RATE
            per_voice[v].append(f"{score(list(SENTENCES), ts, n)['wer']:.3f}")
            all_refs += SENTENCES
            all_ts += ts
            secs += n
        label = f"espeak-ng, {len(voices)} voices x {len(SENTENCES)} sentences, {name}"
        print(row(label, score(all_refs, all_ts, secs)), flush=True)
    for line in bundled(args.isolation):
        print(line, flush=True)
    print("\nWER per voice (" + ", ".join(conditions) + "):")
    for v, ws in per_voice.items():
        print(f"- {v}: {' / '.join(ws)}")
    after = os.getloadavg()
    print(f"\n# load after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
