"""Test signals by sample index: tones, noise, a chirp and a speech-like burst pattern.

:class:`TestSignal` makes the samples of any span ``[start, start + n)`` of one endless signal;
asked for consecutive spans it gives the same samples whatever their sizes (the tones, the chirp
and the speech pattern are functions of the sample index; the noises draw from one seeded
generator in order, and pink noise filters white noise with its state carried over), so a
stream equals the offline signal in any chunking. Pure numpy: no Rx, no time read.
"""

from __future__ import annotations

import math

import numpy as np

WAVES = ("sine", "square", "white-noise", "pink-noise", "silence", "chirp", "speech")

CHIRP_SECONDS = 1.0
"""A chirp sweeps from its start frequency to 90 % of the Nyquist frequency in this time,
then starts again."""

# Paul Kellet's "economy" pink filter (three poles; within 0.5 dB of -3 dB/octave above
# about 9 Hz at 44.1 kHz); its gain is normalised so that the output stays within [-1, 1].
_PINK_B = (0.99765, 0.96300, 0.57000)
_PINK_A = (0.0990460, 0.2965164, 1.0526913)
_PINK_DIRECT = 0.1848
_PINK_SCALE = 0.11

# the speech pattern: a voice at about 90 Hz saying syllables (a consonant's hiss, then a vowel
# gliding to the next: its formants F1-F3 in Hz) in bursts, with pauses between the bursts
_VOWELS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
    (660, 1720, 2410),
    (440, 1020, 2240),
)
_PITCH_HZ = 90.0
_SYLLABLE_S = (0.15, 0.3)
_BURST_SYLLABLES = (4, 8)  # syllables per burst: 0.6 to 2.4 s of voice
_PAUSE_S = (0.6, 1.2)  # silence between bursts
_LEAD_S = 0.5  # silence before the first burst


