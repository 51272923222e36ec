"""``rxaudio segment IN... --out DIR``: cut files into utterance WAVs plus segment labels.

Per input ``STEM``: ``DIR/STEM_0001.wav``... (utterances at the file's own rate, with pre- and
post-roll), ``DIR/STEM.jsonl`` (one object per utterance: ``start``/``end`` of the detected
speech and ``audio_start``/``audio_end`` of its WAV, in seconds of the input, plus ``wav`` and
``reason``), ``DIR/STEM.rttm`` and ``DIR/STEM.txt`` (Audacity labels). The chain is the library's
own ``from_file ! vad ! hysteresis ! buffer_utterance`` run by its offline fast path
(:class:`~rxaudio.vad.offline.OfflineSegmenter`: the same windows, state machines and cuts without
an Rx hop or frame object per window; identical outputs, tested), or with ``--streaming`` through
the operators themselves. Large blocks let Silero score whole runs of windows in one call.
Several inputs run in parallel processes with ``--jobs``.

With ``--transcribe`` every utterance also goes through the ``transcribe`` element (on its own
thread, while the VAD goes on): its text, words and confidence join the utterance's JSONL
record (the text is the Audacity label too), and ``DIR/STEM.srt`` and ``DIR/STEM.vtt`` hold one
subtitle cue per utterance, written by the ``subtitles`` sink.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, RxAudioError, SourceError
from ._chain import FlagChain

if TYPE_CHECKING:
    from ..sinks import UtteranceWriter

HELP = "cut audio files into utterance WAVs with JSONL/RTTM/Audacity segment labels"

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
BLOCK_SECONDS = 16.0
# the chain, as a launch string, and which of its elements' options are flags (defaults,
# ranges and help come from the elements)
CHAIN = FlagChain(
    "vad ! hysteresis ! buffer_utterance",
    {
        "vad": ("backend", "mode", "frame_ms"),
        "hysteresis": ("threshold", "neg_threshold", "min_speech_ms", "min_silence_ms"),
        "buffer_utterance": ("pre_roll_ms", "post_roll_ms", "min_ms", "max_ms"),
    },
)
# the recogniser's options offered as flags (the backend stays the element's default here)
TRANSCRIBE = FlagChain(
    "transcribe", {"transcribe": ("lm", "dictionary", "keyphrase", "kws_threshold")}, unset=True
)
OFFLINE = {"hysteresis": {"max_gap_ms": None}, "buffer_utterance": {"max_gap_ms": None}}


def add_vad_arguments(p: argparse.ArgumentParser) -> None:
    """The VAD chain's options (shared with ``record --segment``), from the elements' own."""
    CHAIN.add_arguments(p.add_argument_group("voice activity"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio segment``."""
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="run the Rx operator chain window by window (same output as the default fast path)",
    )
    add_vad_arguments(p)
    g = p.add_argument_group("transcription")
    g.add_argument(
        "--transcribe",
        action="store_true",
        help="recognise each utterance (PocketSphinx, offline): its text into STEM.jsonl and "
        "STEM.txt, and STEM.srt / STEM.vtt subtitles",
    )
    TRANSCRIBE.add_arguments(g)


def vad_chain(args: argparse.Namespace, *, max_gap_ms: float | None) -> list[Any]:
    """``vad ! hysteresis ! buffer_utterance`` as the options say, built through the registry
    (validated at once)."""
    gap = {"max_gap_ms": max_gap_ms}
    return CHAIN.build(args, {"hysteresis": gap, "buffer_utterance": gap})


def find_inputs(inputs: list[str]) -> list[str]:
    """Files named, plus the audio files inside named folders (sorted)."""
    out: list[str] = []
    for p in inputs:
        if os.path.isdir(p):
            found = sorted(
                os.path.join(d, f)
                for d, _, fs in os.walk(p)
                for f in fs
                if f.lower().endswith(AUDIO_EXTS)
            )
            if not found:
                raise SourceError(f"{p}: folder holds no audio files ({', '.join(AUDIO_EXTS)})")
            out.extend(found)
        elif os.path.exists(p):
            out.append(p)
        else:
            from ..io.paths import missing

            raise SourceError(missing(p, "file or folder"))
    return out


