"""The golden set: library chains, launch strings and server sessions, run and reduced to data.

Shared by ``record.py`` (writes ``tests/golden/data/<case>.json``) and ``test_golden.py``
(runs every case again and compares). Each case runs the product on audio made here, without
new binary files in the repository, and returns a *digest*: the events it produced (field for
field, after dropping the fields listed in :data:`DROPPED`) and the files it wrote (byte for
byte: sha256 and size; the text of small label files in full).

How the digest is compared (see :func:`compare`):

* **Exact**: every discrete value (event kinds and order, segment boundaries and every time
  in seconds, which are sample indices / rate rounded to 6 decimals, utterance ids, ``seq``,
  reasons, ``speech`` flags, counts, sample counts in ``stats``), every file's bytes
  (utterance WAVs are the input's own samples between exact cut points; labels; feature CSVs
  rounded to 6 decimals), and the floats of ``level`` and ``spectrogram`` events (numpy on the
  input; exact on one machine).
* **Within** :data:`P_TOL`: the ``p`` of ``vad`` events, onnxruntime's Silero output rounded
  to 4 decimals in the event. On the machine that recorded the set it is bit-identical
  whatever the chunking (160 to 4096 samples, the streaming and the sequence model), batched
  across sessions or not, with and without event batching; the tolerance (one unit of the
  4th decimal) is only there because another CPU may take other onnxruntime (MLAS) kernels
  that round the last bit of a probability the other way, which can move its 4th decimal.

High-rate streams (``vad``, ``level``, ``spectrogram``, ``stats``) are kept as their count,
the sha256 of their events (without ``p``), the first and last event, and the ``p`` column,
so that the set stays small; ``record.py --full DIR`` writes every event of every case for a
diff when one of those hashes changes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from rxaudio.data import speech_sample, speech_segments

DATA = Path(__file__).with_name("data")
RATE = 16000
P_TOL = 1e-4  # see the module docstring: exact today, one unit of the rounding elsewhere
_FULL: dict[str, Any] = {}  # set by run_case(full=...)
HIGH_RATE = ("vad", "level", "spectrogram", "stats")
INLINE_MAX = 4096  # text files up to this size are kept whole (labels), larger ones hashed

# Fields dropped from server events, because they legitimately differ between two runs of the
# same session. Nothing else is dropped.
DROPPED: dict[str, tuple[str, ...]] = {
    # the session id is random (and names the session's folder and utterance URLs, where it
    # is replaced by "{session}"); the resume token is a random secret
    "started": ("session", "resume_token"),
    "stopped": ("session",),
    # ``queue`` is the depth of the connection's outbox when the stats event was made: how far
    # the client's reading lags the pipeline at that moment (wall-clock scheduling). ``dropped``
    # is kept: the sessions run with a queue that never drops, so it must stay 0.
    "stats": ("session", "queue"),
}


# ---------------------------------------------------------------------------------------------
# audio, made here from the bundled sample with integer or basic float arithmetic only (no
# resampler, no transcendental functions), so that it is the same on every machine
# ---------------------------------------------------------------------------------------------


def _once(make: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """Make a signal once per process; read-only, since every case shares it."""

    @functools.cache
    def made() -> np.ndarray:
        x = make()
        x.flags.writeable = False
        return x

    return functools.wraps(make)(made)


@_once
def speech() -> np.ndarray:
    """The bundled sample, int16 (n,) at 16 kHz."""
    x, sr = sf.read(speech_sample(), dtype="int16")
    assert sr == RATE
    return np.asarray(x, dtype=np.int16)


@_once
def noisy() -> np.ndarray:
    """The sample plus seeded Gaussian noise (RMS 600, about -35 dBFS; SNR about 15 dB)."""
    x = speech().astype(np.int64)
    noise = np.round(np.random.default_rng(26).standard_normal(x.shape[0]) * 600.0)
    return np.clip(x + noise.astype(np.int64), -32768, 32767).astype(np.int16)


@_once
def stereo44k() -> np.ndarray:
    """:func:`noisy` at 44.1 kHz by linear interpolation, as stereo (n, 2) int16.

    The left channel is the interpolated signal, the right one 0.5 of it plus a seeded
    noise of its own, so that a mix to mono is not either channel.
    """
    x = noisy().astype(np.float64)
    n = x.shape[0] * 44100 // RATE
    k = np.arange(n, dtype=np.int64)
    idx = (k * RATE) // 44100
    frac = ((k * RATE) % 44100).astype(np.float64) / 44100.0
    nxt = np.minimum(idx + 1, x.shape[0] - 1)
    left = np.round(x[idx] * (1.0 - frac) + x[nxt] * frac)
    right = np.round(left * 0.5 + np.random.default_rng(44).standard_normal(n) * 200.0)
    out = np.stack((left, right), axis=1)
    return np.clip(out, -32768, 32767).astype(np.int16)


@_once
def hard() -> np.ndarray:
    """The sample at half its level in seeded noise of RMS 2500 (about -22 dBFS; SNR near
    0 dB): many probabilities between 0.35 and 0.65, so that a changed threshold shows."""
    x = np.round(speech().astype(np.float64) * 0.5)
    noise = np.round(np.random.default_rng(27).standard_normal(x.shape[0]) * 2500.0)
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


@_once
def gaps() -> np.ndarray:
    """The sample's three sentences with long quiet stretches around them, int16 (n,) 16 kHz.

    3 s before the first, 4.5 s between, 2 s after; the quiet is seeded noise of RMS 30
    (about -60 dBFS), so ``level`` is finite and the VAD sees something other than zeros.
    """
    x = speech()
    rng = np.random.default_rng(7)

    def quiet(seconds: float) -> np.ndarray:
        m = int(seconds * RATE)
        return np.round(rng.standard_normal(m) * 30.0).astype(np.int16)

    parts = [quiet(3.0)]
    for i, seg in enumerate(speech_segments()):
        a, b = round(seg["start"] * RATE) - 1600, round(seg["end"] * RATE) + 1600
        parts.append(x[max(a, 0) : min(b, x.shape[0])])
        parts.append(quiet(4.5 if i < 2 else 2.0))
    return np.concatenate(parts)


AUDIO: dict[str, Callable[[], np.ndarray]] = {
    "speech": speech,
    "noisy": noisy,
    "stereo44k": stereo44k,
    "hard": hard,
    "gaps": gaps,
}
AUDIO_RATE = {"speech": RATE, "noisy": RATE, "stereo44k": 44100, "hard": RATE, "gaps": RATE}


def audio_fingerprint() -> dict[str, str]:
    """sha256 of each generated signal: a changed generator shows here first, not as events."""
    return {name: hashlib.sha256(make().tobytes()).hexdigest() for name, make in AUDIO.items()}


def write_wav(name: str, folder: Path) -> str:
    """The named signal as a 16-bit WAV in ``folder``; its path."""
    path = folder / f"{name}.wav"
    sf.write(str(path), AUDIO[name](), AUDIO_RATE[name], subtype="PCM_16")
    return str(path)


def as_float(x: np.ndarray) -> np.ndarray:
    """int16 samples as float32 in [-1, 1), the way soundfile reads them."""
    return (x.astype(np.float32) / 32768.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# digests
# ---------------------------------------------------------------------------------------------


def _canon(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def _rle(kinds: Iterable[str]) -> list[str]:
    """Event kinds in order, runs collapsed: ``["vad*33", "speech_start", "vad*5", ...]``."""
    out: list[str] = []
    last, n = "", 0
    for k in [*kinds, ""]:
        if k == last:
            n += 1
            continue
        if last:
            out.append(last if n == 1 else f"{last}*{n}")
        last, n = k, 1
    return out


def digest_events(events: list[dict[str, Any]], *, ordered: bool) -> dict[str, Any]:
    """The comparable form of an event stream.

    ``ordered``: the interleaving of kinds is part of it (library chains: one thread, one
    order). Server sessions pass False: there the interleaving of the display, ``vad`` and
    ``stats`` streams depends on when the batcher and the connection's sender ran; each
    stream's own order, and the order of every other event (``seq``), is still compared.
    """
    if _FULL:
        _FULL["k"] += 1
        path = Path(_FULL["dir"]) / f"{_FULL['case']}.{_FULL['k']}.jsonl"
        path.write_text("".join(_canon(e) + "\n" for e in events))
    out: dict[str, Any] = {"count": len(events)}
    if ordered:
        out["order"] = _rle(e["type"] for e in events)
    out["events"] = [e for e in events if e["type"] not in HIGH_RATE]
    for kind in HIGH_RATE:
        stream = [dict(e) for e in events if e["type"] == kind]
        if not stream:
            continue
        entry: dict[str, Any] = {"count": len(stream)}
        if kind == "vad":
            entry["p"] = [e.pop("p") for e in stream]
        text = "\n".join(_canon(e) for e in stream)
        entry["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        entry["first"], entry["last"] = stream[0], stream[-1]
        out[kind] = entry
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file as a dict."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def digest_files(
    root: Path,
    *,
    skip: str = "",
    session: str | None = None,
    normalise: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Every file under ``root``, by relative path (a session folder named ``{session}``).

    JSONL files are digested as events (ordered), after ``normalise``; small text files
    (labels) are kept whole; every other file is its sha256 and size.
    """
    files: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if skip and rel.split("/")[0] == skip:
            continue
        if session:
            rel = rel.replace(session, "{session}")
        data = path.read_bytes()
        if path.suffix == ".jsonl":
            events = read_jsonl(path)
            if normalise is not None:
                events = [normalise(e) for e in events]
            files[rel] = {"jsonl": digest_events(events, ordered=True)}
        elif path.suffix in (".rttm", ".txt", ".lab", ".srt") and len(data) <= INLINE_MAX:
            files[rel] = {"text": data.decode()}
        else:
            files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return files


