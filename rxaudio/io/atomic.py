"""Atomic file writes: a file is written under a temporary name and renamed when complete.

The final name only ever holds a finished file. The streaming sinks
(:mod:`rxaudio.sinks`) keep their temporary file open across items and rename it when the
stream ends; a file written in one go (a label file, a figure) uses :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def partial_name(path: str) -> str:
    """The temporary name a file is written under before it is complete."""
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}.partial")


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield the temporary name to write ``path`` under; rename it to ``path`` on success.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