def stems(paths: list[str]) -> list[str]:
    """Output stems: file names without extension, made unique with ``-2``, ``-3``..."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        s = os.path.splitext(os.path.basename(p))[0]
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}-{seen[s]}")
    return out


def utterance_writer(
    out_dir: str, stem: str, transcribe: dict[str, Any] | None = None
) -> UtteranceWriter:
    """The one utterance writer, naming files as segment does: ``STEM_0001.wav``, ``STEM.jsonl``
    (``.rttm``, ``.txt``), and ``STEM.error`` while the labels hold a failed input's part; with
    ``transcribe`` (the element's options) a :class:`TranscribingWriter`."""
    from ..sinks import UtteranceWriter

    if transcribe is not None:
        from ._transcripts import TranscribingWriter

        return TranscribingWriter(out_dir, stem, transcribe)
    return UtteranceWriter(out_dir, f"{stem}_", label_stem=stem, error_note=True)


def write_utterances(writer: UtteranceWriter) -> Callable[[Any], None]:
    """``on_next`` for the chain's output: its utterances to ``writer``, other items ignored."""
    from ..frames import Utterance

    def add(item: Any) -> None:
        if isinstance(item, Utterance):
            writer.add(item)

    return add


def segment_file(
    path: str,
    stem: str,
    out_dir: str,
    args: argparse.Namespace,
    progress: Any = None,
    *,
    streaming: bool | None = None,
) -> dict[str, Any]:
    """Segment one file; return a summary (``utterances``, ``seconds``).

    ``streaming`` (default: ``args.streaming``, else ``False``) runs the operator chain instead
    of the offline fast path; both write the same files.
    """
    from ..sources import from_file

    src = from_file(path, block_size=1)  # probe: raises SourceError for a bad file
    info = src.info
    if info.frames == 0:
        raise SourceError(f"{path}: the file holds no audio (0 samples)")
    block = max(1, int(BLOCK_SECONDS * info.sample_rate))
    src = from_file(path, block_size=block)
    opts = TRANSCRIBE.options(args)["transcribe"] if getattr(args, "transcribe", False) else None
    writer = utterance_writer(out_dir, stem, opts)
    if streaming is None:
        streaming = bool(getattr(args, "streaming", False))
    run_chain = _run_streaming if streaming else _run_offline
    failed: BaseException | None = None
    try:
        run_chain(src, info.sample_rate, info.channels, args, writer, progress)
    except BaseException as exc:
        failed = exc
        raise
    finally:  # labels for every WAV written, also when the input failed part-way
        writer.finish("error" if failed else "completed", error=failed)
    return {"path": path, "stem": stem, "utterances": len(writer.records), "seconds": info.duration}


def _run_streaming(
    src: Any,
    rate: int,
    channels: int,
    args: argparse.Namespace,
    writer: UtteranceWriter,
    progress: Any,
) -> None:
    from reactivex import operators as ops

    chain: list[Any] = []
    if progress is not None:
        chain.append(ops.do_action(lambda f: progress.update(f.duration)))
    chain.extend(vad_chain(args, max_gap_ms=None))
    errors: list[BaseException] = []
    src.pipe(*chain).subscribe(write_utterances(writer), errors.append)
    if errors:
        raise errors[0]


def _run_offline(
    src: Any,
    rate: int,
    channels: int,
    args: argparse.Namespace,
    writer: UtteranceWriter,
    progress: Any,
) -> None:
    """The chain's offline fast path: Rx only per 16 s block (the source and any conversion)."""
    from reactivex import operators as ops

    from ..core.element import wrap_error
    from ..frames import AudioFrame
    from ..pipeline.caps import Caps, conform
    from ..vad import backend_factory
    from ..vad.hysteresis import HysteresisSettings
    from ..vad.offline import OfflineSegmenter
    from ..vad.utterance import UtteranceSettings

    opts = CHAIN.options(args, OFFLINE)  # the streaming chain's options, to the letter
    model_rate, factory = backend_factory(**opts["vad"])
    seg = OfflineSegmenter(
        rate,
        factory,
        HysteresisSettings(**opts["hysteresis"]),
        UtteranceSettings(**opts["buffer_utterance"]),
    )
    errors: list[BaseException] = []

    def on_source(f: AudioFrame) -> None:
        if progress is not None:
            progress.update(f.duration)
        seg.source(f.start, f.samples)

    def on_converted(f: AudioFrame) -> None:
        if errors:
            return
        try:
            utts = seg.converted(f.start, f.samples[:, 0], f.sample_rate)
        except Exception as exc:
            errors.append(wrap_error("vad", exc, f))
            return
        for u in utts:
            writer.add(u)

    caps = Caps(sample_rate=model_rate, channels=1)
    if (model_rate is None or rate == model_rate) and channels == 1:
        chain: list[Any] = [ops.do_action(on_source)]
    else:  # the vad operator's conversion, on whole blocks
        chain = [ops.do_action(on_source), conform(caps)]
    src.pipe(*chain).subscribe(on_converted, errors.append)
    for u in seg.finish("error" if errors else "end_of_stream"):
        writer.add(u)
    if errors:
        raise errors[0]


def _job(item: tuple[str, str, str, argparse.Namespace]) -> dict[str, Any]:
    path, stem, out_dir, args = item
    return segment_file(path, stem, out_dir, args)


# what fails one input (reported, the others go on); anything else is a bug and stops the run
FILE_ERRORS = (RxAudioError, OSError)


def run(args: argparse.Namespace) -> int:
    """Segment every input; print one summary line per file."""
    from tqdm import tqdm

    from ..sources._file import probe

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
    vad_chain(args, max_gap_ms=None)  # validate options before any work
    if getattr(args, "transcribe", False):
        TRANSCRIBE.build(args)
    failures: list[str] = []

    def failed(path: str, exc: BaseException) -> None:
        msg = str(exc)
        line = msg if path in msg else f"{path}: {msg}"
        print(f"rxaudio segment: error: {' '.join(line.split())}", file=sys.stderr, flush=True)
        failures.append(path)

    paths = []
    total = 0.0
    for p in find_inputs(args.inputs):
        try:
            total += probe(p).duration
        except FILE_ERRORS as exc:
            failed(p, exc)
            continue
        paths.append(p)
    os.makedirs(args.out, exist_ok=True)
    names = stems(paths)
    bar = tqdm(
        total=total,
        unit="s",
        desc="segment",
        disable=args.no_progress,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]",
    )
    results: list[dict[str, Any]] = []
    try:
        if args.jobs == 1 or len(paths) <= 1:
            for p, s in zip(paths, names, strict=True):
                try:
                    results.append(segment_file(p, s, args.out, args, bar))
                except FILE_ERRORS as exc:
                    failed(p, exc)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("spawn")  # no fork of a process that may hold model threads
            with ProcessPoolExecutor(min(args.jobs, len(paths)), mp_context=ctx) as pool:
                futs = {
                    pool.submit(_job, (p, s, args.out, args)): p
                    for p, s in zip(paths, names, strict=True)
                }
                for fut in as_completed(futs):
                    try:
                        r = fut.result()
                    except FILE_ERRORS as exc:
                        failed(futs[fut], exc)
                        continue
                    bar.update(r["seconds"])
                    results.append(r)
    finally:
        bar.close()
    for r in sorted(results, key=lambda r: str(r["stem"])):
        print(f"{r['path']}: {r['utterances']} utterances -> {os.path.join(args.out, r['stem'])}.*")
    return 2 if failures else 0


