"""Redis Streams at the I/O edge: URLs and the entry format (connecting, retrying and failure
causes: :mod:`rxaudio.io.redis`).

One entry format, written by the ``redis`` sink and the server and read by the ``redis_src``
source and ``rxaudio worker``: ``type`` (the item's dict form's type), ``data`` (that dict form
as JSON), ``producer`` and ``seq`` (who wrote it, numbered per producer), and for an utterance
its audio as ``audio_format`` says: ``int16`` (``audio``: little-endian interleaved 16-bit
PCM), ``flac`` (``audio``: a FLAC file) or ``wav`` (``path``: a WAV file the reader can open),
with ``sample_rate`` and ``channels``. The server adds ``session``; a worker's results add
``source_id`` (the entry they came from). Everything here is plain functions over bytes and
dicts: no Rx, no threads.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .redis import why

if TYPE_CHECKING:  # imported where used: `serve --help` and `worker --help` read the names here
    import numpy as np
    from numpy.typing import NDArray

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_STREAM = "rxaudio"
"""The stream the ``redis`` sink, ``redis_src``, ``rxaudio serve --redis`` and ``rxaudio
worker`` use unless told."""
DEFAULT_RETRY_S = 10.0
"""How long one outage may last, by default, before a writer or reader gives up."""


def results_stream(stream: str) -> str:
    """Where workers write the results of ``stream``'s entries, unless told."""
    return f"{stream}:results"


AUDIO_MODES = ("int16", "flac", "file", "none")
"""How an utterance's audio goes with its entry (``file``: a WAV whose path the entry holds)."""
AUDIO_FORMAT = {"int16": "int16", "flac": "flac", "file": "wav"}
"""The entry's ``audio_format`` for each audio mode."""


def shown_url(url: str) -> str:
    """``url`` fit for messages and receipts: a password (in the user part or the query) is
    replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        url = parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)


def check_url(url: str, who: str = "redis") -> str:
    """``url`` when it is a Redis URL redis-py can use; else :class:`ConfigError` from ``who``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{who}: url must start with redis://, rediss:// or unix://, got "
            f"{shown_url(url)!r}; e.g. redis://127.0.0.1:6379/0"
        )
    try:
        from redis.connection import parse_url
    except ImportError:
        raise ConfigError(
            f"{who}: the redis package is not installed; pip install 'rxaudio[redis]'"
        ) from None
    try:
        _ = urlsplit(url).port  # a port that is no number
        kwargs = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    except ValueError as exc:
        raise ConfigError(f"{who}: bad url {shown_url(url)!r} ({exc})") from None
    if scheme == "unix" and not kwargs.get("path"):
        raise ConfigError(
            f"{who}: a unix:// url names the socket, e.g. unix:///run/redis.sock, got "
            f"{shown_url(url)!r}"
        )
    return url


def text(v: Any) -> str:
    """A field value (bytes from Redis) as text (bytes that are not UTF-8 as escapes: an
    entry is anyone's input, and reading it must not fail before it can be dead-lettered)."""
    return v.decode(errors="backslashreplace") if isinstance(v, bytes) else str(v)


# --- utterance audio in an entry ----------------------------------------------------------


def flac_bytes(samples: NDArray[np.float32], sample_rate: int) -> bytes:
    """``(n, channels)`` samples as a 16-bit FLAC file in memory."""
    import numpy as np
    import soundfile as sf

    from ..frames import AudioFrame

    pcm = np.frombuffer(AudioFrame(samples, sample_rate, 0).to_pcm16(), dtype="<i2")
    buf = io.BytesIO()
    sf.write(buf, pcm.reshape(-1, samples.shape[1]), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


class MalformedEntry(ValueError):
    """An entry that does not follow the format; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class DecodedEntry:
    """One entry read back: its fields as text (audio left out), its record, its audio."""

    fields: dict[str, str]
    record: dict[str, Any]
    samples: NDArray[np.float32] | None = None
    """``(n, channels)`` float32 in [-1, 1), when the entry carries audio."""
    sample_rate: int | None = None


def _int_field(fields: dict[str, str], name: str) -> int:
    raw = fields.get(name)
    try:
        v = int(raw) if raw is not None else 0
    except ValueError:
        raise MalformedEntry(f"{name} is {raw!r}, not a whole number") from None
    if v <= 0:
        raise MalformedEntry(f"{name} is missing or not positive ({raw!r})")
    return v


def decode_entry(raw: dict[Any, Any]) -> DecodedEntry:
    """Read one entry's fields (as redis-py returns them); :class:`MalformedEntry` says why not.

    Audio is decoded when ``audio_format`` is there: 16-bit PCM, FLAC or a WAV path.
    """
    import numpy as np
    import orjson

    fields = {text(k): v for k, v in raw.items()}
    audio = fields.pop("audio", None)
    shown = {k: text(v) for k, v in fields.items()}
    data = shown.get("data")
    if data is None:
        raise MalformedEntry("no data field (the item's dict form as JSON)")
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedEntry(f"data is not JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        raise MalformedEntry("data is not a JSON object with a type")
    fmt = shown.get("audio_format")
    if fmt is None:
        if audio is not None:
            raise MalformedEntry("audio without audio_format")
        return DecodedEntry(shown, record)
    rate = _int_field(shown, "sample_rate")
    channels = _int_field(shown, "channels")
    try:
        if fmt == "int16":
            if not isinstance(audio, bytes | bytearray):
                raise MalformedEntry("audio_format int16 without audio bytes")
            if len(audio) % (2 * channels):
                raise MalformedEntry(
                    f"{len(audio)} bytes of audio are not whole 16-bit frames of {channels} "
                    "channel(s)"
                )
            pcm = np.frombuffer(bytes(audio), dtype="<i2").reshape(-1, channels)
            samples = pcm.astype(np.float32) / np.float32(32768.0)
        elif fmt in ("flac", "wav"):
            import soundfile as sf

            if fmt == "flac":
                if not isinstance(audio, bytes | bytearray):
                    raise MalformedEntry("audio_format flac without audio bytes")
                src: Any = io.BytesIO(bytes(audio))
            else:
                src = shown.get("path")
                if not src:
                    raise MalformedEntry("audio_format wav without a path")
            data_, file_rate = sf.read(src, dtype="float32", always_2d=True)
            if file_rate != rate or data_.shape[1] != channels:
                raise MalformedEntry(
                    f"the audio is {file_rate} Hz, {data_.shape[1]} channel(s); the entry says "
                    f"{rate} Hz, {channels}"
                )
            samples = np.ascontiguousarray(data_, dtype=np.float32)
        else:
            raise MalformedEntry(f"audio_format {fmt!r} is none of int16, flac, wav")
    except MalformedEntry:
        raise
    except Exception as exc:  # soundfile's own errors: a damaged file, a path that is gone
        raise MalformedEntry(f"cannot read the {fmt} audio ({why(exc)})") from None
    return DecodedEntry(shown, record, samples, rate)
