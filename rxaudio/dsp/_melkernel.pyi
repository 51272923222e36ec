"""Type stub of the compiled streaming STFT/mel/MFCC kernel (``_melkernel.c``)."""

from typing import Any

class Kernel:
    carry: int
    rows: int
    n_out: int
    def __init__(
        self,
        n_fft: int,
        hop: int,
        window: Any,
        mode: int,
        mel: Any = None,
        dct: Any = None,
        dct_off: Any = None,
        amin: float = 1e-10,
        db_offset: float = 0.0,
    ) -> None: ...
    def push(self, chunk: Any, out: Any, /) -> int: ...
    def rows_for(self, n: int, /) -> int: ...

def deltas(hist: Any, weights: Any, out: Any, row0: int, lo: int, hi: int, /) -> None: ...
def spectral(
    mag: Any,
    frames: Any,
    freqs: Any,
    out: Any,
    roll_percent: float,
    p: float,
    amin: float,
    threshold: float,
    /,
) -> None: ...
