"""``rxaudio launch``: tees, files, errors with their caret, signals, the status line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rxaudio_tests_cli as h

from rxaudio.data import speech_sample
from rxaudio.io.wav import partial_name
from rxaudio.pipeline.launch import parse_launch

pytestmark = pytest.mark.timeout(120)


S = speech_sample()


def _bytes(p: Path | str) -> bytes:
    return Path(p).read_bytes()


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "launch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_writes_into_a_fifo_and_says_so(tmp_path: Path) -> None:
    fifo, lv = tmp_path / "pipe.jsonl", tmp_path / "l.jsonl"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    res = _cli(
        f"file location={S} ! tee name=t  t. ! level ! jsonl location={fifo}  "
        f"t. ! level ! jsonl location={lv}"
    )
    reader.join(60)
    assert res.returncode == 0, res.stderr
    assert f"wrote {fifo}" in res.stdout and f"wrote {lv}" in res.stdout
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got[0] == lv.read_bytes()


def test_cli_runs_a_tee_and_writes_the_files(tmp_path: Path) -> None:
    lv, rttm = tmp_path / "l.jsonl", tmp_path / "x.rttm"
    text = (
        f"file location={S} ! tee name=t  t. ! level ! jsonl location={lv}  "
        f"t. ! vad ! hysteresis ! labels location={rttm}"
    )
    res = _cli(text)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[:2] == ["rxaudio launch: 17.07 s of audio", f"  jsonl: 267 items, wrote {lv}"]
    assert out[2].startswith("  labels: ") and out[2].endswith(f" items, wrote {rttm}")
    assert res.stderr == ""  # not a terminal: no status line
    twin = tmp_path / "twin"  # same file names: the RTTM's uri is the file's stem
    twin.mkdir()
    parse_launch(text.replace(str(tmp_path), str(twin))).run()
    assert _bytes(lv) == _bytes(twin / "l.jsonl") and _bytes(rttm) == _bytes(twin / "x.rttm")


def test_cli_file_and_verbose(tmp_path: Path) -> None:
    f = tmp_path / "p.launch"
    f.write_text(
        f"# levels at 8 kHz\nfile location={S}\n  ! audio/x-raw,rate=8000  # convert\n"
        f"  ! level ! jsonl location={tmp_path}/l.jsonl\n"
    )
    res = _cli("-v", "-f", str(f))
    assert res.returncode == 0, res.stderr
    err = res.stderr.splitlines()
    assert err[0] == "file: audio/x-raw,rate=16000,channels=1,frame=1024"
    assert "audio/x-raw,rate=8000 ! level: audio/x-raw,rate=8000,channels=1" in err
    assert "conversions inserted:" in err
    assert any("before audio/x-raw,rate=8000: rate 16000 -> 8000 Hz" in x for x in err)
    assert (tmp_path / "l.jsonl").read_text().count("\n") > 100


def test_cli_errors_exit_2_with_the_caret(tmp_path: Path) -> None:
    text = f"file location={S} ! levl ! jsonl location={tmp_path}/x.jsonl"
    res = _cli(text)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].startswith(
        "rxaudio launch: error: no element called 'levl'; did you mean level"
    )
    assert lines[1] == f"  {text}" and lines[2].index("^") == 2 + text.index("levl")
    res = _cli("-f", str(tmp_path / "nope.launch"))
    assert res.returncode == 2 and "cannot read it" in res.stderr
    res = _cli()
    assert res.returncode == 2 and "no pipeline" in res.stderr


def test_cli_error_mid_stream_finalizes_every_branch_then_exits_2(tmp_path: Path) -> None:
    import soundfile as sf

    x = np.full(16000, 0.1, dtype=np.float32)
    x[6000] = np.nan  # block 11 of 512 samples is corrupt
    src = tmp_path / "nan.wav"
    sf.write(str(src), x, 16000, subtype="FLOAT")
    wav, lv = tmp_path / "o.wav", tmp_path / "l.jsonl"
    res = _cli(
        f"file location={src} block_size=512 ! tee name=t  t. ! wav location={wav}  "
        f"t. ! level ! jsonl location={lv}"
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.splitlines()[-1].startswith("rxaudio launch: error: ")
    assert "NaN or inf samples at sample 6000" in res.stderr  # the sample, not its block
    assert res.stdout.splitlines() == [
        "rxaudio launch: 0.35 s of audio (stopped by an error)",
        f"  wav: 11 items, wrote {wav}",
        f"  jsonl: 11 items, wrote {lv}",
    ]
    assert sf.info(str(wav)).frames == 11 * 512 and lv.read_text().count("\n") == 11
    assert sorted(f.name for f in tmp_path.iterdir()) == ["l.jsonl", "nan.wav", "o.wav"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_signal_mid_run_leaves_finalized_files(tmp_path: Path, sig: signal.Signals) -> None:
    import soundfile as sf

    wav, lv = tmp_path / "o.wav", tmp_path / "l.jsonl"
    text = (
        f"file location={S} realtime=true block_size=512 ! tee name=t  "
        f"t. ! wav location={wav}  t. ! level ! jsonl location={lv}"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxaudio.apps.cli", "launch", text],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = Path(partial_name(str(wav)))
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 44 + 2 * 8192):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no audio written: {proc.communicate()}")
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    out = stdout.splitlines()
    assert f"(stopped by {sig.name})" in out[0]
    assert out[1].endswith(f"items, wrote {wav}") and out[2].endswith(f"items, wrote {lv}")
    got, rate = sf.read(str(wav), dtype="int16", always_2d=True)
    want, _ = sf.read(S, dtype="int16", always_2d=True)
    assert rate == 16000 and 8192 < got.shape[0] < want.shape[0]
    assert np.array_equal(got, want[: got.shape[0]])
    records = [json.loads(x) for x in lv.read_text().splitlines()]
    assert records and all(r["type"] == "level" for r in records)
    assert not partial.exists() and not Path(partial_name(str(lv))).exists()


def test_cli_status_line_on_a_terminal(tmp_path: Path) -> None:
    text = f"file location={S} ! level ! jsonl location={tmp_path}/a.jsonl"
    code, stdout, status = h.rxaudio_on_tty("launch", text)
    assert code == 0 and "rxaudio launch: 17.07 s of audio" in stdout
    assert status.startswith("\r") and status.endswith("\n") and status.count("\n") == 1
    last = [r for r in status.strip("\n").split("\r") if r][-1]
    assert last.split() == ["17.07", "s", "jsonl:", "267"]
