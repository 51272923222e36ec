"""to_wav: stream audio frames into a WAV file."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated

import numpy as np
from reactivex import Observable

from ..core.caps import Caps
from ..core.check import audio, gap_samples
from ..core.props import Choices, element
from ..errors import FormatError
from ..frames import AudioFrame, FileReceipt
from ..io.wav import SUBTYPES, WavWriter
from ._filesink import check_target, file_sink


class _WavFile:
    def __init__(self, path: str, subtype: str) -> None:
        self.path, self.subtype = path, subtype
        self.w: WavWriter | None = None
        self.frames = 0
        self.first = 0
        self.gap_samples = 0

    def write(self, item: AudioFrame) -> None:
        frame = audio("to_wav", item)
        if not np.isfinite(frame.samples).all():
            bad = frame.start + int(np.flatnonzero(~np.isfinite(frame.samples).all(axis=1))[0])
            raise FormatError(
                f"NaN or inf samples at sample {bad} (in the frame from {frame.start}); the "
                f"file keeps the {self.w.samples if self.w else 0} samples before that frame"
            )
        if self.w is None:
            self.w = WavWriter(self.path, frame.sample_rate, frame.channels, self.subtype)
            self.first = frame.start
        elif frame.sample_rate != self.w.sample_rate or frame.channels != self.w.channels:
            raise FormatError(
                f"format changed mid-stream from {self.w.sample_rate} Hz/{self.w.channels} ch "
                f"to {frame.sample_rate} Hz/{frame.channels} ch; resample or remix before to_wav"
            )
        # keep the stream's timeline: audio lost upstream (dropped capture blocks) becomes
        # silence, so every later sample sits at its true time in the file
        gap = gap_samples("to_wav", self.first + self.w.samples, frame)
        if gap:
            self.w.write(np.zeros((gap, frame.channels), dtype=np.float32))
            self.gap_samples += gap
        self.w.write(frame.samples)
        self.frames += 1

    def finish(self, reason: str) -> FileReceipt | None:
        w = self.w
        if w is None:
            return FileReceipt(self.path, 0, 0, None, None, reason="empty")
        w.close()
        return FileReceipt(w.path, self.frames, w.samples, w.sample_rate, w.channels, reason)


@element(
    "wav",
    kind="sink",
    accepts=Caps(),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path",),
)
def to_wav(
    path: str | os.PathLike[str], *, subtype: Annotated[str, Choices(SUBTYPES)] = "PCM_16"
) -> Callable[[Observable[AudioFrame]], Observable[FileReceipt]]:
    """Write the audio stream to a WAV file; emit a :class:`FileReceipt` when it is final.

    The file is written under a temporary name (``.NAME.partial`` beside it) with a header that
    is valid after every block, and renamed to ``path`` on completion, on an upstream error
    (before the error is forwarded), on dispose, and at interpreter exit (Ctrl-C in a script
    that never disposes). ``.run()`` on the returned Observable sees Ctrl-C at once and disposes
    the chain, so the file is final before ``KeyboardInterrupt`` leaves it. A bad frame (NaN,
    rate or channel change, overlapping frames) ends the stream with an error; the file keeps
    every sample before it. A gap between frames (blocks dropped at capture) is written as
    silence, so the file keeps the stream's timeline. An empty stream writes no file (receipt
    ``reason="empty"``). A symlink's target is replaced (the link stays); a device or FIFO is
    written in place, never renamed over, as a streamed WAV whose sizes read "to the end".

    .. marble::
        -a--b--c--|
        [ to_wav("x.wav") ]
        ----------(R|)        R = FileReceipt(path, frames=3, samples, ...)

    Parameters
    ----------
    path
        Output file; its directory must exist.
    subtype
        Sample format: 16-bit PCM, or ``FLOAT`` (32-bit float, lossless for float frames).

    Raises
    ------
    ConfigError
        Directory missing or not writable, path is a directory, a socket or a symlink loop,
        unknown subtype.
    """
    p = check_target("to_wav", path)
    return file_sink("to_wav", lambda: _WavFile(p, subtype))
