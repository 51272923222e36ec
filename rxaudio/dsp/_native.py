"""Where the compiled extension (``_melkernel.c``) is looked up, for every kernel that uses it."""

from __future__ import annotations

import os
import sys
from typing import Any

NOT_BUILT = (
    "rxaudio: the compiled feature kernel is not built (no C compiler at install); "
    "features run on the numpy fallback (same results, slower). Install gcc and reinstall "
    "rxaudio to build it, or set RXAUDIO_NO_COMPILED=1 to choose numpy quietly.\n"
)
_said = False


def compiled_module() -> Any:
    """The compiled kernel module, or ``None`` where it is not built or turned off with the
    environment variable ``RXAUDIO_NO_COMPILED=1``.

    Where it is not built (and not turned off), says so once per process on stderr.
    """
    global _said
    if os.environ.get("RXAUDIO_NO_COMPILED", "") not in ("", "0"):
        return None
    try:
        from . import _melkernel
    except ImportError:
        if not _said:
            _said = True
            sys.stderr.write(NOT_BUILT)
        return None
    return _melkernel
