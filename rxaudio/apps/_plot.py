"""``rxaudio plot IN --out OUT.png [--vad]``: waveform and log-mel spectrogram, optionally VAD.

The file is streamed once per view (audio envelope and log-mel rows through the ``spectrogram``
operator; with ``--vad``, probabilities and segments through ``vad`` and ``hysteresis``), and
long files are pooled to at most ``--columns`` time columns as they stream, so memory does not
grow with the file's length. The figure is drawn with matplotlib's Agg canvas (no display).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SinkError
from ._chain import FlagChain

if TYPE_CHECKING:  # numpy is imported where used: `rxaudio --help` imports this module for HELP
    import numpy as np
    from numpy.typing import NDArray

HELP = "draw a file's waveform and log-mel spectrogram (and VAD segments) into a PNG"


# the two views' chains, as launch strings, with the options offered as flags
VAD = FlagChain("vad ! hysteresis", {"vad": ("backend",), "hysteresis": ("threshold",)})
MEL = FlagChain("spectrogram kind=log_mel", {"spectrogram": ("n_mels", "n_fft", "hop")})


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio plot``."""
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--vad", action="store_true", help="shade speech and draw the probability")
    # the elements' own options (default, range, doc): the VAD chain's and the log-mel's
    VAD.add_arguments(p)
    MEL.add_arguments(p)
    p.add_argument("--width", type=float, default=12.0, help="figure width, inches (12)")
    p.add_argument("--height", type=float, default=6.0, help="figure height, inches (6)")
    p.add_argument("--dpi", type=int, default=100, help="pixels per inch (100)")
    p.add_argument("--columns", type=int, default=2000, help="max time columns drawn (2000)")
    p.add_argument("--title", default=None, help="figure title (default: the file name)")


@dataclass
class PlotData:
    """What the figure shows; times in seconds."""

    sample_rate: int
    duration: float
    env_t: NDArray[np.float64]  # envelope column times
    env_lo: NDArray[np.float32]
    env_hi: NDArray[np.float32]
    mel_t0: float  # time of the first log-mel column's centre
    mel_dt: float  # seconds per log-mel column
    log_mel: NDArray[np.float32]  # (n_mels, columns), dB
    mel_hz: NDArray[np.float64]  # centre frequency of each band
    vad_t: NDArray[np.float64] = field(default_factory=lambda: _nothing())
    vad_p: NDArray[np.float64] = field(default_factory=lambda: _nothing())
    segments: list[tuple[float, float]] = field(default_factory=list)


def _nothing() -> NDArray[np.float64]:
    import numpy as np

    return np.zeros(0)


