"""Immutable, self-describing frame types.

Time inside the library is a *sample index* since the start of the stream, never wall-clock
time: virtual-time tests, offline files and live capture then behave exactly alike. Samples are
float32 arrays of shape ``(n, channels)`` in [-1, 1]; int16 PCM bytes exist only at I/O edges
(:meth:`AudioFrame.from_pcm16`, :meth:`AudioFrame.to_pcm16`).

Every frame and event has exactly one dict form, its ``to_dict()``: a ``type``, named fields,
times in seconds of the stream (sample index / rate, rounded to :data:`TIME_DECIMALS`), and
never NaN or infinity (``None`` instead), so ``json.dumps(x.to_dict(), allow_nan=False)``
always succeeds. The JSONL and label sinks, ``rxaudio segment``, the live server's WebSocket
events and its ``events.jsonl`` all write these dicts (``docs/events.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import FormatError

Samples = NDArray[np.float32]

_PCM16_SCALE = 32768.0

TIME_DECIMALS = 6
"""Decimals of every time in seconds in a dict form (1 us: exact sample indices up to 500 kHz)."""
PROBABILITY_DECIMALS = 4
DB_DECIMALS = 2


def seconds(samples: int, sample_rate: int) -> float:
    """``samples / sample_rate`` rounded to :data:`TIME_DECIMALS`: a time in a dict form."""
    return float(round(samples / sample_rate, TIME_DECIMALS))


def finite(x: float, decimals: int) -> float | None:
    """``x`` rounded to ``decimals`` as a float, or ``None`` for NaN/inf (JSON has neither)."""
    v = float(x)
    return round(v, decimals) if math.isfinite(v) else None


def json_safe(v: Any) -> Any:
    """A JSON-ready copy of a plain value: NaN/inf become ``None``, tuples lists, numpy
    scalars Python numbers, mapping keys strings."""
    if isinstance(v, bool | None | str | int):
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, np.generic):
        return json_safe(v.item())
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    return v


def _readonly(a: Samples) -> Samples:
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


@dataclass(frozen=True, slots=True, eq=False)
class AudioFrame:
    """A block of audio.

    Parameters
    ----------
    samples
        float32 array of shape ``(n, channels)``, ``n >= 1``. Stored read-only.
    sample_rate
        Samples per second (Hz), a positive int.
    start
        Index of the first sample since the start of the stream, at ``sample_rate``.
    """

    samples: Samples
    sample_rate: int
    start: int = 0

    def __post_init__(self) -> None:
        s = self.samples
        if not isinstance(s, np.ndarray):
            raise FormatError(
                f"AudioFrame: samples must be a numpy array, got {type(s).__name__}; "
                "wrap it with np.asarray(..., dtype=np.float32)"
            )
        if s.dtype != np.float32:
            raise FormatError(
                f"AudioFrame: samples must be float32, got {s.dtype}; convert with "
                "AudioFrame.from_array(x, rate) or x.astype(np.float32) (int16 PCM: x / 32768)"
            )
        if s.ndim != 2:
            raise FormatError(
                f"AudioFrame: samples must have shape (n, channels), got shape {s.shape}; "
                "use x.reshape(-1, 1) for mono"
            )
        if s.shape[0] == 0 or s.shape[1] == 0:
            raise FormatError(
                f"AudioFrame: zero-length frame (shape {s.shape}); a frame holds at least one "
                "sample of at least one channel"
            )
        if not isinstance(self.sample_rate, int | np.integer) or self.sample_rate <= 0:
            raise FormatError(
                f"AudioFrame: sample_rate must be a positive int, got {self.sample_rate!r}"
            )
        if self.start < 0:
            raise FormatError(f"AudioFrame: start must be >= 0, got {self.start}")
        object.__setattr__(self, "samples", _readonly(s))
        object.__setattr__(self, "sample_rate", int(self.sample_rate))
        object.__setattr__(self, "start", int(self.start))

    @classmethod
    def trusted(cls, samples: Samples, sample_rate: int, start: int) -> AudioFrame:
        """A frame from parts already known valid (float32 ``(n >= 1, channels >= 1)``
        samples, a positive int rate, an int start >= 0), without checking them again: for
        operators that cut frames out of frames they have checked (``reframe``, ``vad``).
        Stored read-only, as every frame."""
        f = object.__new__(cls)
        object.__setattr__(f, "samples", _readonly(samples))
        object.__setattr__(f, "sample_rate", sample_rate)
        object.__setattr__(f, "start", start)
        return f

    @classmethod
    def from_array(
        cls, data: Any, sample_rate: int, start: int = 0, *, check_finite: bool = True
    ) -> AudioFrame:
        """Build a frame from any array-like: 1-D is mono, 2-D is ``(n, channels)``.

        Integer input is scaled as PCM (int16 by 32768, int32 by 2**31); float input is cast.
        Raises :class:`FormatError` on NaN/inf when ``check_finite``.
        """
        a = np.asarray(data)
        if a.dtype == np.int16:
            a = a.astype(np.float32) / np.float32(_PCM16_SCALE)
        elif a.dtype == np.int32:
            a = (a.astype(np.float64) / 2147483648.0).astype(np.float32)
        elif np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32, copy=False)
        else:
            raise FormatError(
                f"AudioFrame.from_array: unsupported dtype {a.dtype}; use float32/float64 "
                "in [-1, 1] or int16/int32 PCM"
            )
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if check_finite and not np.isfinite(a).all():
            raise FormatError(
                "AudioFrame.from_array: samples contain NaN or inf; clean the signal "
                "(np.nan_to_num) before streaming it"
            )
        return cls(np.ascontiguousarray(a), sample_rate, start)

    @classmethod
    def from_pcm16(
        cls, data: bytes, sample_rate: int, channels: int = 1, start: int = 0
    ) -> AudioFrame:
        """Decode little-endian interleaved int16 PCM bytes (an I/O edge)."""
        if channels <= 0:
            raise FormatError(f"from_pcm16: channels must be >= 1, got {channels}")
        width = 2 * channels
        if len(data) == 0 or len(data) % width:
            raise FormatError(
                f"from_pcm16: {len(data)} bytes is not a whole number of {channels}-channel "
                f"int16 samples ({width} bytes each)"
            )
        a = np.frombuffer(data, dtype="<i2").reshape(-1, channels)
        return cls(a.astype(np.float32) / np.float32(_PCM16_SCALE), sample_rate, start)

    def to_pcm16(self) -> bytes:
        """Encode as little-endian interleaved int16 PCM bytes (clipped to [-1, 1))."""
        scaled = np.clip(self.samples * _PCM16_SCALE, -32768, 32767)
        data: bytes = np.rint(scaled).astype("<i2").tobytes()
        return data

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def n(self) -> int:
        """Number of samples (per channel)."""
        return int(self.samples.shape[0])

    def __len__(self) -> int:
        return int(self.samples.shape[0])

    @property
    def end(self) -> int:
        """Sample index one past the last sample."""
        return self.start + int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return float(self.samples.shape[0] / self.sample_rate)

    @property
    def time(self) -> float:
        """Start time in seconds since the start of the stream."""
        return self.start / self.sample_rate

    @property
    def mono(self) -> NDArray[np.float32]:
        """1-D view (channel 0 if mono, otherwise the channel mean)."""
        if self.samples.shape[1] == 1:
            return self.samples[:, 0]
        out: NDArray[np.float32] = self.samples.mean(axis=1, dtype=np.float32)
        return out

    def with_samples(self, samples: Samples, start: int | None = None) -> AudioFrame:
        """A copy with new samples (and optionally a new start)."""
        return replace(self, samples=samples, start=self.start if start is None else start)

    def to_dict(self) -> dict[str, Any]:
        """The one dict form (without the samples): ``type`` ``"audio"``, ``t`` and ``end``
        (seconds), ``sample_rate``, ``channels``."""
        r = self.sample_rate
        return {
            "type": "audio",
            "t": seconds(self.start, r),
            "end": seconds(self.end, r),
            "sample_rate": r,
            "channels": self.channels,
        }

    def __repr__(self) -> str:
        return (
            f"AudioFrame(start={self.start}, n={self.n}, channels={self.channels}, "
            f"sample_rate={self.sample_rate})"
        )


@dataclass(frozen=True, slots=True)
class LevelFrame:
    """RMS and peak level of one audio frame, in dBFS per channel and overall.

    ``rms_db``/``peak_db`` are over all channels; ``floor_db`` is the value used for silence.
    """

    start: int
    end: int
    sample_rate: int
    rms_db: float
    peak_db: float
    channel_rms_db: tuple[float, ...] = field(default=())
    channel_peak_db: tuple[float, ...] = field(default=())

    @property
    def time(self) -> float:
        """Start time in seconds."""
        return self.start / self.sample_rate

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return (self.end - self.start) / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"level"``, ``t`` (block start, s), ``rms_db`` and
        ``peak_db`` (dBFS, 2 decimals); ``channel_rms_db``/``channel_peak_db`` lists only for
        more than one channel."""
        d: dict[str, Any] = {
            "type": "level",
            "t": seconds(self.start, self.sample_rate),
            "rms_db": finite(self.rms_db, DB_DECIMALS),
            "peak_db": finite(self.peak_db, DB_DECIMALS),
        }
        if len(self.channel_rms_db) > 1:
            d["channel_rms_db"] = [finite(v, DB_DECIMALS) for v in self.channel_rms_db]
            d["channel_peak_db"] = [finite(v, DB_DECIMALS) for v in self.channel_peak_db]
        return d


