"""to_utterances (``wavdir``): every utterance as its own WAV, plus label files, in one folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from reactivex import Observable

from ..core.caps import Caps
from ..core.props import element
from ..errors import ConfigError
from ..frames import FileReceipt, Utterance
from ..io.atomic import atomic_path
from ..io.labels import write_labels
from ..io.wav import write_wav
from ._filesink import file_sink

LABEL_FORMATS = ("jsonl", "rttm", "txt")


def wav_bytes(utt: Utterance) -> int:
    """Bytes of the 16-bit WAV file :class:`UtteranceWriter` writes for ``utt``."""
    return 44 + int(utt.samples.size) * 2


class UtteranceWriter:
    """Writes each utterance's WAV (temporary name, then rename) and keeps its label record.

    The one way utterance files are written: the ``wavdir`` sink, ``rxaudio segment`` and the
    live server all use it. Files are ``DIR/{stem}{n:04d}.wav`` (``n`` from 1); label files
    ``DIR/{label_stem}.{jsonl,rttm,txt}`` are written by :meth:`finish` for every WAV written
    (each atomically), so they always describe exactly the files on disk.

    Parameters
    ----------
    out_dir
        The folder (created if missing).
    stem
        File name prefix of the WAVs, e.g. ``"talk_"`` or ``"utt-"``.
    labels
        Label formats written at :meth:`finish` (``jsonl``, ``rttm``, ``txt``); empty: none.
    label_stem
        Base name of the label files (default ``stem`` without a trailing ``_``/``-``).
    charge
        Called with a WAV's size before it is written; returning ``False`` skips the file (a
        storage limit), and :meth:`add` returns ``None``.
    error_note
        Keep ``DIR/{label_stem}.error`` in step with the labels: :meth:`finish` with an
        ``error`` writes it (what failed, and how many utterances the labels hold), a
        :meth:`finish` without one removes a stale note from an earlier run.
    """

    def __init__(
        self,
        out_dir: str,
        stem: str = "utt-",
        *,
        labels: tuple[str, ...] = LABEL_FORMATS,
        label_stem: str | None = None,
        charge: Callable[[int], bool] | None = None,
        error_note: bool = False,
    ) -> None:
        bad = [f for f in labels if f not in LABEL_FORMATS]
        if bad:
            raise ConfigError(
                f"wavdir: unknown label format(s) {', '.join(bad)}; use {', '.join(LABEL_FORMATS)}"
            )
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir, self.stem, self.labels = out_dir, stem, labels
        self.label_stem = label_stem if label_stem is not None else stem.rstrip("_-") or "utt"
        self.charge, self.error_note = charge, error_note
        self.records: list[dict[str, Any]] = []
        self.count = 0  # utterances seen (numbering), written or not
        self.samples = 0
        self.rate: int | None = None

    def add(self, utt: Utterance) -> str | None:
        """Write one utterance's WAV; return its file name (``None`` when refused)."""
        name = self.reserve(utt)
        if name is not None:
            self.write_file(name, utt)
            self.record(name, utt)
        return name

    def reserve(self, utt: Utterance) -> str | None:
        """Number ``utt`` and charge its bytes: its file name, ``None`` when refused. Writing
        it (:meth:`write_file`, anywhere, e.g. on a writer thread) and :meth:`record` are then
        the caller's; :meth:`add` does all three."""
        self.count += 1
        name = f"{self.stem}{self.count:04d}.wav"
        if self.charge is not None and not self.charge(wav_bytes(utt)):
            return None
        return name

    def write_file(self, name: str, utt: Utterance) -> None:
        """Write ``utt``'s WAV as ``name`` (reads only the arguments: safe on another thread)."""
        write_wav(os.path.join(self.out_dir, name), utt.samples, utt.sample_rate)

    def record(self, name: str, utt: Utterance) -> None:
        """Note ``utt``, written as ``name``, for the label files of :meth:`finish`."""
        rec = utt.to_dict()  # the one dict form, plus where its file is
        rec["index"] = len(self.records)
        rec["wav"] = name
        self.records.append(rec)
        self.samples += utt.samples.shape[0]
        self.rate = utt.sample_rate

    def finish(
        self, reason: str = "completed", *, error: BaseException | None = None
    ) -> FileReceipt:
        """Write the label files for the WAVs written; return a receipt for the folder.

        ``error`` (the input failed part-way) is noted in ``{label_stem}.error`` when the
        writer keeps an ``error_note``."""
        base = os.path.join(self.out_dir, self.label_stem)
        for fmt in self.labels:
            write_labels(f"{base}.{fmt}", self.records, uri=self.label_stem)
        if self.error_note:
            note = base + ".error"
            if error is not None:
                with atomic_path(note) as tmp, open(tmp, "w", encoding="utf-8") as f:
                    f.write(
                        f"{error}\nthe labels hold the {len(self.records)} utterance(s) cut "
                        "before the error\n"
                    )
            elif os.path.exists(note):
                os.remove(note)
        return FileReceipt(self.out_dir, len(self.records), self.samples, self.rate, None, reason)


class _Writer:
    def __init__(self, w: UtteranceWriter) -> None:
        self.w = w

    def write(self, item: Any) -> None:
        if isinstance(item, Utterance):
            self.w.add(item)

    def finish(self, reason: str) -> FileReceipt | None:
        return self.w.finish(reason)


@element(
    "wavdir",
    kind="sink",
    accepts=Caps(frame=(Utterance, object)),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path", "stem"),
)
def to_utterances(
    path: str | os.PathLike[str],
    *,
    stem: str = "utt-",
    labels: str = "jsonl,rttm,txt",
) -> Callable[[Observable[Any]], Observable[FileReceipt]]:
    """Write every :class:`Utterance` as its own WAV in a folder, with label files at the end.

    Each WAV (``PATH/{stem}0001.wav``, ...) is written under a temporary name and renamed, so a
    file with its final name is complete; the label files (``PATH/utt.jsonl``, ``.rttm``,
    ``.txt``) are written when the stream ends, errs or is disposed, for every WAV written.
    Other items pass by unwritten. Emits one :class:`FileReceipt` for the folder (``frames``:
    utterances written, ``samples``: their total length).

    .. marble::
        -a-U-b-V-|
        [ wavdir ]
        ---------(R|)      U, V = Utterance; R = FileReceipt(PATH, frames=2)

    Parameters
    ----------
    path
        The folder (created if missing).
    stem
        File name prefix of the WAVs.
    labels
        Comma-separated label formats written at the end: ``jsonl``, ``rttm``, ``txt``; empty
        for none.

    Raises
    ------
    ConfigError
        An unknown label format, or a path that cannot be a folder.
    """
    out = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"wavdir: {out} exists and is not a folder; give a folder path")
    if not os.path.isdir(parent):
        raise ConfigError(f"wavdir: directory {parent} does not exist; create it first")
    if not os.access(out if os.path.isdir(out) else parent, os.W_OK):
        raise ConfigError(f"wavdir: {out if os.path.isdir(out) else parent} is not writable")
    formats = tuple(f.strip() for f in labels.split(",") if f.strip())
    bad = [f for f in formats if f not in LABEL_FORMATS]
    if bad:
        raise ConfigError(
            f"wavdir: labels must be drawn from {', '.join(LABEL_FORMATS)}, got {labels!r}"
        )
    if "/" in stem or os.sep in stem:
        raise ConfigError(f"wavdir: stem must be a file name prefix, got {stem!r}")
    return file_sink("wavdir", lambda: _Writer(UtteranceWriter(out, stem, labels=formats)))
