"""``rxaudio features IN --out OUT.(npz|csv|parquet)``: stream a file through a feature operator.

Rows are written as they come, so memory stays constant whatever the file's length: CSV and
Parquet (row groups, needs pyarrow) append directly; NPZ rows go to a temporary raw file that is
copied into the archive at the end. The output appears under its final name only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from typing import IO, Any

import numpy as np

from ..errors import ConfigError, SinkError
from ..frames import FeatureFrame

HELP = "compute MFCC, (log-)mel, spectrogram or spectral features of a file, with a progress bar"

KINDS = ("mfcc", "log_mel", "mel", "power", "magnitude", "spectral")
FORMATS = (".npz", ".csv", ".parquet")
BLOCK = 16384  # samples per block read from the file
ROW_GROUP_BYTES = 8 << 20  # a Parquet row group holds about this much float64 data


def _decimals(text: str) -> int:
    """``--decimals``: an int from 0 to 16 (argparse reports anything else in one line)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 16, got {text!r}") from None
    if not 0 <= n <= 16:
        raise argparse.ArgumentTypeError(f"must be from 0 to 16, got {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio features``."""
    p.add_argument("input", metavar="IN", help="audio file (WAV, FLAC, OGG, MP3, ...)")
    p.add_argument("--out", required=True, help="output file: .npz, .csv or .parquet")
    from ..core.props import info_of
    from ..operators import mfcc, spectral, spectrogram
    from ._flags import flag_help, show

    p.add_argument("--kind", choices=KINDS, default="mfcc", help="features (default mfcc)")
    # the operators' own options: defaults, allowed values and docs from their declarations
    ops = {
        "mfcc": info_of(mfcc),
        "spectrogram": info_of(spectrogram),
        "spectral": info_of(spectral),
    }
    shared = ops["spectrogram"]
    for name in SHARED_OPTIONS:  # the same default in every feature operator
        prop = shared.prop(name)
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=prop.type,
            default=prop.default,
            choices=prop.choices,
            help=flag_help(prop),
        )
    # kind-specific options default to None: an option given for a kind it does not apply to
    # is refused, not silently ignored; not given, the operator's own default applies
    for name, kinds in KIND_OPTIONS.items():
        defaults: dict[str, str] = {}
        for op, info in ops.items():
            if any(p.name == name for p in info.props):
                prop = info.prop(name)
                defaults[op] = show(prop.default)
        if len(set(defaults.values())) == 1:
            default = next(iter(defaults.values()))
        else:
            default = ", ".join(f"{v} for {op}" for op, v in defaults.items())
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=int if prop.type is int else float,
            default=None,
            choices=prop.choices,
            help=flag_help(prop, default=default)[:-1] + f"; only --kind {', '.join(kinds)})",
        )
    p.add_argument("--rate", type=int, default=None, help="resample to this rate first (Hz)")
    p.add_argument(
        "--decimals", type=_decimals, default=6, help="decimals in CSV output, 0 to 16 (6)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# operator option -> command-line flag, for the operators' own error messages
_FLAGS = {
    "n_fft": "--n-fft",
    "hop": "--hop",
    "window": "--window",
    "n_mfcc": "--n-mfcc",
    "n_mels": "--n-mels",
    "deltas": "--deltas",
    "delta_width": "--delta-width",
    "fmin": "--fmin",
    "fmax": "--fmax",
    "lifter": "--lifter",
    "ref": "--ref",
    "amin": "--amin",
    "roll_percent": "--roll-percent",
    "p": "--p",
}
_FLAG_RE = re.compile(r"(?<![\w-])(" + "|".join(sorted(_FLAGS, key=len, reverse=True)) + r")\b")


def _in_flags(message: str) -> str:
    """``mfcc: delta_width must be odd ...`` -> ``--delta-width must be odd ...``."""
    message = re.sub(r"^(mfcc|spectrogram|spectral): ", "", message)
    return _FLAG_RE.sub(lambda m: _FLAGS[m.group(1)], message)


def build_operator(args: argparse.Namespace) -> Any:
    """The feature operator the options ask for (raises ConfigError on bad options, in the
    words of the command line)."""
    try:
        return _build_operator(args)
    except ConfigError as exc:
        raise ConfigError(_in_flags(str(exc))) from exc


def _build_operator(args: argparse.Namespace) -> Any:
    from ..operators import mfcc, spectral, spectrogram

    _refuse_options_for_other_kinds(args)
    if args.delta_width is not None and not args.deltas:
        raise ConfigError(
            "--delta-width only applies with --deltas 1 or 2; add --deltas or drop --delta-width"
        )
    # only what was given: every other option keeps the operator's own default
    given: dict[str, Any] = {k: getattr(args, k) for k in SHARED_OPTIONS}
    given.update(
        (k, getattr(args, k))
        for k, kinds in KIND_OPTIONS.items()
        if args.kind in kinds and getattr(args, k) is not None
    )
    if args.kind == "mfcc":
        return mfcc(**given)
    if args.kind == "spectral":
        return spectral(**given)
    return spectrogram(kind=args.kind, **given)


MEL_KINDS = ("mfcc", "mel", "log_mel")
SHARED_OPTIONS = ("n_fft", "hop", "window")
# kind-specific options of the feature operators, and the --kind values they apply to
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "n_mfcc": ("mfcc",),
    "deltas": ("mfcc",),
    "n_mels": MEL_KINDS,
    "fmin": MEL_KINDS,
    "fmax": MEL_KINDS,
    "delta_width": ("mfcc",),
    "lifter": ("mfcc",),
    "ref": ("mfcc", "log_mel"),
    "amin": ("mfcc", "log_mel"),
    "roll_percent": ("spectral",),
    "p": ("spectral",),
}