def compare(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Every difference between two digests, as ``path: expected != actual`` lines."""
    out: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            here = f"{where}.{k}" if where else str(k)
            if k not in actual:
                out.append(f"{here}: missing (expected {_short(expected[k])})")
            elif k not in expected:
                out.append(f"{here}: unexpected {_short(actual[k])}")
            elif k == "p" and isinstance(expected[k], list):
                out.extend(_compare_p(expected[k], actual[k], here))
            else:
                out.extend(compare(expected[k], actual[k], here))
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            out.append(f"{where}: {len(expected)} items expected, got {len(actual)}")
        for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
            out.extend(compare(a, b, f"{where}[{i}]"))
    elif type(expected) is not type(actual) or expected != actual:
        out.append(f"{where}: expected {_short(expected)}, got {_short(actual)}")
    return out


def _compare_p(expected: list[Any], actual: Any, where: str) -> list[str]:
    if not isinstance(actual, list) or len(actual) != len(expected):
        return [f"{where}: {len(expected)} probabilities expected, got {_short(actual)}"]
    bad = [
        i
        for i, (a, b) in enumerate(zip(expected, actual, strict=True))
        if not (isinstance(b, float | int) and abs(float(a) - float(b)) <= P_TOL)
    ]
    if not bad:
        return []
    i = bad[0]
    first = f"first [{i}]: {expected[i]} != {actual[i]}"
    return [f"{where}: {len(bad)} differ by more than {P_TOL}, {first}"]


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "..."


# ---------------------------------------------------------------------------------------------
# library chains: Python pipe() and launch strings
# ---------------------------------------------------------------------------------------------


def _source(audio: str, block: int, folder: Path, kind: str) -> Any:
    from rxaudio.sources import from_array, from_file

    if kind == "file":
        return from_file(write_wav(audio, folder), block_size=block)
    return from_array(as_float(AUDIO[audio]()), AUDIO_RATE[audio], block_size=block)


def speech_chain(
    folder: Path,
    *,
    audio: str,
    block: int,
    source: str = "array",
    hysteresis: dict[str, Any] | None = None,
    utterance: dict[str, Any] | None = None,
) -> None:
    """``vad ! hysteresis ! buffer_utterance``: every item to JSONL, the utterances to WAVs.

    Run twice over the same source (pipe() has no tee): once with ``passthrough`` into
    ``events.jsonl`` (vad windows, speech events and utterances in their order), once into
    ``to_utterances`` (WAVs and the jsonl/rttm/txt labels).
    """
    from rxaudio.operators import buffer_utterance, vad
    from rxaudio.operators import hysteresis as hyst
    from rxaudio.sinks import to_jsonl, to_utterances

    h, u = hysteresis or {}, utterance or {}
    src = _source(audio, block, folder / "in", source)
    src.pipe(
        vad(), hyst(**h), buffer_utterance(**u, passthrough=True), to_jsonl(folder / "events.jsonl")
    ).run()
    src.pipe(vad(), hyst(**h), buffer_utterance(**u), to_utterances(folder / "utts")).run()


def feature_chain(folder: Path, *, audio: str, block: int) -> None:
    """``level`` to JSONL, log-mel ``spectrogram`` and ``mfcc`` (with deltas) to CSV files."""
    from rxaudio.operators import level, mfcc, spectrogram
    from rxaudio.sinks import to_features, to_jsonl

    src = _source(audio, block, folder / "in", "array")
    src.pipe(level(), to_jsonl(folder / "level.jsonl")).run()
    src.pipe(spectrogram(kind="log_mel", n_mels=40), to_features(folder / "logmel.csv")).run()
    src.pipe(mfcc(n_mfcc=13, deltas=2), to_features(folder / "mfcc.csv")).run()
    src.pipe(spectrogram(), to_features(folder / "power.npz")).run()


def launch(folder: Path, *, audio: str, text: str) -> None:
    """``rxaudio launch TEXT`` in-process; ``{in}`` is the audio file, ``{out}`` the folder."""
    from rxaudio.apps.cli import main

    path = write_wav(audio, folder / "in")
    (folder / "out").mkdir()
    code = main(["launch", text.format(**{"in": path, "out": folder / "out"})])
    assert code == 0, f"rxaudio launch exited {code}"


def _library_case(run: Callable[..., None], **kw: Any) -> Callable[[], dict[str, Any]]:
    def case() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
            folder = Path(tmp) / "run"
            (folder / "in").mkdir(parents=True)
            run(folder, **kw)
            return {"files": digest_files(folder, skip="in")}

    return case


# ---------------------------------------------------------------------------------------------
# server sessions: `rxaudio serve` (its flags, its app) on 127.0.0.1 port 0, real WebSockets
# ---------------------------------------------------------------------------------------------


def normalise_server(event: dict[str, Any], session: str) -> dict[str, Any]:
    """An event without the fields of :data:`DROPPED`; the session id in URLs as ``{session}``."""
    out = {k: v for k, v in event.items() if k not in DROPPED.get(event.get("type", ""), ())}
    if isinstance(out.get("url"), str) and session:
        out["url"] = out["url"].replace(session, "{session}")
    return out


async def _client(
    http: Any,
    url: str,
    *,
    audio: str,
    frame: int,
    fmt: str = "int16",
    start: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Stream ``audio`` as fast as the server takes it, in ``frame``-sample messages; stop.

    Returns every event received (batched arrays flattened, in order) and the session id.
    """
    x = AUDIO[audio]()
    rate, channels = AUDIO_RATE[audio], 1 if x.ndim == 1 else x.shape[1]
    data = x if fmt == "int16" else as_float(x)
    wire = "<i2" if fmt == "int16" else "<f4"  # little-endian interleaved, as the protocol says
    events: list[dict[str, Any]] = []
    async with http.ws_connect(url, max_msg_size=0) as ws:
        events.append(await ws.receive_json(timeout=30))  # hello
        msg = {"type": "start", "version": 2, "sample_rate": rate, "channels": channels}
        await ws.send_json({**msg, "format": fmt, **(start or {})})
        while events[-1]["type"] != "started":
            events.append(await ws.receive_json(timeout=30))
        session = str(events[-1]["session"])

        async def reader() -> None:
            while True:
                got = await ws.receive_json(timeout=60)
                batch = got if isinstance(got, list) else [got]
                events.extend(batch)
                if any(e["type"] == "stopped" for e in batch):
                    return

        task = asyncio.create_task(reader())
        for i in range(0, data.shape[0], frame):
            await ws.send_bytes(data[i : i + frame].astype(wire).tobytes())
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(task, 120)
    return events, session


async def _serve(flags: list[str], clients: list[dict[str, Any]], out: Path) -> list[Any]:
    from aiohttp import ClientSession, web

    from rxaudio.apps._serve import config_from_args
    from rxaudio.apps.cli import build_parser
    from rxaudio.server import create_app, guard

    # a queue no session can fill: a dropped event would be a difference, not a setting
    argv = ["serve", "--port", "0", "--out", str(out), "--queue", "100000", *flags]
    config = config_from_args(build_parser().parse_args(argv))
    runner = web.AppRunner(create_app(config), handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    guard(runner)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with ClientSession() as http:
            url = f"http://127.0.0.1:{port}/ws"
            return list(await asyncio.gather(*(_client(http, url, **c) for c in clients)))
    finally:
        await runner.cleanup()


def _server_case(flags: list[str], *clients: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    def case() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
            out = Path(tmp) / "out"
            results = asyncio.run(_serve(flags, list(clients), out))
            digest: dict[str, Any] = {}
            for i, (events, session) in enumerate(results):
                norm = [normalise_server(e, session) for e in events]
                digest[f"client{i}"] = {
                    "events": digest_events(norm, ordered=False),
                    "files": digest_files(
                        out / session,
                        normalise=lambda e, s=session: normalise_server(e, s),
                    ),
                }
            leftover = sorted(p.name for p in out.iterdir()) if out.exists() else []
            digest["out_dirs"] = len(leftover)
            return digest

    return case


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------

SETTINGS_H = {"threshold": 0.6, "min_speech_ms": 100, "min_silence_ms": 300}
SETTINGS_U = {"pre_roll_ms": 100, "post_roll_ms": 50, "max_ms": 1500}
SERVE_OPTIONS = {**SETTINGS_H, **SETTINGS_U}
LAUNCH_SPEECH = (
    "file location={in} block_size=1000 ! tee name=t "
    "t. ! level ! jsonl location={out}/level.jsonl "
    "t. ! vad ! hysteresis threshold=0.6 min_silence_ms=300 "
    "! buffer_utterance pre_roll_ms=100 max_ms=1500 ! wavdir location={out}/utts"
)
LAUNCH_FEATURES = (
    "file location={in} block_size=4410 ! tee name=t "
    "t. ! audio/x-raw,rate=16000,channels=1 ! spectrogram kind=log_mel n_mels=64 "
    "! features location={out}/logmel.csv "
    "t. ! vad ! hysteresis ! labels location={out}/speech.rttm "
    "t. ! level ! jsonl location={out}/level.jsonl"
)

CASES: dict[str, Callable[[], dict[str, Any]]] = {
    **{
        f"lib_speech_block{b}": _library_case(speech_chain, audio="speech", block=b)
        for b in (160, 512, 1000, 4096)
    },
    "lib_speech_file_block1024": _library_case(
        speech_chain, audio="speech", block=1024, source="file"
    ),
    "lib_noisy_settings_block1000": _library_case(
        speech_chain, audio="noisy", block=1000, hysteresis=SETTINGS_H, utterance=SETTINGS_U
    ),
    "lib_noisy_settings_block4096": _library_case(
        speech_chain, audio="noisy", block=4096, hysteresis=SETTINGS_H, utterance=SETTINGS_U
    ),
    "lib_stereo44k_block4410": _library_case(speech_chain, audio="stereo44k", block=4410),
    "lib_stereo44k_file_block1000_settings": _library_case(
        speech_chain,
        audio="stereo44k",
        block=1000,
        source="file",
        hysteresis=SETTINGS_H,
        utterance=SETTINGS_U,
    ),
    "lib_hard_block512": _library_case(speech_chain, audio="hard", block=512),
    "lib_gaps_block512": _library_case(speech_chain, audio="gaps", block=512),
    "lib_gaps_split_block777": _library_case(
        speech_chain,
        audio="gaps",
        block=777,
        hysteresis={"min_silence_ms": 50, "neg_threshold": 0.2},
        utterance={"pre_roll_ms": 0, "post_roll_ms": 0, "max_ms": 1200},
    ),
    "lib_features_speech_block1000": _library_case(feature_chain, audio="speech", block=1000),
    "lib_features_noisy_block160": _library_case(feature_chain, audio="noisy", block=160),
    "launch_noisy_tee": _library_case(launch, audio="noisy", text=LAUNCH_SPEECH),
    "launch_stereo44k_features": _library_case(launch, audio="stereo44k", text=LAUNCH_FEATURES),
    "serve_speech_32ms": _server_case([], {"audio": "speech", "frame": 512}),
    "serve_speech_64ms_nobatch_arrays": _server_case(
        ["--no-batch"], {"audio": "speech", "frame": 1024, "start": {"batch": True}}
    ),
    "serve_noisy_odd_settings": _server_case(
        [],
        {
            "audio": "noisy",
            "frame": 777,
            "start": {"batch": True, "options": {**SERVE_OPTIONS, "events": ["vad"]}},
        },
    ),
    "serve_stereo44k_float32": _server_case(
        [],
        {
            "audio": "stereo44k",
            "frame": 1411,
            "fmt": "float32",
            "start": {"options": {"events": ["level", "vad"]}},
        },
    ),
    "serve_hard_32ms_vad_only": _server_case(
        [], {"audio": "hard", "frame": 512, "start": {"options": {"events": ["vad"]}}}
    ),
    "serve_gaps_pipeline_v1": _server_case(
        [
            "--pipeline",
            "vad ! hysteresis min_silence_ms=500 ! buffer_utterance post_roll_ms=0 max_ms=2000",
        ],
        {"audio": "gaps", "frame": 2048, "start": {"version": 1}},
    ),
    "serve_two_sessions_batched": _server_case(
        [],
        {"audio": "speech", "frame": 512},
        {"audio": "gaps", "frame": 1024, "start": {"batch": True}},
    ),
}


def run_case(name: str, full: Path | None = None) -> dict[str, Any]:
    """The digest of one case, as stored in ``data/<name>.json``.

    ``full``: also write every event stream of the case, whole, as ``<name>.<k>.jsonl`` there
    (for a diff when a hash in a digest changes; never stored).
    """
    _FULL.clear()
    if full is not None:
        _FULL.update(dir=full, case=name, k=0)
        full.mkdir(parents=True, exist_ok=True)
    try:
        return CASES[name]()
    finally:
        _FULL.clear()


def load(name: str) -> dict[str, Any]:
    """The recorded digest of one case."""
    return dict(json.loads((DATA / f"{name}.json").read_text()))


def dump(digest: Any) -> str:
    """The stored text of a digest: sorted keys, one line per small item (diffable)."""
    return json.dumps(digest, sort_keys=True, indent=1) + "\n"
