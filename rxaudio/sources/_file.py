"""from_file: stream any soundfile-readable file in blocks, optionally paced in real time."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from reactivex import Observable, abc

from ..core.caps import Caps
from ..core.props import Range, Unit, element
from ..errors import FormatError, SourceError
from ..frames import AudioFrame
from ..io.paths import missing
from ._emit import emit_blocks

# libsndfile's header dump says e.g. "data : 32000 (should be 15978)" for a cut-off file
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What the file's header says."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    truncated: str | None = None
    """When the header announces more audio than the file holds: libsndfile's note on it."""

    @property
    def duration(self) -> float:
        """Length in seconds according to the header."""
        return self.frames / self.sample_rate


def probe(path: str | os.PathLike[str]) -> FileInfo:
    """Read a file's header, or raise :class:`SourceError` naming the problem."""
    import soundfile as sf

    p = os.fspath(path)
    if not os.path.exists(p):
        raise SourceError(missing(p, fix="; check the path"))
    if os.path.isdir(p):
        raise SourceError(f"{p}: is a directory, not an audio file")
    try:
        info = sf.info(p)
    except Exception as exc:
        raise SourceError(
            f"{p}: not an audio file that libsndfile can read ({exc}); "
            "use WAV, FLAC, OGG/Vorbis, Opus or MP3"
        ) from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise SourceError(f"{p}: header has {info.samplerate} Hz, {info.channels} channels")
    m = _TRUNCATED.search(getattr(info, "extra_info", "") or "")
    note = f"data chunk of {m.group(1)} bytes announced, {m.group(2)} present" if m else None
    return FileInfo(p, info.samplerate, info.channels, info.frames, info.format, info.subtype, note)


class FileSource(Observable[AudioFrame]):
    """An Observable over a file's blocks; ``info`` holds its header.

    Build it with :func:`from_file`, which checks the options.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        block_size: int,
        realtime: bool,
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self.info = probe(path)
        self.block_size = block_size
        self.realtime = realtime
        self._scheduler = scheduler
        super().__init__(self._subscribe_file)

    def _open(self) -> tuple[Iterator[AudioFrame], Callable[[], None]]:
        import soundfile as sf

        info = self.info
        try:
            f: Any = sf.SoundFile(info.path)
        except Exception as exc:
            raise SourceError(f"{info.path}: cannot open ({exc})") from exc

        def gen() -> Iterator[AudioFrame]:
            pos = 0
            while True:
                try:
                    block = f.read(self.block_size, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise SourceError(
                        f"{info.path}: read failed at sample {pos} ({exc}); the file is "
                        "truncated or corrupt"
                    ) from exc
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block).all():
                    # the first bad sample itself, not the block it came in
                    bad = pos + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                    raise FormatError(
                        f"{info.path}: NaN or inf samples at sample {bad} "
                        f"({bad / info.sample_rate:.3f} s); the file is corrupt"
                    )
                yield AudioFrame(np.ascontiguousarray(block), info.sample_rate, pos)
                pos += block.shape[0]
            if info.frames > 0 and pos == 0:
                raise SourceError(f"{info.path}: header announces audio but none could be read")
            if info.truncated:
                raise SourceError(
                    f"{info.path}: the file is truncated ({info.truncated}); the {pos} samples "
                    "that were there have been streamed. Re-copy or re-export the file"
                )

        return gen(), f.close

    def _subscribe_file(
        self, observer: abc.ObserverBase[AudioFrame], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return emit_blocks(
            observer, self._scheduler or scheduler, self._open, realtime=self.realtime
        )


@element("file", kind="source", produces=Caps(), aliases={"location": "path"})
def from_file(
    path: str | os.PathLike[str],
    *,
    block_size: Annotated[int, Range(1), Unit("samples")] = 1024,
    realtime: bool = False,
    scheduler: abc.SchedulerBase | None = None,
) -> FileSource:
    """Stream an audio file (any format soundfile reads) as frames of ``block_size`` samples.

    The file is opened on subscribe and closed on completion, error or dispose; memory is one
    block, whatever the file's length. With ``realtime=True`` frames are paced at the audio's
    own rate on the scheduler (default: a new thread), so a file can stand in for a microphone.

    .. marble::
        from_file("a.wav", block_size=1024)
        (ABC...|)   samples as float32 (n, channels), start = sample index

    Parameters
    ----------
    path
        The audio file.
    block_size
        Samples per emitted frame (the last may be shorter).
    realtime
        Pace the frames at the audio's own rate, as a microphone would deliver them.
    scheduler
        Scheduler to emit on (default: current thread, or a new thread when ``realtime``).

    Raises
    ------
    SourceError
        Missing file, a directory, not audio (at construction); a truncated file or unreadable
        data (as ``on_error``, after the frames that could be read, so a sink downstream keeps
        them).
    FormatError
        NaN/inf samples in a float file (as ``on_error``).
    """
    return FileSource(path, block_size=block_size, realtime=realtime, scheduler=scheduler)