def _syllable(rate: int, rng: np.random.Generator, n: int, prev: np.ndarray) -> np.ndarray:
    """One syllable of ``n`` samples starting from the vowel ``prev`` (its formants); returns
    the samples, and leaves the vowel it glided to in ``prev``."""
    from scipy.signal import lfilter

    t = np.arange(n) / rate
    target = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))], dtype=np.float64)
    dur = n / rate
    f0 = (
        _PITCH_HZ
        * (1 + 0.1 * rng.uniform(-1, 1))
        * (1 + 0.1 * np.sin(np.pi * t / dur + rng.uniform(0, 6)))
    )
    pulses = np.diff(np.floor(np.cumsum(f0) / rate), prepend=0.0)  # one per glottal period
    src = lfilter([1.0], [1, -0.9], lfilter([1.0], [1, -0.97], pulses))  # the glottis' tilt
    out = np.zeros(n)
    block = max(1, rate // 100)
    zi = [np.zeros(2) for _ in range(3)]
    for s in range(0, n, block):  # three resonators, gliding from prev to target
        x = src[s : s + block]
        a = s / n
        for i in range(3):
            f = prev[i] * (1 - a) + target[i] * a
            r = math.exp(-math.pi * (50 + 0.05 * f) / rate)
            th = 2 * math.pi * min(f, 0.45 * rate) / rate
            x, zi[i] = lfilter([1 - r], [1, -2 * r * math.cos(th), r * r], x, zi=zi[i])
        out[s : s + block] = x
    out /= float(np.abs(out).max()) + 1e-9
    hiss = min(n, int(0.05 * rate))  # a consonant's onset
    fric = lfilter([1, -0.9], [1], rng.standard_normal(n))
    fric[:hiss] *= np.hanning(2 * hiss)[:hiss]
    fric[hiss:] = 0.0
    prev[:] = target
    voiced: np.ndarray = out * np.sin(np.pi * np.arange(n) / n) ** 0.5 + 0.15 * fric
    return voiced


class TestSignal:
    """One endless test signal, made span by span (state: the noise generator and filter).

    Parameters
    ----------
    wave
        One of :data:`WAVES`.
    sample_rate
        Samples per second.
    channels
        Channel count: tones are the same on every channel, noises independent per channel.
    freq
        Frequency of ``sine`` and ``square`` in Hz; where ``chirp`` starts (``speech`` is a
        voice at about 90 Hz whatever it is).
    volume
        Peak amplitude, 0 to 1.
    seed
        Seed of the noises and of the speech pattern (its syllables, bursts and pauses).
    """

    __test__ = False  # not a pytest class, whatever its name

    def __init__(
        self, wave: str, sample_rate: int, channels: int, freq: float, volume: float, seed: int
    ) -> None:
        if wave not in WAVES:
            raise ValueError(f"wave must be one of {', '.join(WAVES)}, got {wave!r}")
        self.wave, self.rate, self.channels = wave, sample_rate, channels
        self.freq, self.volume, self.seed = freq, volume, seed
        self.rng = np.random.default_rng(seed)
        self.pink = np.zeros((3, channels))
        self.next = 0  # the noises' next sample index: they are made in order
        self.bursts: list[tuple[int, tuple[int, ...]]] = []  # (start, syllable lengths)
        self.pattern = np.random.default_rng([seed, 1])
        self.voiced: dict[int, np.ndarray] = {}  # burst index -> its samples (those still due)

    def span(self, start: int, n: int) -> np.ndarray:
        """Samples ``[start, start + n)`` as float32 ``(n, channels)``."""
        if self.wave in ("white-noise", "pink-noise"):
            if start != self.next:
                raise ValueError(
                    f"noise is made in order: expected sample {self.next}, got {start}"
                )
            self.next = start + n
            white = self.rng.uniform(-1.0, 1.0, size=(n, self.channels))
            out = self._pink(white) if self.wave == "pink-noise" else white
            return (out * self.volume).astype(np.float32)
        t = (start + np.arange(n, dtype=np.float64)) / self.rate
        if self.wave == "silence":
            col = np.zeros(n)
        elif self.wave == "sine":
            col = np.sin(2 * np.pi * self.freq * t)
        elif self.wave == "square":
            col = np.where(np.sin(2 * np.pi * self.freq * t) >= 0, 1.0, -1.0)
        elif self.wave == "chirp":
            col = self._chirp(t)
        else:
            col = self._speech(start, n)
        col = (col * self.volume).astype(np.float32)
        return np.repeat(col[:, None], self.channels, axis=1)

    def _pink(self, white: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        out = _PINK_DIRECT * white
        for k in range(3):
            b, a = _PINK_A[k], _PINK_B[k]
            y, zf = lfilter([b], [1.0, -a], white, axis=0, zi=self.pink[k : k + 1] * a)
            self.pink[k] = zf[0] / a
            out = out + y
        return np.clip(out * _PINK_SCALE, -1.0, 1.0)

    def _chirp(self, t: np.ndarray) -> np.ndarray:
        f0 = self.freq
        f1 = max(f0, 0.45 * self.rate)
        tau = np.mod(t, CHIRP_SECONDS)
        k = (f1 - f0) / CHIRP_SECONDS
        sweep: np.ndarray = np.sin(2 * np.pi * (f0 * tau + 0.5 * k * tau * tau))
        return sweep

    def _burst_table(self, until: int) -> None:
        """Extend the burst schedule past sample ``until`` (it depends only on the seed)."""
        rate, rng = self.rate, self.pattern
        while not self.bursts or self.bursts[-1][0] + sum(self.bursts[-1][1]) <= until:
            if self.bursts:
                last, lens = self.bursts[-1]
                start = last + sum(lens) + round(float(rng.uniform(*_PAUSE_S)) * rate)
            else:
                start = round(_LEAD_S * rate)
            k = int(rng.integers(_BURST_SYLLABLES[0], _BURST_SYLLABLES[1] + 1))
            lens = tuple(max(1, round(float(rng.uniform(*_SYLLABLE_S)) * rate)) for _ in range(k))
            self.bursts.append((start, lens))

    def speech_spans(self, seconds: float) -> list[tuple[float, float]]:
        """The voiced bursts (start, end in seconds) that begin before ``seconds``."""
        self._burst_table(round(seconds * self.rate))
        r = self.rate
        return [(a / r, (a + sum(lens)) / r) for a, lens in self.bursts if a < seconds * r]

    def _burst(self, k: int) -> np.ndarray:
        got = self.voiced.get(k)
        if got is None:
            rng = np.random.default_rng([self.seed, 2, k])
            prev = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))], dtype=np.float64)
            parts = [
                _syllable(self.rate, rng, n, prev) * rng.uniform(0.5, 1.0)
                for n in self.bursts[k][1]
            ]
            x = np.concatenate(parts)
            got = self.voiced[k] = x / (float(np.abs(x).max()) + 1e-9)
        return got

    def _speech(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n)
        end = start + n
        self._burst_table(end)
        for k, (a, lens) in enumerate(self.bursts):
            b = a + sum(lens)
            if b <= start:
                self.voiced.pop(k, None)  # past: never asked for again in a stream
                continue
            if a >= end:
                break
            lo, hi = max(a, start), min(b, end)
            out[lo - start : hi - start] = self._burst(k)[lo - a : hi - a]
        return out
