"""``segment --transcribe``: the utterance writer that also transcribes what it writes."""

from __future__ import annotations

import os
import threading
from typing import Any

from reactivex import from_iterable
from reactivex.subject import Subject

from ..frames import FileReceipt, Transcript, Utterance
from ..pipeline import registry
from ..sinks import UtteranceWriter, to_subtitles


class TranscribingWriter(UtteranceWriter):
    """An utterance writer that also transcribes each utterance as it is written.

    Utterances go to the ``transcribe`` element (``overflow="wait"``: a file loses nothing) on
    its own thread while the segmentation goes on. :meth:`finish` waits for the last
    transcripts, adds ``text``, ``words`` and ``confidence`` (their dict form) to the label
    records, writes ``STEM.srt`` and ``STEM.vtt`` through the ``subtitles`` sink, then the
    labels; a recogniser failure is raised from :meth:`finish` after the files are written.
    """

    def __init__(self, out_dir: str, stem: str, options: dict[str, Any]) -> None:
        super().__init__(out_dir, f"{stem}_", label_stem=stem, error_note=True)
        self.transcripts: list[Transcript] = []
        self.failure: Exception | None = None
        self._positions: list[int | None] = []  # label record of each utterance sent
        self._done = threading.Event()
        self._input: Subject[Utterance] = Subject()
        op = registry.make("transcribe", **{**options, "overflow": "wait"})

        def failed(exc: Exception) -> None:
            self.failure = exc
            self._done.set()

        self._input.pipe(op).subscribe(self.transcripts.append, failed, self._done.set)

    def add(self, utt: Utterance) -> str | None:
        """Write the utterance's WAV and send it to the recogniser."""
        name = super().add(utt)
        self._positions.append(len(self.records) - 1 if name is not None else None)
        self._input.on_next(utt)
        return name

    def finish(
        self, reason: str = "completed", *, error: BaseException | None = None
    ) -> FileReceipt:
        """Wait for the transcripts, write the subtitles and the labels (with the text)."""
        self._input.on_completed()
        self._done.wait()
        for pos, t in zip(self._positions, self.transcripts, strict=False):
            if pos is not None:
                d = t.to_dict()
                self.records[pos].update(text=d["text"], words=d["words"])
                self.records[pos]["confidence"] = d["confidence"]
        base = os.path.join(self.out_dir, self.label_stem)
        for ext in (".srt", ".vtt"):
            from_iterable(self.transcripts).pipe(to_subtitles(base + ext)).run()
        receipt = super().finish(reason, error=error or self.failure)
        if self.failure is not None and error is None:
            raise self.failure
        return receipt
