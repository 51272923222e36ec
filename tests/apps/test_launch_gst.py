"""``rxaudio launch`` with GStreamer habits: queues' drops and null's counts in the summary and
the status line, ``--graph`` pictures, GStreamer names; ``rxaudio inspect --gst``."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import rxaudio_tests_cli as h

from rxaudio.apps._launch import Status
from rxaudio.pipeline.launch import parse_launch

pytestmark = pytest.mark.timeout(180)

WAIT = 60  # only bounds a hang


def test_summary_reports_queue_drops_and_null_counts(tmp_path: Path) -> None:
    # the slow branch writes into a FIFO that nobody reads until the fast branch's file is
    # final: its queue drops (leaky=downstream), the fast branch is complete and on time
    fifo, fast = tmp_path / "slow.jsonl", tmp_path / "fast.jsonl"
    os.mkfifo(fifo)
    n = 6000
    text = (
        f"testsrc num-buffers={n} samplesperbuffer=160 ! tee name=t "
        f"t. ! queue leaky=downstream max-size-buffers=2 ! level ! jsonl location={fifo} "
        f"t. ! level ! jsonl location={fast} "
        "t. ! fakesink"
    )
    lines: list[bytes] = []
    fast_first: list[bool] = []

    def reader() -> None:
        with open(fifo, "rb") as f:  # opens once the sink writes its first line
            deadline = time.monotonic() + WAIT
            while not fast.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            fast_first.append(fast.exists())
            lines.extend(f.read().splitlines())

    t = threading.Thread(target=reader)
    t.start()
    res = h.rxaudio("launch", text, timeout=WAIT * 2)
    t.join(WAIT)
    assert res.returncode == 0, res.stderr
    assert fast_first == [True], "the fast branch was held up by the slow one"
    assert len(fast.read_text().splitlines()) == n  # complete
    out = res.stdout.splitlines()
    (q,) = [ln for ln in out if ln.startswith("  queue:")]
    passed, dropped = int(q.split()[1]), int(q.split()[4])
    assert dropped > 0 and passed + dropped == n and len(lines) == passed
    assert "(leaky=downstream)" in q
    assert f"  fakesink: {n} items, {n * 160} samples ({n * 160 / 16000:.2f} s), discarded" in out


def test_status_line_shows_each_queue_drops() -> None:
    p = parse_launch("testsrc num-buffers=5 ! queue leaky=upstream ! null")
    status = Status(p, io.StringIO(), tty=True)
    assert status.line().endswith("queue dropped 0")
    p.run()
    assert "null: 5" in status.line() and "queue dropped 0" in status.line()


def test_graph_svg_shows_properties_caps_and_inserted_conversions(tmp_path: Path) -> None:
    svg = tmp_path / "p.svg"
    res = h.rxaudio(
        "launch",
        "--graph",
        str(svg),
        "audiotestsrc wave=chirp rate=44100 num-buffers=4 ! tee name=t "
        "t. ! queue ! audio/x-raw,rate=16000 ! level ! fakesink  t. ! null",
    )
    assert res.returncode == 0, res.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for word in ("wave=chirp", "rate=44100", "inserted: conform", "16000 Hz"):
        assert word in text, word
    assert "a thread of its own" in text
    assert "drew the pipeline to" in res.stderr


def test_graph_dot_needs_no_graphviz_and_svg_names_the_package(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no dot on it
    dot = tmp_path / "p.dot"
    res = h.rxaudio("launch", "--graph", str(dot), "testsrc num-buffers=2 ! level ! null", env=env)
    assert res.returncode == 0, res.stderr
    assert dot.read_text().startswith("digraph pipeline {")
    svg = tmp_path / "p.svg"
    res = h.rxaudio("launch", "--graph", str(svg), "testsrc num-buffers=2 ! null", env=env)
    assert res.returncode == 2 and not svg.exists()
    (line,) = res.stderr.strip().splitlines()
    assert "Graphviz's dot" in line and "apt install graphviz" in line and ".dot" in line


def test_python_draw_and_to_dot(tmp_path: Path) -> None:
    p = parse_launch("testsrc rate=8000 num-buffers=1 ! vad backend=energy ! hysteresis ! null")
    dot = p.to_dot()
    assert '"testsrc\\nrate=8000\\nnum-buffers=1"' in dot
    assert "rxaudio/vad" in dot and "audio/x-raw\\nrate=8000\\nchannels=1\\nframe=1024" in dot
    assert p.draw(tmp_path / "p.png") == str(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="extension"):
        p.draw(tmp_path / "noext")


def test_gstreamer_name_in_launch_exits_2_with_the_hint() -> None:
    res = h.rxaudio("launch", "testsrc ! audioresample ! fakesink")
    assert res.returncode == 2
    assert "in rxaudio it is resample: write resample rate=16000" in res.stderr


def test_inspect_gst_table_and_json() -> None:
    res = h.rxaudio("inspect", "--gst")
    assert res.returncode == 0
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines()[2:]}
    assert "testsrc" in rows["audiotestsrc"] and "(alias)" in rows["audiotestsrc"]
    assert "resample" in rows["audioresample"] and "gain" in rows["volume"]
    assert "mic" in rows["pulsesrc"] and "null" in rows["fakesink"]
    import json

    data = json.loads(h.rxaudio("inspect", "--gst", "--json").stdout)
    assert {"gstreamer": "filesrc", "rxaudio": "file"}.items() <= data[2].items()
    res = h.rxaudio("inspect", "volume")
    assert res.returncode == 2 and "gain" in res.stderr
    assert h.rxaudio("inspect", "fakesink").stdout.startswith("null (sink")


def test_ctrl_c_with_queues_finalizes_and_ends_their_threads(tmp_path: Path) -> None:
    import signal
    import subprocess

    out = tmp_path / "q.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxaudio.apps.cli",
            "launch",
            f"testsrc is-live=true ! tee name=t t. ! queue ! level ! jsonl location={out} "
            "t. ! queue leaky=downstream ! null",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / ".q.jsonl.partial"
    deadline = time.monotonic() + WAIT
    while not partial.exists() and time.monotonic() < deadline:  # it runs
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, stderr  # the process exits: no queue thread held it
    assert "(stopped by SIGINT)" in stdout
    assert "queue0:" in stdout and "queue1:" in stdout
    lines = out.read_text().splitlines()
    assert lines and f"jsonl: {len(lines)} items, wrote {out}" in stdout
