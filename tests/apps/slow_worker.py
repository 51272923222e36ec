"""``rxaudio worker`` with one more element, ``slow`` (a test element: it marks and waits).

Run as ``python slow_worker.py worker ...``: the same CLI, with ``slow seconds=S marker=PATH``
usable in ``--pipeline``. ``slow`` appends its process id to ``marker`` when an entry reaches it,
then sleeps ``seconds`` (or waits for the file ``until``) before passing the audio on: the entry
is then in hand, not acked, for the tests that kill or stop a worker mid-entry.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

from reactivex import Observable
from reactivex import operators as ops

from rxaudio.core.caps import Caps
from rxaudio.core.props import Range, Unit, element, info_of
from rxaudio.frames import AudioFrame
from rxaudio.pipeline import registry


@element("slow", kind="operator", accepts=Caps(), produces=Caps())
def slow(
    seconds: Annotated[float, Range(0, None), Unit("s")] = 1.0,
    marker: str = "",
    until: str = "",
) -> Callable[[Observable[AudioFrame]], Observable[AudioFrame]]:
    """Append this process's id to ``marker``, then wait ``seconds`` (or, with ``until``, until
    that path exists, for at most ``seconds``), per frame (tests only)."""

    def pause(frame: AudioFrame) -> AudioFrame:
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\n")
        if until:
            deadline = time.monotonic() + seconds
            while not os.path.exists(until) and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            time.sleep(seconds)
        return frame

    return ops.map(pause)


def main(argv: list[str]) -> Any:
    registry.registry()["slow"] = info_of(slow)
    from rxaudio.apps.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
