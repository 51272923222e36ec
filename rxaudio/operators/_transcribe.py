"""transcribe: each :class:`Utterance` to a :class:`Transcript`, recognised off the stream's
thread through a bounded queue."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import numpy as np
from reactivex import abc

from ..asr import Recognizer, backend_class, prepare
from ..asr.runner import ISOLATIONS, Runner, start
from ..core.caps import Caps
from ..core.element import Element
from ..core.offload import OVERFLOW, offload_operator
from ..core.props import Choices, Range, element
from ..frames import Transcript, Utterance, Word

log = logging.getLogger("rxaudio.transcribe")


def _empty(u: Utterance, cls: type[Recognizer], status: str) -> Transcript:
    return Transcript(u.index, u.start, u.end, u.sample_rate, "", backend=cls.name, status=status)


class _Transcriber:
    """The per-subscription job: the recogniser, started at the first utterance with audio."""

    def __init__(self, cls: type[Recognizer], options: dict[str, Any], isolation: str) -> None:
        self.cls, self.options, self.isolation = cls, options, isolation
        self.runner: Runner | None = None

    def check(self, u: Utterance) -> None:
        if u.samples.size and not np.isfinite(u.samples).all():
            raise ValueError(
                f"utterance {u.index} (at {u.time:.3f} s) holds NaN or inf samples; clean the "
                "audio (np.nan_to_num) before it reaches transcribe"
            )

    def process(self, u: Utterance) -> Transcript:
        if u.samples.shape[0] == 0:
            return _empty(u, self.cls, "empty")
        if self.runner is None:
            self.runner = start(self.cls, self.options, self.isolation)
        t0 = time.perf_counter()
        r, cpu = self.runner.recognize(prepare(u.samples, u.sample_rate, self.cls.sample_rate))
        wall = time.perf_counter() - t0
        rate, a = u.sample_rate, u.audio_start
        words = tuple(
            Word(w.word, a + round(w.start * rate), a + round(w.end * rate), w.confidence)
            for w in r.words
        )
        return Transcript(
            u.index, u.start, u.end, rate, r.text, words, r.confidence, self.cls.name, wall, cpu
        )

    def skipped(self, u: Utterance, count: int) -> Transcript:
        log.warning(
            "transcribe: utterance %d skipped: the recogniser is busy (queue full); "
            "%d skipped so far",
            u.index,
            count,
        )
        return _empty(u, self.cls, "skipped")

    def close(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()  # a child process busy with an utterance is stopped, not waited for


@element(
    "transcribe",
    kind="operator",
    accepts=Caps(frame=(Utterance, object)),
    produces=Caps(frame=(Transcript, object)),
)
def transcribe(
    backend: str | type[Recognizer] = "pocketsphinx",
    *,
    lm: str | None = None,
    dictionary: str | None = None,
    keyphrase: str | None = None,
    kws_threshold: Annotated[float, Range(0.0, 1.0, lo_open=True)] = 1e-20,
    queue: Annotated[int, Range(1, 10_000)] = 4,
    overflow: Annotated[str, Choices(OVERFLOW)] = "skip",
    isolation: Annotated[str, Choices(ISOLATIONS)] = "auto",
    passthrough: bool = False,
    scheduler: abc.SchedulerBase | None = None,
) -> Element[Any, Any]:
    """Recognise the speech of every :class:`Utterance`: one :class:`Transcript` each, in order.

    Recognition runs off the stream's thread (its own thread per subscription, or
    ``scheduler``), and PocketSphinx, which keeps the GIL while it decodes, in a child process
    (``isolation``): the thread that delivers utterances only checks and enqueues them, so a
    slow recogniser never stalls capture. At most ``queue`` utterances wait or run; with
    ``overflow`` ``skip`` another one is not recognised but counted (a warning on the
    ``rxaudio.transcribe`` logger) and reported in order as a transcript with
    ``status="skipped"``; with ``wait`` the delivering thread blocks until there is room (for
    files, where nothing is lost by waiting).
    Audio is mixed to mono and resampled whole to the recogniser's rate, so the text does not
    depend on the stream's chunking. Completion and errors follow the pending transcripts.

    .. marble::
        -U0------U1--------U2-U3-U4-U5---|      U = Utterance (queue=2, a slow recogniser)
        [         transcribe(queue=2)         ]
        ------T0--------T1------T2-T3-S4-S5-|   T = Transcript, S = status "skipped"

    Parameters
    ----------
    backend
        Recogniser: ``pocketsphinx`` (US English, shipped in its wheel), an installed entry
        point of the group ``rxaudio.asr``, or a recogniser class (from Python).
    lm
        Language model file (ARPA or binary) instead of the backend's own.
    dictionary
        Pronouncing dictionary file instead of the backend's own.
    keyphrase
        Comma-separated command phrases: spot only these (keyword spotting) instead of free
        recognition.
    kws_threshold
        Keyword-spotting threshold (smaller: more detections and more false ones).
    queue
        Utterances that may wait for or be in recognition at once.
    overflow
        When the queue is full: ``skip`` the utterance (counted, reported) or ``wait`` for room.
    isolation
        Where the recogniser runs: ``process`` (a child process per subscription), ``thread``
        (the recognition thread), ``auto`` (a process for backends that hold the GIL while
        decoding, as PocketSphinx does, so they cannot stall the other threads).
    passthrough
        Also pass every input item on (before the transcripts), not only transcripts.
    scheduler
        Where recognition runs (default: a new thread per subscription; an
        ``ImmediateScheduler`` recognises inline, for tests).

    Raises
    ------
    ConfigError
        At once: an unknown backend, a model or dictionary file that does not exist, keyphrase
        words missing from the dictionary, ``lm`` with ``keyphrase``.
    StreamError
        In the stream: NaN or infinite samples (naming the utterance), a recogniser failure.
    """
    cls = backend_class(backend) if isinstance(backend, str) else backend
    options: dict[str, Any] = {
        k: v
        for k, v in (("lm", lm), ("dictionary", dictionary), ("keyphrase", keyphrase))
        if v is not None
    }
    if keyphrase is not None:
        options["kws_threshold"] = kws_threshold
    cls.check(**options)

    return offload_operator(
        "transcribe",
        lambda: _Transcriber(cls, options, isolation),
        takes=lambda item: isinstance(item, Utterance),
        queue=queue,
        overflow=overflow,
        passthrough=passthrough,
        scheduler=scheduler,
        accepts=Caps(frame=(Utterance, object)),  # other items are dropped or passed on
        produces=Caps(frame=(Transcript, object)) if passthrough else Caps(frame=Transcript),
    )