class _Pool:
    """Max-pool rows in groups of ``factor`` as they stream (constant memory per group)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.out: list[NDArray[np.float32]] = []
        self.pending: list[NDArray[np.float32]] = []
        self.n = 0

    def add(self, rows: NDArray[np.float32]) -> None:
        import numpy as np

        self.pending.append(rows)
        self.n += rows.shape[0]
        if self.n >= self.factor:
            block = np.concatenate(self.pending)
            k = block.shape[0] // self.factor * self.factor
            self.out.append(block[:k].reshape(-1, self.factor, block.shape[1]).max(axis=1))
            self.pending, self.n = ([block[k:]] if k < block.shape[0] else []), block.shape[0] - k

    def result(self, width: int) -> NDArray[np.float32]:
        import numpy as np

        if self.pending and self.n:
            self.out.append(np.concatenate(self.pending).max(axis=0, keepdims=True))
            self.pending, self.n = [], 0
        return np.concatenate(self.out) if self.out else np.zeros((0, width), np.float32)


def collect(args: argparse.Namespace) -> PlotData:
    """Stream the file through the views the options ask for."""
    import numpy as np

    from ..dsp.mel import mel_frequencies
    from ..sources import from_file

    (op,) = MEL.build(args)
    vad_chain = VAD.build(args) if args.vad else None  # bad VAD options fail before work
    src = from_file(args.input, block_size=16384)
    info = src.info
    rate = info.sample_rate
    n_rows = max(1, 1 + (info.frames - args.n_fft) // args.hop)
    mel_pool = _Pool(max(1, math.ceil(n_rows / args.columns)))
    env_factor = max(1, math.ceil(max(info.frames, 1) / args.columns))
    lo, hi = _Pool(env_factor), _Pool(env_factor)
    errors: list[BaseException] = []

    def on_audio(a: Any) -> None:
        x = a.mono.reshape(-1, 1)
        lo.add(-x)
        hi.add(x)

    src.subscribe(on_audio, errors.append)
    src.pipe(op).subscribe(lambda f: mel_pool.add(f.values), errors.append)
    if errors:
        raise errors[0]
    log_mel = mel_pool.result(args.n_mels).T
    env_hi = hi.result(1)[:, 0]
    env_lo = -lo.result(1)[:, 0]
    env_t = (np.arange(env_hi.shape[0]) + 0.5) * env_factor / rate
    step = mel_pool.factor * args.hop / rate
    data = PlotData(
        sample_rate=rate,
        duration=info.duration,
        env_t=np.minimum(env_t, info.duration),
        env_lo=env_lo,
        env_hi=env_hi,
        mel_t0=args.n_fft / 2 / rate,
        mel_dt=step,
        log_mel=log_mel,
        mel_hz=mel_frequencies(args.n_mels + 2, 0.0, rate / 2)[1:-1],
    )
    if vad_chain is not None:
        _collect_vad(args, data, vad_chain)
    return data


def _collect_vad(args: argparse.Namespace, data: PlotData, chain: list[Any]) -> None:
    import numpy as np

    from ..frames import SpeechEnd, VadFrame
    from ..sources import from_file

    t: list[float] = []
    p: list[float] = []
    errors: list[BaseException] = []

    def on_next(item: Any) -> None:
        if isinstance(item, VadFrame):
            t.append((item.start + item.end) / 2 / item.sample_rate)
            p.append(item.probability)
        elif isinstance(item, SpeechEnd):
            data.segments.append((item.start / item.sample_rate, item.end / item.sample_rate))

    from_file(args.input, block_size=16384).pipe(*chain).subscribe(on_next, errors.append)
    if errors:
        raise errors[0]
    data.vad_t, data.vad_p = np.asarray(t), np.asarray(p)


def draw(data: PlotData, out: str, args: argparse.Namespace) -> Any:
    """Render the figure to ``out`` (PNG, ``width*dpi`` x ``height*dpi`` pixels); return it."""
    import numpy as np
    from matplotlib import patheffects
    from matplotlib.figure import Figure

    fig = Figure(figsize=(args.width, args.height), dpi=args.dpi, layout="constrained")
    gs = fig.add_gridspec(2, 2, height_ratios=(1, 2), width_ratios=(60, 1))
    ax_w = fig.add_subplot(gs[0, 0])
    ax_s = fig.add_subplot(gs[1, 0], sharex=ax_w)
    title = args.title or os.path.basename(args.input)
    secs = f"{data.duration:.1f}" if data.duration >= 1 else f"{data.duration:.3f}"
    fig.suptitle(f"{title}: {secs} s at {data.sample_rate} Hz")

    ax_w.fill_between(data.env_t, data.env_lo, data.env_hi, color="#1f4e79", lw=0.5)
    ax_w.set_ylabel("amplitude (full scale)")
    peak = float(max(np.abs(data.env_lo).max(initial=0.0), np.abs(data.env_hi).max(initial=0.0)))
    ax_w.set_ylim(-min(1.05, max(0.05, 1.15 * peak)), min(1.05, max(0.05, 1.15 * peak)))
    # an empty file has no duration: keep the axis one window wide rather than singular
    ax_w.set_xlim(0, data.duration or args.n_fft / data.sample_rate)
    ax_w.grid(alpha=0.3)
    ax_w.tick_params(labelbottom=False)

    n_mels, cols = data.log_mel.shape
    x0 = data.mel_t0 - data.mel_dt / 2
    img = ax_s.imshow(
        data.log_mel,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(x0, x0 + cols * data.mel_dt, 0, n_mels),
        vmin=max(float(data.log_mel.max()) - 90.0, float(data.log_mel.min())) if cols else None,
    )
    ticks = [i for i in np.linspace(0, n_mels - 1, 7).round().astype(int)]
    ax_s.set_yticks([i + 0.5 for i in ticks])
    ax_s.set_yticklabels([_hz(data.mel_hz[i]) for i in ticks])
    ax_s.set_ylabel("frequency (Hz, mel scale)")
    ax_s.set_xlabel("time (s)")
    ax_c = fig.add_subplot(gs[1, 1])
    if cols:
        cbar = fig.colorbar(img, cax=ax_c)
        cbar.set_label("log-mel power (dB re 1.0)")
    else:  # shorter than one window: say so where the spectrogram would be
        ax_c.set_axis_off()
        ax_s.text(
            0.5,
            0.5,
            f"no spectrogram: the file is shorter than one {args.n_fft}-sample window",
            ha="center",
            va="center",
            transform=ax_s.transAxes,
        )

    if args.vad:
        for i, (a, b) in enumerate(data.segments):
            ax_w.axvspan(
                a, b, color="#2ca02c", alpha=0.25, lw=0, label="speech (VAD)" if i == 0 else None
            )
            ax_s.axvline(a, color="#7CFC00", lw=1.0, alpha=0.9)
            ax_s.axvline(b, color="#7CFC00", lw=1.0, alpha=0.9, ls="--")
        ax_p = ax_w.twinx()
        ax_p.plot(data.vad_t, data.vad_p, color="#d62728", lw=1.0, label="speech probability")
        # the threshold (often 0.5) falls on the waveform's zero line, under the densest ink:
        # a bright dashed line with a white edge, above everything else
        ax_p.axhline(
            args.threshold,
            color="#ff9f1c",
            lw=1.8,
            ls=(0, (6, 3)),
            zorder=10,
            path_effects=[patheffects.withStroke(linewidth=3.2, foreground="white")],
            label=f"threshold {args.threshold:g}",
        )
        ax_p.set_ylim(-0.025, 1.025)
        ax_p.set_ylabel(f"P(speech), {args.backend}", color="#d62728")
        handles = ax_w.get_legend_handles_labels()[0] + ax_p.get_legend_handles_labels()[0]
        # outside the axes (below the time axis): it hides no data
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            fontsize="small",
            frameon=False,
        )
    from ..io.atomic import atomic_path

    try:  # a one-shot figure, not a stream: the shared atomic write, no sink
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
    except OSError as exc:
        raise SinkError(f"{out}: cannot write the PNG ({exc})") from exc
    return fig


def _hz(f: float) -> str:
    return f"{f / 1000:.1f}k" if f >= 1000 else f"{f:.0f}"


def run(args: argparse.Namespace) -> int:
    """Collect the views and draw them."""
    for name in ("width", "height"):
        v = getattr(args, name)
        if not 1 <= v <= 100:
            raise ConfigError(f"--{name} must be between 1 and 100 inches, got {v}")
    if not 20 <= args.dpi <= 600:
        raise ConfigError(f"--dpi must be between 20 and 600, got {args.dpi}")
    if args.columns < 10:
        raise ConfigError(f"--columns must be at least 10, got {args.columns}")
    if not os.path.splitext(args.out)[1].lower() == ".png":
        raise ConfigError(f"--out {args.out}: the plot is written as PNG; name it *.png")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise SinkError(f"{args.out}: directory {folder} does not exist; create it first")
    data = collect(args)
    if data.log_mel.shape[1] == 0:
        print(
            f"rxaudio plot: warning: {args.input} ({data.duration:.3f} s) is shorter than one "
            f"{args.n_fft}-sample window: waveform only, no spectrogram",
            file=sys.stderr,
        )
    draw(data, args.out, args)
    extra = f", {len(data.segments)} speech segments" if args.vad else ""
    print(f"rxaudio plot: {data.duration:.1f} s{extra} -> {args.out}", file=sys.stdout)
    return 0
