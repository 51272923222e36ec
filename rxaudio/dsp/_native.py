"""Where the compiled extension (``_melkernel.c``) is looked up, for every kernel that uses it."""

from __future__ import annotations

import os
from typing import Any


def compiled_module() -> Any:
    """The compiled kernel module, or ``None`` where it is not built or turned off with the
    environment variable ``RXAUDIO_NO_COMPILED=1``."""
    if os.environ.get("RXAUDIO_NO_COMPILED", "") not in ("", "0"):
        return None
    try:
        from . import _melkernel
    except ImportError:
        return None
    return _melkernel
