"""Why an input path cannot be opened, in words a user can act on.

``os.path.exists`` is false for a symlink loop and for a link whose target is gone, and a
message built on it ("no such file") sends the user looking for a file that is there. These
say which it is.
"""

from __future__ import annotations

import errno
import os


def missing(path: str, what: str = "file", fix: str = "") -> str:
    """Why ``path`` (which ``os.path.exists`` says is not there) cannot be read, prefixed with
    the path: a symlink loop, a symlink to nothing, or no such ``what`` (then ``fix`` follows,
    e.g. ``"; check the path"``)."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: symlink loop (ELOOP: the link leads back to itself); fix or remove it"
    if os.path.islink(path):
        return f"{path}: a symlink to {os.readlink(path)}, which does not exist; fix the link"
    return f"{path}: no such {what}{fix}"