def _refuse_options_for_other_kinds(args: argparse.Namespace) -> None:
    """Options that the chosen ``--kind`` would ignore are a mistake: say so."""
    given = {"--" + k.replace("_", "-"): getattr(args, k) for k in KIND_OPTIONS}
    applies = {"--" + k.replace("_", "-"): kinds for k, kinds in KIND_OPTIONS.items()}
    wrong = [
        name
        for name, value in given.items()
        if value is not None and args.kind not in applies[name]
    ]
    if wrong:
        ok = {k for n in wrong for k in applies[n]}
        kinds = [k for k in KINDS if k in ok]
        either = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        raise ConfigError(
            f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to --kind "
            f"{args.kind} (only to --kind {either}); drop "
            f"{'it' if len(wrong) == 1 else 'them'} or change --kind"
        )


class _Writer:
    """Base: a temporary file next to the output, renamed into place by :meth:`close`."""

    def __init__(self, out: str) -> None:
        self.out = out
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise SinkError(f"{out}: directory {folder} does not exist; create it first")
        fd, self.tmp = tempfile.mkstemp(prefix=".features-", dir=folder)
        os.close(fd)
        self.rows = 0

    def write(self, f: FeatureFrame) -> None:
        raise NotImplementedError

    def finish(self, last: FeatureFrame | None) -> None:
        """Complete the temporary file (subclasses)."""

    def close(self, last: FeatureFrame | None) -> None:
        self.finish(last)
        # mkstemp creates 0600; give the output the mode a plain open() would (0666 - umask)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(self.tmp, 0o666 & ~mask)
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        for p in (self.tmp, self.tmp + ".raw"):
            if os.path.exists(p):
                os.remove(p)