class LiveSegmenter:
    """Segments a live stream while it is recorded (``rxaudio record --segment DIR``).

    :meth:`tap` is an operator that passes every frame on unchanged and also feeds it through
    ``vad ! hysteresis ! buffer_utterance``; each utterance is written to ``DIR/STEM_NNNN.wav``
    as soon as it is complete. When the recording ends (completion, error, Ctrl-C) the open
    utterance is flushed and the label files are written.
    """

    def __init__(self, out_dir: str, stem: str, args: argparse.Namespace) -> None:
        from reactivex.subject import Subject

        from ..frames import AudioFrame

        self.writer = utterance_writer(out_dir, stem)
        self.errors: list[Exception] = []
        self._subject: Subject[AudioFrame] = Subject()
        self._sub = self._subject.pipe(*vad_chain(args, max_gap_ms=2000)).subscribe(
            write_utterances(self.writer), self.errors.append
        )
        self._done = False
        self._lock = threading.Lock()

    def finish(self) -> int:
        """Flush the open utterance and write the label files (once); return the count.

        Called from the source's thread (completion) and from the main thread (after the
        recording): the second caller waits until the first has written the files."""
        with self._lock:
            if not self._done:
                self._done = True
                self._subject.on_completed()
                self._sub.dispose()
                self.writer.finish()
            return len(self.writer.records)

    def tap(self, source: Any) -> Any:
        """Pass frames through unchanged while segmenting them."""
        from reactivex import Observable
        from reactivex.disposable import CompositeDisposable, Disposable

        def subscribe(observer: Any, scheduler: Any = None) -> Any:
            def on_next(frame: Any) -> None:
                observer.on_next(frame)
                if not self._done:
                    self._subject.on_next(frame)

            def on_completed() -> None:
                self.finish()
                observer.on_completed()

            def on_error(exc: Exception) -> None:
                self.finish()
                observer.on_error(exc)

            d = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

            def close() -> None:
                self.finish()

            return CompositeDisposable(d, Disposable(close))

        return Observable(subscribe)
