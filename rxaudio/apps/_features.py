"""``rxaudio features IN --out OUT.(npz|csv|parquet)``: stream a file through a feature operator.

The rows are written by the ``features`` sink (:func:`~rxaudio.sinks.to_features`): as they
come, in constant memory, under a temporary name renamed when the file is final.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # imported where used: `rxaudio --help` imports this module for HELP
    from ..frames import FeatureFrame, FileReceipt

HELP = "compute MFCC, (log-)mel, spectrogram or spectral features of a file, with a progress bar"

# --kind -> the element that computes it, and the option that selects it there
ELEMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "mfcc": ("mfcc", {}),
    **{k: ("spectrogram", {"kind": k}) for k in ("log_mel", "mel", "power", "magnitude")},
    "spectral": ("spectral", {}),
}
KINDS = tuple(ELEMENTS)
BLOCK = 16384  # samples per block read from the file
ROW_GROUP_BYTES: int | None = None  # Parquet row groups for the sink; None: the sink's default


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
    from ..pipeline import registry
    from ._flags import flag_help, show

    p.add_argument("--kind", choices=KINDS, default="mfcc", help="features (default mfcc)")
    # the operators' own options: defaults, allowed values and docs from their declarations
    ops = {name: registry.declaration(name) for name, _ in ELEMENTS.values()}
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


def build_operator(args: argparse.Namespace) -> Any:
    """The feature operator the options ask for (raises ConfigError on bad options, in the
    words of the command line)."""
    from ..pipeline import registry
    from ._flags import in_flags

    name, fixed = ELEMENTS[args.kind]
    try:
        return registry.make(name, **_given(args), **fixed)
    except ConfigError as exc:
        raise ConfigError(in_flags(str(exc), registry.get(name))) from exc


def _given(args: argparse.Namespace) -> dict[str, Any]:
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
    return given


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


def _probe(op: Any, rate: int, n_fft: int) -> FeatureFrame:
    """The operator's first frame on one window of silence: its columns, parameters and
    latency, for an output that gets no rows."""
    import numpy as np
    from reactivex import from_iterable
    from reactivex.scheduler import ImmediateScheduler

    from ..frames import AudioFrame

    frames: list[FeatureFrame] = []
    errors: list[BaseException] = []
    silence = AudioFrame(np.zeros((n_fft, 1), dtype=np.float32), rate)
    # immediate: called by the sink while the file's own chain completes, where the default
    # trampoline would only queue this subscription until that chain has finished
    once = from_iterable([silence], scheduler=ImmediateScheduler())
    once.pipe(op).subscribe(frames.append, errors.append)
    if errors:  # options the stream never checked (an empty file): the same error it would give
        raise errors[0]
    return frames[0]


def run(args: argparse.Namespace) -> int:
    """Stream the file through the operator into the writer; print a one-line summary."""
    from reactivex import operators as ops
    from tqdm import tqdm

    from ..sinks import to_features
    from ..sources import from_file

    op = build_operator(args)  # bad options fail before any file is touched
    src = from_file(args.input, block_size=BLOCK)
    info = src.info
    last: list[FeatureFrame] = []  # the latest frame (its columns for the summary)

    def keep(f: FeatureFrame) -> None:
        last[:] = [f]

    def empty() -> FeatureFrame:  # shorter than one window: the operator's columns and meta
        f = _probe(op, args.rate or info.sample_rate, args.n_fft)
        keep(f)
        return f

    groups: dict[str, Any] = {} if ROW_GROUP_BYTES is None else {"row_group_bytes": ROW_GROUP_BYTES}
    try:
        sink = to_features(args.out, decimals=args.decimals, empty=empty, **groups)
    except ConfigError as exc:  # in the words of the command line
        msg = str(exc).removeprefix("to_features: ")
        raise ConfigError(
            f"--out {msg}" if msg.startswith(args.out) else f"--out {args.out}: {msg}"
        ) from exc
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
    chain += [op, ops.do_action(keep), sink]
    receipts: list[FileReceipt] = []
    errors: list[BaseException] = []
    try:
        src.pipe(*chain).subscribe(receipts.append, errors.append)
    finally:
        bar.close()
    if errors:
        if receipts and receipts[-1].frames:  # the sink kept what came before the error
            print(
                f"rxaudio features: {args.out} holds the {receipts[-1].frames} rows before "
                "the error",
                file=sys.stderr,
            )
        raise errors[0]
    rows, cols = receipts[-1].frames, len(last[0].columns)
    if rows == 0:
        print(
            f"rxaudio features: warning: {args.input} is shorter than one {args.n_fft}-sample "
            "window; no rows were written",
            file=sys.stderr,
        )
    print(
        f"rxaudio features: {rows} rows x {cols} {args.kind} features "
        f"({info.duration:.1f} s of audio) -> {args.out}"
    )
    return 0
