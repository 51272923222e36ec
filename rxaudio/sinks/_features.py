"""to_features (``features``): feature rows streamed into an NPZ, CSV or Parquet file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Annotated, Any

import numpy as np
from reactivex import Observable

from ..core.caps import Caps
from ..core.props import Choices, Range, Unit, element
from ..errors import ConfigError, FormatError
from ..frames import FeatureFrame, FileReceipt
from ..io.atomic import Appended, target
from ._filesink import check_target, file_sink

FORMATS = ("npz", "csv", "parquet")
ROW_GROUP_BYTES = 8 << 20  # a Parquet row group holds about this much float64 data
_NPZ_CHUNK = 1 << 16  # rows of ``times`` computed at a time


class _Table:
    """One output file: opened at the first row (or at completion for a row-less stream),
    written under a temporary name (or in place: :func:`~rxaudio.io.atomic.target`), put in
    place by :meth:`finish`."""

    def __init__(self, path: str, empty: Callable[[], FeatureFrame] | None) -> None:
        self.path, self.empty = path, empty
        self.target = target(path)  # a symlink's target, or a device or FIFO in place
        self.tmp = self.target.tmp
        self.rows = 0
        self.first: FeatureFrame | None = None
        self.last: FeatureFrame | None = None

    def write(self, item: Any) -> None:
        if not isinstance(item, FeatureFrame):
            raise FormatError(
                f"expected a FeatureFrame, got {type(item).__name__}; put a feature operator "
                "(mfcc, spectrogram, spectral) before it"
            )
        first = self.first
        if first is None:
            self.first = first = item
            self.open(item)
        elif item.columns != first.columns or item.values.shape[1] != first.values.shape[1]:
            raise FormatError(
                f"columns changed mid-stream from {first.values.shape[1]} ({_names(first)}) to "
                f"{item.values.shape[1]} ({_names(item)}) at row {item.row}; the file keeps the "
                f"{self.rows} rows before it"
            )
        elif (item.sample_rate, item.hop) != (first.sample_rate, first.hop):
            raise FormatError(
                f"format changed mid-stream from {first.sample_rate} Hz, hop {first.hop} to "
                f"{item.sample_rate} Hz, hop {item.hop} at row {item.row}; the file keeps the "
                f"{self.rows} rows before it"
            )
        self.rows_of(item)
        self.rows += item.n_rows
        self.last = item

    def finish(self, reason: str) -> FileReceipt | None:
        if self.first is None:
            # no rows: with ``empty`` (and a stream that completed) a readable table that
            # carries the columns all the same; otherwise no file, as to_wav
            if reason != "completed" or self.empty is None:
                return FileReceipt(self.path, 0, 0, reason="empty")
            self.last = self.empty()
            self.open(self.last)
        try:
            self.close()
        except BaseException:
            self.discard()
            raise
        self.target.commit()
        return FileReceipt(self.path, self.rows, 0, reason=reason)

    def open(self, f: FeatureFrame) -> None:
        """Create the temporary file(s); ``f`` is the first frame (or the row-less template)."""

    def rows_of(self, f: FeatureFrame) -> None:
        """Append one frame's rows."""

    def close(self) -> None:
        """Complete the temporary file."""

    def discard(self) -> None:
        """Remove what :meth:`close` could not complete."""
        self.target.discard()


def _names(f: FeatureFrame) -> str:
    cols = list(f.columns)
    if not cols:
        return "unnamed"
    return ", ".join(cols) if len(cols) <= 4 else f"{cols[0]}, ..., {cols[-1]}"


class _Csv(_Table):
    def __init__(self, path: str, empty: Callable[[], FeatureFrame] | None, decimals: int) -> None:
        super().__init__(path, empty)
        self.fmt = f"%.{decimals}f"
        self.fh: IO[str] | None = None

    def open(self, f: FeatureFrame) -> None:
        self.fh = open(self.tmp, "w", encoding="utf-8", newline="")
        self.fh.write(",".join(["row", "start", "time", *f.columns]) + "\n")

    def rows_of(self, f: FeatureFrame) -> None:
        assert self.fh is not None
        idx = np.arange(f.row, f.row + f.n_rows)
        lead = np.stack([idx, f.starts, f.times], axis=1)
        np.savetxt(
            self.fh,
            np.hstack([lead, f.values]),
            delimiter=",",
            fmt=["%d", "%d", "%.6f"] + [self.fmt] * f.values.shape[1],
        )

    def close(self) -> None:
        assert self.fh is not None
        self.fh.close()


