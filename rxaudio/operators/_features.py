"""What the feature operators share: option checks and the per-subscription stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import numpy as np

from ..core.check import FormatTracker, audio, gap_samples, positive_int
from ..core.props import Choices, Range, Unit
from ..dsp.features import FeatureKernel, MelSpec
from ..dsp.mel import empty_filters, max_mels
from ..dsp.stft import WINDOWS
from ..errors import ConfigError
from ..frames import AudioFrame, FeatureFrame

# The options the feature operators share, typed once (each operator's signature uses these;
# the element machinery checks every single value, the functions below what spans several).
NFft = Annotated[int, Range(1, 65536), Unit("samples")]
Hop = Annotated[int, Range(1), Unit("samples")]
Window = Annotated[str, Choices(WINDOWS)]
NMels = Annotated[int, Range(1)]
FMin = Annotated[float, Range(0.0), Unit("Hz")]
FMax = Annotated[float | None, Range(0.0), Unit("Hz")]
Ref = Annotated[float, Range(1e-30)]
Amin = Annotated[float, Range(1e-30)]


def check_stft(op: str, n_fft: int, hop: int, window: str) -> tuple[int, int, str]:
    """Validate what the STFT options say together (each one is checked by its element)."""
    if hop > n_fft:
        raise ConfigError(
            f"{op}: hop ({hop}) must be at most n_fft ({n_fft}); frames would skip samples. "
            "Raise n_fft or lower hop"
        )
    return n_fft, hop, window


def check_mel(op: str, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> MelSpec:
    """Validate mel options together that do not depend on the sample rate."""
    n_mels = positive_int(op, "n_mels", n_mels, maximum=n_fft // 2 + 1)
    lo, hi = float(fmin), None if fmax is None else float(fmax)
    if hi is not None and hi <= lo:
        raise ConfigError(f"{op}: fmax ({hi}) must be above fmin ({lo})")
    return MelSpec(n_mels=n_mels, fmin=lo, fmax=hi)


def check_mel_rate(op: str, mel: MelSpec, n_fft: int, sample_rate: int) -> None:
    """Refuse a mel bank with empty filters at this rate (raised inside the stream)."""
    if mel.fmax is not None and mel.fmax > sample_rate / 2:
        raise ValueError(
            f"fmax={mel.fmax:g} Hz is above the Nyquist frequency ({sample_rate / 2:g} Hz) of "
            f"this {sample_rate} Hz stream; lower fmax or resample first"
        )
    empty = empty_filters(sample_rate, n_fft, mel.n_mels, mel.fmin, mel.fmax)
    if empty:
        best = max_mels(sample_rate, n_fft, mel.fmin, mel.fmax)
        raise ValueError(
            f"n_mels={mel.n_mels} is too many for n_fft={n_fft} at {sample_rate} Hz: "
            f"{len(empty)} mel filters would be empty; use n_mels <= {best} or a larger n_fft"
        )


def _refuse_non_finite(x: np.ndarray, start: int) -> None:
    """Raise on the first NaN or infinite sample: one would turn every row whose window holds
    it into NaN (and, through deltas, the rows around them)."""
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"sample {start + i} is {x[i]} ({bad.size} non-finite samples in this frame); "
            "features need finite audio: find where the NaN/inf comes from, or clean the "
            "stream first (np.nan_to_num)"
        )


class FeatureStage:
    """Per-subscription state of a feature operator: a kernel built at the first frame."""

    def __init__(
        self,
        op: str,
        kind: str,
        n_fft: int,
        hop: int,
        params: dict[str, Any],
        make_kernel: Callable[[int], FeatureKernel],
    ) -> None:
        self.op, self.kind, self.n_fft, self.hop = op, kind, n_fft, hop
        self.params = params
        self.make_kernel = make_kernel
        self.fmt = FormatTracker(op)
        self.kernel: FeatureKernel | None = None
        self.origin = 0  # sample index of the stream's first sample
        self.end = 0  # sample index one past the last sample pushed

    def _out(self, first: int, rows: np.ndarray) -> list[FeatureFrame]:
        if rows.shape[0] == 0:
            return []
        assert self.kernel is not None and self.fmt.sample_rate is not None
        # the kernels hand out fresh arrays of the declared shape: no re-validation per frame
        return [
            FeatureFrame._trusted(
                self.kind,
                rows,
                self.origin + first * self.hop,
                self.fmt.sample_rate,
                self.hop,
                self.n_fft,
                first,
                self.kernel.columns,
                self.params,
                self.kernel.latency,
            )
        ]

    def push(self, item: AudioFrame) -> list[FeatureFrame]:
        kernel = self.kernel
        # fast path (every chunk but the first): same rate and channels, no gap, mono
        if (
            kernel is not None
            and type(item) is AudioFrame
            and item.start == self.end
            and item.sample_rate == self.fmt.sample_rate
            and item.samples.shape[1] == 1 == self.fmt.channels
        ):
            x = item.samples[:, 0]
            try:  # the kernel refuses NaN/inf, changing nothing
                first, rows = kernel.push(x)
            except FloatingPointError:
                _refuse_non_finite(x, item.start)
                raise
            self.end = item.start + x.shape[0]
            return self._out(first, rows) if rows.shape[0] else []
        frame = audio(self.op, item)
        if self.fmt.check(frame):
            self.kernel = kernel = self.make_kernel(frame.sample_rate)
            self.origin = self.end = frame.start
        assert kernel is not None
        x = frame.mono
        _refuse_non_finite(x, frame.start)
        gap = gap_samples(self.op, self.end, frame)
        if gap:  # dropped blocks: silence keeps later sample indices
            x = np.concatenate((np.zeros(gap, dtype=np.float32), x))
        self.end = frame.end
        return self._out(*kernel.push(x))

    def flush(self) -> list[FeatureFrame]:
        if self.kernel is None:
            return []
        return self._out(*self.kernel.flush())