@dataclass(frozen=True, slots=True)
class FileReceipt:
    """What a file sink wrote: emitted once when the file is complete."""

    path: str
    frames: int
    samples: int
    sample_rate: int | None = None
    channels: int | None = None
    reason: str = "completed"

    @property
    def seconds(self) -> float:
        """Duration written, in seconds (0 when nothing or not audio)."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"file"``, ``path``, ``frames``, ``samples``,
        ``seconds``, ``sample_rate``, ``channels``, ``reason``."""
        return {
            "type": "file",
            "path": self.path,
            "frames": self.frames,
            "samples": self.samples,
            "seconds": round(self.seconds, TIME_DECIMALS),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class StreamReceipt:
    """What a stream sink (``redis``) wrote: emitted once when its input has ended.

    ``url`` is where it wrote (any password replaced by ``***``), ``stream`` the stream's key;
    ``written`` counts the entries the server acknowledged, ``not_written`` the items taken in
    that never reached it (0 unless ``reason`` is ``"failed"``). ``reason``: ``completed``,
    ``error`` (the input failed; everything before it was written) or ``failed`` (the sink
    could not write; the error that follows says why).
    """

    url: str
    stream: str
    written: int
    not_written: int = 0
    reason: str = "completed"

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"stream"``, ``url``, ``stream``, ``written``,
        ``not_written``, ``reason``."""
        return {
            "type": "stream",
            "url": self.url,
            "stream": self.stream,
            "written": self.written,
            "not_written": self.not_written,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CountReceipt:
    """What a discarding sink (``null``) took in: emitted once when its input has ended.

    ``items`` counts everything it was given, ``samples`` the audio samples among them (per
    channel) at ``sample_rate`` (that of the last audio frame; None when there was none);
    ``reason``: ``completed`` or ``error`` (the input failed after these).
    """

    items: int
    samples: int = 0
    sample_rate: int | None = None
    reason: str = "completed"

    @property
    def seconds(self) -> float:
        """Audio taken in, in seconds (0 when none)."""
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"count"``, ``items``, ``samples``, ``seconds``,
        ``sample_rate``, ``reason``."""
        return {
            "type": "count",
            "items": self.items,
            "samples": self.samples,
            "seconds": round(self.seconds, TIME_DECIMALS),
            "sample_rate": self.sample_rate,
            "reason": self.reason,
        }


_FEATURE_TYPES = {"mfcc": "mfcc", "spectral": "spectral"}  # other kinds: "spectrogram"


@dataclass(frozen=True, slots=True, eq=False)
class FeatureFrame:
    """Consecutive rows of audio features (spectrogram, mel, MFCC, spectral descriptors).

    Row ``i`` of ``values`` was computed from samples ``[start + i * hop, start + i * hop +
    n_fft)`` of the stream; it is row ``row + i`` counted from the start of the stream.

    Parameters
    ----------
    kind
        What the columns are: ``"power"``, ``"magnitude"``, ``"mel"``, ``"log_mel"`` (dB),
        ``"mfcc"`` or ``"spectral"``.
    values
        float32 array ``(n_rows, n_features)``, ``n_rows >= 1``. Stored read-only.
    start
        Sample index of the first row's first sample.
    sample_rate
        Hz of the audio the rows come from.
    hop, n_fft
        Samples between rows, and samples per row (the analysis window).
    row
        Index of the first row since the start of the stream.
    columns
        One name per feature column (``"mel_0"``, ``"mfcc_3"``, ``"dmfcc_3"``, ``"centroid"``...).
    params
        The options that made the rows (shared between frames: do not mutate).
    latency
        Rows by which this output trails the STFT framing once a stream is under way (deltas
        hold ``delta_width // 2`` rows back; the first ones of a stream wait for the first
        full delta window).
    """

    kind: str
    values: NDArray[np.float32]
    start: int
    sample_rate: int
    hop: int
    n_fft: int
    row: int = 0
    columns: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    latency: int = 0

    def __post_init__(self) -> None:
        v = self.values
        if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim != 2:
            raise FormatError(
                "FeatureFrame: values must be a float32 array of shape (n_rows, n_features), "
                f"got {getattr(v, 'dtype', type(v).__name__)} {getattr(v, 'shape', '')}"
            )
        if v.shape[0] == 0:
            raise FormatError("FeatureFrame: values has no rows; emit no frame instead")
        if self.columns and len(self.columns) != v.shape[1]:
            raise FormatError(
                f"FeatureFrame: {len(self.columns)} column names for {v.shape[1]} columns"
            )
        object.__setattr__(self, "values", _readonly(v))

    @classmethod
    def _trusted(
        cls,
        kind: str,
        values: NDArray[np.float32],
        start: int,
        sample_rate: int,
        hop: int,
        n_fft: int,
        row: int,
        columns: tuple[str, ...],
        params: dict[str, Any],
        latency: int,
    ) -> FeatureFrame:
        """Construct without validation, for the feature operators' hot path (about 1 us less
        per frame): ``values`` must be a fresh float32 ``(n_rows >= 1, len(columns))`` array
        that nothing else holds; it is made read-only in place."""
        f = object.__new__(cls)
        values.flags.writeable = False
        put = object.__setattr__
        put(f, "kind", kind)
        put(f, "values", values)
        put(f, "start", start)
        put(f, "sample_rate", sample_rate)
        put(f, "hop", hop)
        put(f, "n_fft", n_fft)
        put(f, "row", row)
        put(f, "columns", columns)
        put(f, "params", params)
        put(f, "latency", latency)
        return f

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def starts(self) -> NDArray[np.int64]:
        """Sample index of each row's first sample."""
        return self.start + self.hop * np.arange(self.values.shape[0], dtype=np.int64)

    @property
    def times(self) -> NDArray[np.float64]:
        """Start time of each row in seconds (librosa's ``frames_to_time`` for center=False)."""
        return np.asarray(self.starts / self.sample_rate, dtype=np.float64)

    @property
    def time(self) -> float:
        """Start time of the first row, in seconds."""
        return self.start / self.sample_rate

    @property
    def end(self) -> int:
        """Sample index one past the last row's window."""
        return self.start + self.hop * (self.n_rows - 1) + self.n_fft

    def to_dict(
        self, decimals: int | None = 3, *, values: bool = True, with_columns: bool = False
    ) -> dict[str, Any]:
        """The one dict form: ``type`` (``"spectrogram"`` for the spectrogram kinds,
        ``"mfcc"``, ``"spectral"``), ``kind``, ``t`` (first row's start, s), ``hop`` (s between
        rows), ``window`` (s per row), ``row`` (first row's index in the stream), ``rows``,
        ``bins`` (columns per row) and ``values``: the rows as nested lists rounded to
        ``decimals`` (NaN/inf as ``None``).

        ``values=False`` leaves the rows out (the server sends them as uint8 ``data``); column
        names, ``params`` and ``latency`` are added with ``with_columns`` (send them once, not
        with every frame).
        """
        r = self.sample_rate
        d: dict[str, Any] = {
            "type": _FEATURE_TYPES.get(self.kind, "spectrogram"),
            "kind": self.kind,
            "t": seconds(self.start, r),
            "hop": seconds(self.hop, r),
            "window": seconds(self.n_fft, r),
            "row": self.row,
            "rows": self.n_rows,
            "bins": int(self.values.shape[1]),
        }
        if values:
            v = self.values.astype(np.float64)
            if decimals is not None:
                v = np.round(v, decimals)
            rows = v.tolist()
            if not np.isfinite(v).all():
                rows = [[x if np.isfinite(x) else None for x in row] for row in rows]
            d["values"] = rows
        if with_columns:
            d["columns"] = list(self.columns)
            d["params"] = json_safe(self.params)
            d["latency"] = self.latency
        return d

    def __repr__(self) -> str:
        return (
            f"FeatureFrame(kind={self.kind!r}, row={self.row}, start={self.start}, "
            f"shape={self.values.shape}, sample_rate={self.sample_rate}, hop={self.hop})"
        )


# --- voice activity (issue 5) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class VadFrame:
    """Speech probability of one model window, with the source audio it covers.

    Times are sample indices at the *source* stream's rate (``sample_rate``), whatever rate the
    model ran at: the window ``[start, end)`` is mapped back from the model rate. ``audio`` holds
    those source samples (original rate and channels), so later operators such as
    ``buffer_utterance`` cut utterances from the original audio. ``speech`` is ``None`` until
    ``hysteresis`` annotates the frame with its state (True inside a confirmed segment).
    ``pending`` is the onset (sample index) of a segment ``hysteresis`` has opened but not yet
    confirmed (``None`` otherwise), so ``buffer_utterance`` keeps the audio back to it.
    """

    start: int
    end: int
    sample_rate: int
    probability: float
    audio: AudioFrame | None = None
    speech: bool | None = None
    index: int = 0
    pending: int | None = None

    @classmethod
    def trusted(
        cls,
        start: int,
        end: int,
        sample_rate: int,
        probability: float,
        audio: AudioFrame | None,
        speech: bool | None,
        index: int,
        pending: int | None,
    ) -> VadFrame:
        """The same frame as ``VadFrame(...)`` with every field given, built in a third of the
        time (the slots set directly, not through the frozen dataclass's ``__setattr__``
        guard): for ``vad`` and ``hysteresis``, which make one or two per window."""
        f = _new(cls)
        s = _VAD_SET
        s[0](f, start)
        s[1](f, end)
        s[2](f, sample_rate)
        s[3](f, probability)
        s[4](f, audio)
        s[5](f, speech)
        s[6](f, index)
        s[7](f, pending)
        return f

    @property
    def time(self) -> float:
        """Start time in seconds."""
        return self.start / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The one dict form (without the audio): ``type`` ``"vad"``, ``t`` and ``end`` (the
        window ``[t, end)``, s), ``p`` (probability, 4 decimals), ``speech`` (the
        ``hysteresis`` state; ``None`` before it)."""
        return vad_dict(self.start, self.end, self.sample_rate, self.probability, self.speech)


def vad_dict(
    start: int, end: int, sample_rate: int, probability: float, speech: bool | None
) -> dict[str, Any]:
    """:meth:`VadFrame.to_dict` from the frame's fields, for a caller that has them without
    a frame (the server's direct paths)."""
    return {
        "type": "vad",
        "t": seconds(start, sample_rate),
        "end": seconds(end, sample_rate),
        "p": finite(probability, PROBABILITY_DECIMALS),
        "speech": None if speech is None else bool(speech),
    }


_new = object.__new__
# the slot setters of VadFrame's fields, in order (what VadFrame.trusted calls)
_VAD_SET: tuple[Any, ...] = tuple(
    VadFrame.__dict__[name].__set__
    for name in (
        "start",
        "end",
        "sample_rate",
        "probability",
        "audio",
        "speech",
        "index",
        "pending",
    )
)


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at sample ``start`` (emitted once the segment is confirmed)."""

    start: int
    sample_rate: int

    @property
    def time(self) -> float:
        """Onset in seconds."""
        return self.start / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"speech_start"``, ``t`` (onset, s)."""
        return {"type": "speech_start", "t": seconds(self.start, self.sample_rate)}


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech ``[start, end)`` ended; ``reason``: silence, end_of_stream or error."""

    start: int
    end: int
    sample_rate: int
    reason: str = "silence"

    @property
    def time(self) -> float:
        """End in seconds."""
        return self.end / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"speech_end"``, ``start``, ``end`` and ``t`` (= end),
        ``duration`` (all s), ``reason``."""
        r = self.sample_rate
        end = seconds(self.end, r)
        return {
            "type": "speech_end",
            "start": seconds(self.start, r),
            "end": end,
            "t": end,
            "duration": seconds(self.end - self.start, r),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Utterance:
    """One cut utterance: ``samples`` at the source rate span ``[audio_start, audio_end)``.

    ``start``/``end`` are the detected speech (sample indices); the audio adds pre-roll before
    and post-roll after. ``reason`` says why it ended: ``silence``, ``max_length`` (split at the
    least speech-like point of its last second), ``end_of_stream``, ``gap`` (no input for
    ``max_gap_ms``) or ``error``.
    """

    samples: Samples
    sample_rate: int
    start: int
    end: int
    audio_start: int
    audio_end: int
    reason: str
    index: int = 0

    @property
    def duration(self) -> float:
        """Detected speech duration in seconds."""
        return (self.end - self.start) / self.sample_rate

    @property
    def time(self) -> float:
        """Speech onset in seconds."""
        return self.start / self.sample_rate

    def to_frame(self) -> AudioFrame:
        """The utterance's audio as an :class:`AudioFrame` (starting at ``audio_start``)."""
        return AudioFrame(self.samples, self.sample_rate, self.audio_start)

    def to_dict(self) -> dict[str, Any]:
        """The one dict form (no samples): ``type`` ``"utterance"``, ``start``/``end`` (the
        detected speech), ``duration``, ``audio_start``/``audio_end`` (the audio's span), all
        s, and ``reason``."""
        r = self.sample_rate
        return {
            "type": "utterance",
            "start": seconds(self.start, r),
            "end": seconds(self.end, r),
            "duration": seconds(self.end - self.start, r),
            "audio_start": seconds(self.audio_start, r),
            "audio_end": seconds(self.audio_end, r),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SettingsRejected:
    """A live setting was refused; the previous settings stay in force.

    Emitted downstream (not as ``on_error``: the stream goes on) by operators that accept an
    Observable of settings, such as ``hysteresis`` and ``buffer_utterance``.
    """

    operator: str
    settings: dict[str, Any]
    message: str
    at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"settings_rejected"``, ``operator``, ``settings``
        (NaN/inf as ``None``), ``message``, ``at`` (the sample index it arrived at, or
        ``None``: no rate is known here)."""
        return {
            "type": "settings_rejected",
            "operator": self.operator,
            "settings": json_safe(dict(self.settings)),
            "message": self.message,
            "at": self.at,
        }


# --- transcription (issue 14) -------------------------------------------------------------------

CONFIDENCE_DECIMALS = 4

TRANSCRIPT_STATUSES = ("ok", "empty", "skipped")


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word: ``[start, end)`` in sample indices of the stream (the utterance's
    rate), and the recogniser's confidence in it (0-1, ``None`` when the backend gives none)."""

    word: str
    start: int
    end: int
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """The text of one :class:`Utterance`, emitted by ``transcribe``.

    ``utterance`` is the utterance's ``index``; ``start``/``end`` its detected speech (sample
    indices at ``sample_rate``, the utterance's own rate). ``words`` carry times where the
    backend gives them. ``confidence`` (0-1 or ``None``) is the backend's; ``backend`` names it.
    ``processing_s`` and ``cpu_s`` are the wall-clock and CPU seconds recognition took (the only
    fields that differ between runs). ``status``: ``ok``; ``empty`` (an utterance without
    samples: no recognition ran); ``skipped`` (the recogniser was busy and the bounded queue was
    full: the utterance was not transcribed, and ``text`` is empty).
    """

    utterance: int
    start: int
    end: int
    sample_rate: int
    text: str
    words: tuple[Word, ...] = ()
    confidence: float | None = None
    backend: str = ""
    processing_s: float = 0.0
    cpu_s: float = 0.0
    status: str = "ok"

    @property
    def time(self) -> float:
        """Speech onset in seconds."""
        return self.start / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        """The one dict form: ``type`` ``"transcript"``, ``utterance`` (its index), ``start`` and
        ``end`` (s), ``text``, ``words`` (each ``word``, ``start``, ``end`` in s and
        ``confidence``), ``confidence``, ``backend``, ``processing_s``, ``cpu_s``, ``status``."""
        r = self.sample_rate
        return {
            "type": "transcript",
            "utterance": self.utterance,
            "start": seconds(self.start, r),
            "end": seconds(self.end, r),
            "text": self.text,
            "words": [
                {
                    "word": w.word,
                    "start": seconds(w.start, r),
                    "end": seconds(w.end, r),
                    "confidence": None
                    if w.confidence is None
                    else finite(w.confidence, CONFIDENCE_DECIMALS),
                }
                for w in self.words
            ],
            "confidence": None
            if self.confidence is None
            else finite(self.confidence, CONFIDENCE_DECIMALS),
            "backend": self.backend,
            "processing_s": finite(self.processing_s, TIME_DECIMALS),
            "cpu_s": finite(self.cpu_s, TIME_DECIMALS),
            "status": self.status,
        }