class _CsvWriter(_Writer):
    def __init__(self, out: str, decimals: int) -> None:
        super().__init__(out)
        self.fmt = f"%.{decimals}f"
        self.fh: IO[str] = open(self.tmp, "w", encoding="utf-8", newline="")

    def _header(self, f: FeatureFrame) -> None:
        self.fh.write(",".join(["row", "start", "time", *f.columns]) + "\n")

    def write(self, f: FeatureFrame) -> None:
        if self.rows == 0:
            self._header(f)
        idx = np.arange(f.row, f.row + f.n_rows)
        lead = np.stack([idx, f.starts, f.times], axis=1)
        np.savetxt(
            self.fh,
            np.hstack([lead, f.values]),
            delimiter=",",
            fmt=["%d", "%d", "%.6f"] + [self.fmt] * f.values.shape[1],
        )
        self.rows += f.n_rows

    def finish(self, last: FeatureFrame | None) -> None:
        if self.rows == 0 and last is not None:  # no rows: the header all the same
            self._header(last)
        self.fh.close()

    def abort(self) -> None:
        self.fh.close()
        super().abort()


class _NpzWriter(_Writer):
    def __init__(self, out: str) -> None:
        super().__init__(out)
        self.raw: IO[bytes] = open(self.tmp + ".raw", "wb")
        self.cols = 0

    def write(self, f: FeatureFrame) -> None:
        self.raw.write(np.ascontiguousarray(f.values, dtype="<f4").tobytes())
        self.rows += f.n_rows
        self.cols = f.values.shape[1]

    def finish(self, last: FeatureFrame | None) -> None:
        self.raw.close()
        if self.rows == 0 and last is not None:
            self.cols = len(last.columns)
        hop = last.hop if last else 1
        rate = last.sample_rate if last else 1
        start = last.start - last.row * last.hop if last else 0
        with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            with z.open("values.npy", "w", force_zip64=True) as fp:
                header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.cols)}
                np.lib.format.write_array_header_1_0(fp, header)
                with open(self.tmp + ".raw", "rb") as raw:
                    shutil.copyfileobj(raw, fp, 1 << 20)
            with z.open("times.npy", "w", force_zip64=True) as fp:
                header = {"descr": "<f8", "fortran_order": False, "shape": (self.rows,)}
                np.lib.format.write_array_header_1_0(fp, header)
                for a in range(0, self.rows, 1 << 16):
                    rows = np.arange(a, min(self.rows, a + (1 << 16)), dtype=np.float64)
                    fp.write(((start + rows * hop) / rate).astype("<f8").tobytes())
            meta: dict[str, Any] = {}
            if last is not None:
                meta = {
                    "kind": last.kind,
                    "sample_rate": rate,
                    "hop": hop,
                    "n_fft": last.n_fft,
                    "columns": list(last.columns),
                    "params": last.params,
                    "latency": last.latency,
                }
            for name, value in (
                ("columns", np.array(meta.get("columns", []), dtype=str)),
                ("meta", np.array(json.dumps(meta))),
            ):
                with z.open(f"{name}.npy", "w") as fp:
                    np.lib.format.write_array(fp, value, allow_pickle=False)
        os.remove(self.tmp + ".raw")

    def abort(self) -> None:
        self.raw.close()
        super().abort()