class _Npz(_Table):
    """Rows go to a raw float32 side file as they come (constant memory); :meth:`close` copies
    it into the archive's ``values.npy`` and adds ``times``, ``columns`` and ``meta``."""

    def __init__(self, path: str, empty: Callable[[], FeatureFrame] | None) -> None:
        super().__init__(path, empty)
        self.raw_path = "" if self.target.direct else self.tmp + ".raw"
        self.raw: IO[bytes] | None = None

    def open(self, f: FeatureFrame) -> None:
        if self.target.direct:  # the side file never goes beside a device or FIFO
            fd, self.raw_path = tempfile.mkstemp(prefix=".rxaudio-", suffix=".raw")
            self.raw = os.fdopen(fd, "wb")
        else:
            self.raw = open(self.raw_path, "wb")

    def rows_of(self, f: FeatureFrame) -> None:
        assert self.raw is not None
        self.raw.write(np.ascontiguousarray(f.values, dtype="<f4").tobytes())

    def close(self) -> None:
        assert self.raw is not None and self.last is not None
        self.raw.close()
        last, rows = self.last, self.rows
        hop, rate = last.hop, last.sample_rate
        start = last.start - last.row * last.hop
        with self._archive() as z:
            with z.open("values.npy", "w", force_zip64=True) as fp:
                header = {
                    "descr": "<f4",
                    "fortran_order": False,
                    "shape": (rows, len(last.columns) or last.values.shape[1]),
                }
                np.lib.format.write_array_header_1_0(fp, header)
                with open(self.raw_path, "rb") as raw:
                    shutil.copyfileobj(raw, fp, 1 << 20)
            with z.open("times.npy", "w", force_zip64=True) as fp:
                header = {"descr": "<f8", "fortran_order": False, "shape": (rows,)}
                np.lib.format.write_array_header_1_0(fp, header)
                for a in range(0, rows, _NPZ_CHUNK):
                    n = np.arange(a, min(rows, a + _NPZ_CHUNK), dtype=np.float64)
                    fp.write(((start + n * hop) / rate).astype("<f8").tobytes())
            meta: dict[str, Any] = {
                "kind": last.kind,
                "sample_rate": rate,
                "hop": hop,
                "n_fft": last.n_fft,
                "columns": list(last.columns),
                "params": last.params,
                "latency": last.latency,
            }
            for name, value in (
                ("columns", np.array(meta["columns"], dtype=str)),
                ("meta", np.array(json.dumps(meta))),
            ):
                with z.open(f"{name}.npy", "w") as fp:
                    np.lib.format.write_array(fp, value, allow_pickle=False)
        os.remove(self.raw_path)

    @contextlib.contextmanager
    def _archive(self) -> Iterator[zipfile.ZipFile]:
        if not self.target.direct:
            with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
                yield z
            return
        # a device or FIFO: a streamed archive (data descriptors, no seeking back)
        with (
            contextlib.closing(Appended(self.tmp)) as out,
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as z,
        ):
            yield z

    def discard(self) -> None:
        if self.raw is not None:
            self.raw.close()
        if self.raw_path and os.path.exists(self.raw_path):
            os.remove(self.raw_path)
        super().discard()


