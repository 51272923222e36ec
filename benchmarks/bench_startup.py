"""Start-up cost of the CLI, and which heavy modules ``import rxaudio`` pulls in.

1. Wall time of fresh processes, median of ``--repeat`` runs, all in the same run:
   ``python -c pass`` (the reference: interpreter start-up alone), ``import numpy``,
   ``import reactivex``, ``import rxaudio``, ``rxaudio --help`` (the console script), every
   command's ``--help``, ``rxaudio inspect hysteresis`` and ``rxaudio inspect`` (the list).
   Targets: ``rxaudio --help`` at most 0.3 s, every command's ``--help`` at most 0.35 s.
2. Heavy modules (torch, onnxruntime, librosa, matplotlib, aiohttp, scipy, pyarrow, redis,
   prometheus_client) present in ``sys.modules`` after ``import rxaudio`` and after building the
   full CLI parser (every subcommand's flags). Must be none: the script exits 1 otherwise
   (``tests/apps/test_startup.py`` holds each command's ``--help`` to the same).
3. The largest cumulative imports of building every command's flags (``python -X
   importtime``; ``rxaudio COMMAND --help`` builds one command's).

Run: python -m benchmarks.bench_startup [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HEAVY = (
    "torch",
    "onnxruntime",
    "librosa",
    "matplotlib",
    "aiohttp",
    "scipy",
    "pyarrow",
    "redis",
    "prometheus_client",
)
TARGET_S = 0.3  # rxaudio --help
COMMAND_TARGET_S = 0.35  # rxaudio COMMAND --help


def _cli() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = os.path.join(os.path.dirname(sys.executable), "rxaudio")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "rxaudio.apps.cli"]


def wall(cases: list[list[str]], repeat: int) -> list[tuple[float, float]]:
    """(median, best) wall time of each command, run round-robin ``repeat`` times.

    Interleaving the commands spreads the machine's background noise evenly over all of them,
    so their ratios stay meaningful on a busy machine.
    """
    times: list[list[float]] = [[] for _ in cases]
    for _ in range(repeat):
        for i, cmd in enumerate(cases):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), min(t)) for t in times]


_PROBE = """
import json, sys
heavy = {heavy!r}
import rxaudio
after_import = sorted(m for m in heavy if m in sys.modules)
from rxaudio.apps.cli import COMMANDS, build_parser
build_parser()
after_help = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({{"import": after_import, "help": after_help, "commands": list(COMMANDS),
                   "modules": len(sys.modules)}}))
"""


def heavy_modules() -> dict[str, object]:
    """Which heavy modules are loaded after ``import rxaudio`` and after the full parser."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def top_imports(n: int = 8) -> list[tuple[str, float]]:
    """The ``n`` largest cumulative import times (ms) of building the CLI parser (a module's
    time includes what it imports, so a chain of parents and children appears)."""
    code = "from rxaudio.apps.cli import build_parser; build_parser()"
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    rows = []
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((name.strip(), int(cum) / 1000.0))
    top = [r for r in rows if not r[0].startswith(("encodings", "site"))]
    return sorted(top, key=lambda r: -r[1])[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    from rxaudio.apps.cli import COMMANDS

    py = sys.executable
    cases = [
        ("python -c pass (reference)", [py, "-c", "pass"]),
        ("python -c 'import numpy'", [py, "-c", "import numpy"]),
        ("python -c 'import reactivex'", [py, "-c", "import reactivex"]),
        ("python -c 'import rxaudio'", [py, "-c", "import rxaudio"]),
        ("rxaudio --help", [*_cli(), "--help"]),
        *((f"rxaudio {c} --help", [*_cli(), c, "--help"]) for c in COMMANDS),
        ("rxaudio inspect hysteresis", [*_cli(), "inspect", "hysteresis"]),
        ("rxaudio inspect", [*_cli(), "inspect"]),
    ]
    wall([cmd for _, cmd in cases], 1)  # warm the file cache
    timed = wall([cmd for _, cmd in cases], args.repeat)
    results = [(name, med, best) for (name, _), (med, best) in zip(cases, timed, strict=True)]
    ref = results[0][1]
    print(f"## Start-up, median of {args.repeat} fresh processes (best in brackets)\n")
    print("| command | median s | best s | ratio to python -c pass |")
    print("|---|---:|---:|---:|")
    for name, med, best in results:
        print(f"| {name} | {med:.3f} | ({best:.3f}) | {med / ref:.1f}x |")
    by_name = {name: med for name, med, _ in results}
    help_med = by_name["rxaudio --help"]
    verdict = "meets" if help_med <= TARGET_S else "MISSES"
    print(f"\n`rxaudio --help`: {help_med:.3f} s median, {verdict} the {TARGET_S} s target;")
    print(f"over the bare interpreter it adds {help_med - ref:.3f} s.")
    worst, worst_s = max(
        ((n, m) for n, m in by_name.items() if n.endswith(" --help") and n != "rxaudio --help"),
        key=lambda nm: nm[1],
    )
    verdict = "meets" if worst_s <= COMMAND_TARGET_S else "MISSES"
    print(f"Slowest command help: `{worst}` {worst_s:.3f} s, {verdict} the {COMMAND_TARGET_S} s")
    print("target.\n")

    heavy = heavy_modules()
    print(f"## Heavy modules ({', '.join(HEAVY)})\n")
    print(f"- after `import rxaudio`: {heavy['import'] or 'none'}")
    print(
        f"- after building every command's flags ({len(heavy['commands'])} commands): "  # type: ignore[arg-type]
        f"{heavy['help'] or 'none'}"
    )
    print(f"- modules loaded by building every command's flags: {heavy['modules']}\n")

    print("## Largest cumulative imports of building every command's flags (ms, -X importtime)\n")
    for name, ms in top_imports():
        print(f"- {name}: {ms:.1f}")
    return 1 if heavy["import"] or heavy["help"] else 0


if __name__ == "__main__":
    sys.exit(main())
