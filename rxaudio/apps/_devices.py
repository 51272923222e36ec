"""``rxaudio devices``: the input devices PortAudio sees, with their rates and channels."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "list audio input devices with their sample rates and channel counts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``rxaudio devices``."""
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _default_input() -> int | None:
    from ..sources._microphone import _sd

    sd = _sd()
    try:
        d = sd.query_devices(kind="input")
    except Exception:
        return None
    return int(d["index"])


def format_table(devices: list[dict[str, Any]], default: int | None) -> str:
    """Human-readable table; ``*`` marks the default input device."""
    if not devices:
        return (
            "no input devices found (no sound card, or no PulseAudio/PipeWire server running); "
            "`rxaudio run` falls back to the bundled speech sample"
        )
    rows = [("", "index", "name", "host API", "channels", "default Hz", "rates (Hz)")]
    for d in devices:
        rows.append(
            (
                "*" if d["index"] == default else "",
                str(d["index"]),
                d["name"],
                d["hostapi"],
                str(d["max_input_channels"]),
                str(d["default_samplerate"]),
                ",".join(str(r) for r in d["rates"]) or "none of the common rates",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace) -> int:
    """List input devices (table or ``--json``); exit 0 even when there are none."""
    from ..sources import list_input_devices

    devices = list_input_devices()
    default = _default_input()
    if args.json:
        for d in devices:
            d["default"] = d["index"] == default
        json.dump(devices, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(devices, default))
    return 0