class _Parquet(_Table):
    """Rows gathered into row groups of about ``row_group_bytes``: the writer keeps about 1 KB
    of footer per row group and column until it closes, so one group per frame would grow by
    hundreds of MB over an hour of 257-bin spectra."""

    def __init__(
        self, path: str, empty: Callable[[], FeatureFrame] | None, row_group_bytes: int
    ) -> None:
        super().__init__(path, empty)
        self.row_group_bytes = row_group_bytes
        self.pw: Any = None
        self.out: Appended | None = None  # a device or FIFO: opened here, closed after pw
        self.pending: list[FeatureFrame] = []
        self.pending_rows = 0

    def rows_of(self, f: FeatureFrame) -> None:
        self.pending.append(f)
        self.pending_rows += f.n_rows
        if self.pending_rows * 8 * (f.values.shape[1] + 3) >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self._write_table(self.pending)
        self.pending, self.pending_rows = [], 0

    def _write_table(self, fs: list[FeatureFrame], empty: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # ``empty``: no rows, but the schema (and so the column names) all the same
        take = slice(0, 0) if empty else slice(None)
        rows = np.concatenate([np.arange(f.row, f.row + f.n_rows, dtype=np.int64) for f in fs])
        cols = {
            "row": pa.array(rows[take]),
            "start": pa.array(np.concatenate([f.starts for f in fs])[take]),
            "time": pa.array(np.concatenate([f.times for f in fs])[take]),
        }
        values = np.concatenate([f.values for f in fs])[take]
        for i, name in enumerate(fs[0].columns):
            cols[name] = pa.array(values[:, i])
        table = pa.table(cols)
        if self.pw is None:
            if self.target.direct:  # a device or FIFO, streamed: pyarrow would seek it
                self.out = Appended(self.tmp)
            where: Any = self.out if self.out is not None else self.tmp
            self.pw = pq.ParquetWriter(where, table.schema)
        self.pw.write_table(table)

    def close(self) -> None:
        self._flush()
        if self.pw is None and self.last is not None:
            self._write_table([self.last], empty=True)
        if self.pw is not None:
            self.pw.close()
        if self.out is not None:
            self.out.close()

    def discard(self) -> None:
        self.pending = []
        if self.pw is not None:
            self.pw.close()
        if self.out is not None:
            self.out.close()
        super().discard()


@element(
    "features",
    kind="sink",
    accepts=Caps(frame=FeatureFrame),
    produces=Caps(frame=FileReceipt),
    aliases={"location": "path"},
    writes=("path",),
)
def to_features(
    path: str | os.PathLike[str],
    *,
    fmt: Annotated[str | None, Choices(FORMATS)] = None,
    decimals: Annotated[int, Range(0, 16)] = 6,
    row_group_bytes: Annotated[int, Range(1, None), Unit("bytes")] = ROW_GROUP_BYTES,
    empty: Callable[[], FeatureFrame] | None = None,
) -> Callable[[Observable[FeatureFrame]], Observable[FileReceipt]]:
    """Write :class:`FeatureFrame` rows to an NPZ, CSV or Parquet file; emit a receipt when final.

    Rows are written as they come, so memory stays constant whatever the stream's length: CSV
    and Parquet (row groups, needs pyarrow) append to the file; NPZ rows go to a raw side file
    that is copied into the archive (``values``, ``times``, ``columns``, ``meta``) at the end.
    The file is written under a temporary name (``.NAME.partial`` beside it) and renamed on
    completion, on an upstream error (before the error is forwarded), on dispose and at
    interpreter exit, so it holds every row received and is always a valid table. An item that
    is no FeatureFrame, or a frame whose columns, rate or hop differ from the first, ends the
    stream with an error; the rows before it stay. A stream without rows writes no file
    (receipt ``reason="empty"``) unless ``empty`` supplies the columns. The receipt's
    ``frames`` counts the rows written.

    .. marble::
        -a--b--c--|
        [ to_features("f.csv") ]
        ----------(R|)        R = FileReceipt(path, frames=rows of a, b, c)

    Parameters
    ----------
    path
        Output file; its directory must exist.
    fmt
        ``npz``, ``csv`` or ``parquet``; none: from the extension of ``path``.
    decimals
        Decimals of the feature values in CSV output (``row``/``start`` are integers, ``time``
        has six decimals).
    row_group_bytes
        Parquet: rows are gathered into row groups of about this much float64 data.
    empty
        Called when the stream completes without a row: a frame whose columns and metadata
        the file carries all the same (set from Python; none: no file).

    Raises
    ------
    ConfigError
        Unknown format, directory missing or not writable, path is a directory, Parquet
        without pyarrow.
    """
    p = check_target("to_features", path)
    ext = os.path.splitext(p)[1].lower()
    kind = fmt if fmt is not None else ext[1:]
    if kind not in FORMATS:
        raise ConfigError(
            f"to_features: {p}: unknown format {ext or '(none)'}; use "
            f"{', '.join('.' + f for f in FORMATS)}"
        )
    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401 - only checking that it is there
        except ImportError as exc:
            raise ConfigError(
                "to_features: Parquet output needs pyarrow: pip install 'rxaudio[features]' "
                "(or pyarrow), or write .npz/.csv"
            ) from exc

    def make() -> _Table:
        if kind == "csv":
            return _Csv(p, empty, decimals)
        if kind == "npz":
            return _Npz(p, empty)
        return _Parquet(p, empty, row_group_bytes)

    return file_sink("to_features", make)