class _ParquetWriter(_Writer):
    def __init__(self, out: str) -> None:
        super().__init__(out)
        try:
            import pyarrow  # noqa: F401 - only checking that it is there
        except ImportError as exc:
            raise ConfigError(
                "--out .parquet needs pyarrow: pip install 'rxaudio[features]' (or pyarrow), "
                "or write .npz/.csv"
            ) from exc
        self.pw: Any = None
        self.pending: list[FeatureFrame] = []
        self.pending_rows = 0

    def write(self, f: FeatureFrame) -> None:
        # rows are gathered into row groups of about ROW_GROUP_BYTES: the writer keeps about
        # 1 KB of footer per row group and column until it closes, so one group per frame
        # would grow by hundreds of MB over an hour of 257-bin spectra
        self.pending.append(f)
        self.pending_rows += f.n_rows
        self.rows += f.n_rows
        if self.pending_rows * 8 * (f.values.shape[1] + 3) >= ROW_GROUP_BYTES:
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
        cols = {
            "row": pa.array(
                np.concatenate([np.arange(f.row, f.row + f.n_rows, dtype=np.int64) for f in fs])[
                    take
                ]
            ),
            "start": pa.array(np.concatenate([f.starts for f in fs])[take]),
            "time": pa.array(np.concatenate([f.times for f in fs])[take]),
        }
        values = np.concatenate([f.values for f in fs])[take]
        for i, name in enumerate(fs[0].columns):
            cols[name] = pa.array(values[:, i])
        table = pa.table(cols)
        if self.pw is None:
            self.pw = pq.ParquetWriter(self.tmp, table.schema)
        self.pw.write_table(table)

    def finish(self, last: FeatureFrame | None) -> None:
        self._flush()
        if self.pw is None and last is not None:
            self._write_table([last], empty=True)
        if self.pw is not None:
            self.pw.close()

    def abort(self) -> None:
        self.pending = []
        if self.pw is not None:
            self.pw.close()
        super().abort()


def make_writer(out: str, decimals: int) -> _Writer:
    """A writer for the output's extension."""
    ext = os.path.splitext(out)[1].lower()
    if ext == ".csv":
        return _CsvWriter(out, decimals)
    if ext == ".npz":
        return _NpzWriter(out)
    if ext == ".parquet":
        return _ParquetWriter(out)
    raise ConfigError(f"--out {out}: unknown format {ext or '(none)'}; use {', '.join(FORMATS)}")


def _probe(op: Any, rate: int, n_fft: int) -> FeatureFrame:
    """The operator's first frame on one window of silence: its columns, parameters and
    latency, for an output that gets no rows."""
    from reactivex import from_iterable

    from ..frames import AudioFrame

    frames: list[FeatureFrame] = []
    errors: list[BaseException] = []
    silence = AudioFrame(np.zeros((n_fft, 1), dtype=np.float32), rate)
    from_iterable([silence]).pipe(op).subscribe(frames.append, errors.append)  # synchronous
    if errors:  # options the stream never checked (an empty file): the same error it would give
        raise errors[0]
    return frames[0]


def run(args: argparse.Namespace) -> int:
    """Stream the file through the operator into the writer; print a one-line summary."""
    from reactivex import operators as ops
    from tqdm import tqdm

    from ..sources import from_file

    op = build_operator(args)  # bad options fail before any file is touched
    src = from_file(args.input, block_size=BLOCK)
    info = src.info
    bar = tqdm(
        total=info.frames,
        unit="s",
        unit_scale=1.0 / info.sample_rate,  # counts samples, shows seconds of audio
        desc="features",
        disable=args.no_progress,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]",
    )
    chain: list[Any] = [ops.do_action(lambda a: bar.update(a.n))]
    if args.rate is not None:
        from ..operators import resample

        chain.append(resample(args.rate))
    chain.append(op)
    writer = make_writer(args.out, args.decimals)
    errors: list[BaseException] = []
    last: list[FeatureFrame] = []

    def on_next(f: FeatureFrame) -> None:
        writer.write(f)
        last[:] = [f]

    try:
        src.pipe(*chain).subscribe(on_next, errors.append)
        if errors:
            raise errors[0]
        if not last:  # shorter than one window: the operator's columns and meta all the same
            last.append(_probe(op, args.rate or info.sample_rate, args.n_fft))
        writer.close(last[0])
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    cols = len(last[0].columns)
    if writer.rows == 0:
        print(
            f"rxaudio features: warning: {args.input} is shorter than one {args.n_fft}-sample "
            "window; no rows were written",
            file=sys.stderr,
        )
    print(
        f"rxaudio features: {writer.rows} rows x {cols} {args.kind} features "
        f"({info.duration:.1f} s of audio) -> {args.out}"
    )
    return 0
