"""A streaming WAV writer whose header is valid after every write.

After each block the RIFF and data sizes are patched, so a reader sees a complete, valid file at
any moment (a crash loses at most the block being written). Written under a temporary name and
renamed by :meth:`WavWriter.close`, so the final name only ever holds a finished file. A write
cut short (``KeyboardInterrupt`` on the writing thread) is dropped at close: the final file holds
the whole blocks written before it, with a header that matches.

Where the bytes go follows :func:`~rxaudio.io.atomic.target`: a symlink's target is replaced,
a device or FIFO is written in place, front to back: its header's RIFF and data sizes are
``0xFFFFFFFF`` ("unknown length, read to the end"), as ffmpeg and sox write to a pipe, and are
never patched; libsndfile, Python's ``wave`` and ffmpeg read such a stream to its end.
"""

from __future__ import annotations

import contextlib
import os
import struct
from typing import BinaryIO, cast

import numpy as np
from numpy.typing import NDArray

from .atomic import Appended, target
from .atomic import partial_name as partial_name  # re-exported: the sinks name it from here

SUBTYPES = ("PCM_16", "FLOAT")


_HEADER_BYTES = 44
UNKNOWN_SIZE = 0xFFFFFFFF
"""The RIFF and data sizes of a WAV streamed to a target that cannot seek back to patch them."""


def _header(sample_rate: int, channels: int, subtype: str, data_bytes: int) -> bytes:
    if subtype == "PCM_16":
        fmt_tag, bits = 1, 16
    else:
        fmt_tag, bits = 3, 32
    block_align = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            fmt_tag,
            channels,
            sample_rate,
            sample_rate * block_align,
            block_align,
            bits,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _encode(block: NDArray[np.float32], subtype: str) -> bytes:
    """A block's WAV data bytes (``subtype`` of :data:`SUBTYPES`)."""
    if subtype == "PCM_16":
        pcm: NDArray[np.int16] = np.rint(np.clip(block * 32768.0, -32768, 32767)).astype("<i2")
        return pcm.tobytes()
    return np.ascontiguousarray(block, dtype="<f4").tobytes()


class WavWriter:
    """Write float32 ``(n, channels)`` blocks to a WAV file, header always valid."""

    def __init__(self, path: str, sample_rate: int, channels: int, subtype: str = "PCM_16") -> None:
        if subtype not in SUBTYPES:
            raise ValueError(f"WavWriter: subtype must be one of {SUBTYPES}, got {subtype!r}")
        self.path = path
        self.target = target(path)
        self.tmp = self.target.tmp
        self.sample_rate = sample_rate
        self.channels = channels
        self.subtype = subtype
        self._frame_bytes = channels * (2 if subtype == "PCM_16" else 4)
        self._data_bytes = 0
        self._seekable = not self.target.direct
        if self.target.direct:  # a device or FIFO: in place, streamed (a FIFO waits for a reader)
            # sizes that cannot be patched later: "read to the end"
            header = _header(sample_rate, channels, subtype, 0)[:40]
            header = header[:4] + struct.pack("<I", UNKNOWN_SIZE) + header[8:]
            # cast: a RawIOBase is a binary file in all this writer uses (write, flush, close)
            self._f: BinaryIO | None = cast(BinaryIO, Appended(self.tmp))
            self._f.write(header + struct.pack("<I", UNKNOWN_SIZE))
            self._f.flush()
            return
        # the header is written before the file takes the partial name, so a reader never sees
        # the partial empty
        fresh = f"{self.tmp}.{os.getpid()}-{id(self):x}.new"  # private to this writer
        try:
            with open(fresh, "wb") as g:
                g.write(_header(sample_rate, channels, subtype, 0))
            os.replace(fresh, self.tmp)
            self._f = open(self.tmp, "r+b")
        except BaseException:  # cleaned up, then raised again (KeyboardInterrupt too)
            for leftover in (fresh, self.tmp):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
            raise

    @property
    def samples(self) -> int:
        """Samples (per channel) written so far."""
        return self._data_bytes // self._frame_bytes

    def write(self, block: NDArray[np.float32]) -> None:
        """Append a block; the header is patched so the file stays valid."""
        f = self._f
        if f is None:
            raise ValueError(f"WavWriter: {self.path} is already closed")
        data = _encode(block, self.subtype)
        if not self._seekable:  # a device or FIFO: appended, the header says "to the end"
            f.write(data)
            f.flush()
            self._data_bytes += len(data)
            return
        # at the end of the data counted so far, whatever an interrupted write left behind
        f.seek(_HEADER_BYTES + self._data_bytes)
        f.write(data)
        self._data_bytes += len(data)
        self._patch_sizes(f)

    def _patch_sizes(self, f: BinaryIO) -> None:
        if not self._seekable:
            f.flush()
            return
        f.seek(4)
        f.write(struct.pack("<I", 36 + self._data_bytes))
        f.seek(40)
        f.write(struct.pack("<I", self._data_bytes))
        f.flush()

    def close(self) -> str:
        """Close and rename to the final path; return it. Safe to call twice.

        The file is cut to the header and the blocks counted as written, and the header patched
        to match, so a block whose write was interrupted part-way is not in the final file. A
        device or FIFO is closed in place (nothing to cut or rename).
        """
        f = self._f
        if f is not None:
            self._patch_sizes(f)
            if not self.target.direct:  # a device cannot be cut (and /dev/null holds nothing)
                f.truncate(_HEADER_BYTES + self._data_bytes)
            f.close()
            self._f = None
            self.target.commit()
        return self.path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._f is None


def write_wav(
    path: str, samples: NDArray[np.float32], sample_rate: int, subtype: str = "PCM_16"
) -> str:
    """Write a whole ``(n, channels)`` signal (temporary name, then rename).

    The bytes :class:`WavWriter` gives the signal as one block, written at once: the header
    already holds the sizes, and the file is written under a name private to this call and
    renamed into place. (The streaming writer's temporary name, reopening and header patches
    are a dozen more system calls; a loaded server writes many utterances a second.) A device
    or FIFO is written by :class:`WavWriter`, streamed in place.
    """
    if subtype not in SUBTYPES:
        raise ValueError(f"write_wav: subtype must be one of {SUBTYPES}, got {subtype!r}")
    t = target(path)
    if not t.direct:
        data = _encode(samples, subtype)
        fresh = f"{t.tmp}.{os.getpid()}-{id(data):x}.new"  # private to this call
        try:
            with open(fresh, "wb") as g:
                g.write(_header(sample_rate, samples.shape[1], subtype, len(data)))
                g.write(data)
            os.replace(fresh, t.final)
        except BaseException:  # cleaned up, then raised again (KeyboardInterrupt too)
            with contextlib.suppress(OSError):
                os.unlink(fresh)
            raise
        return path
    w = WavWriter(path, sample_rate, samples.shape[1], subtype)
    try:
        w.write(samples)
    finally:
        w.close()
    return path
