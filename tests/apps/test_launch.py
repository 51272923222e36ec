"""``rxaudio launch``: tees, files, errors with their caret, signals, the status line."""

from __future__ import annotations

import json
import os
import random
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


@pytest.mark.parametrize(
    ("sig", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-started-as-a-background-job"],
)
def test_cli_signal_mid_run_leaves_finalized_files(
    tmp_path: Path, sig: signal.Signals, sigint_ignored: bool
) -> None:
    # sigint_ignored: how `make test` run by a script in the background starts every child;
    # CPython then installs no KeyboardInterrupt handler and the SIGINT used to be dropped
    # (the whole 17 s played, issue 21 item 9)
    import soundfile as sf

    wav, lv = tmp_path / "o.wav", tmp_path / "l.jsonl"
    text = (
        f"file location={S} realtime=true block_size=512 ! tee name=t  "
        f"t. ! wav location={wav}  t. ! level ! jsonl location={lv}"
    )
    proc = h.spawn_rxaudio("launch", text, sigint_ignored=sigint_ignored)
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


def _check_stopped_run(d: Path, src: Path, proc: subprocess.Popen[str]) -> str:
    """One run that was sent SIGINT (repeatedly) from some moment on: how it ended, after
    checking that whatever it wrote is final and valid. A lost signal (the input played to
    its end) or a ``.partial`` left behind fails."""
    import soundfile as sf

    stdout, stderr = proc.communicate(timeout=60)
    rc, out = proc.returncode, stdout.splitlines()
    leftovers = sorted(f.name for f in d.iterdir() if f.name.endswith(".partial"))
    assert not leftovers, (rc, stdout, stderr)
    wav, lv = d / "o.wav", d / "l.jsonl"
    if wav.exists():  # every sample written is the source's
        got, _ = sf.read(str(wav), dtype="int16", always_2d=True)
        want, _ = sf.read(str(src), dtype="int16", always_2d=True)
        assert got.shape[0] < want.shape[0], (rc, stdout, stderr)  # not played to its end
        assert np.array_equal(got, want[: got.shape[0]])
    if lv.exists():
        assert all(json.loads(x)["type"] == "level" for x in lv.read_text().splitlines())
    if rc == 0:  # our handler saw it: stopped, said so, files final
        assert out and out[0].endswith("(stopped by SIGINT)"), (stdout, stderr)
        assert "Traceback" not in stderr, stderr
        return "stopped"
    # an early exit: the signal came before rxaudio's handler (interpreter start-up, imports,
    # or the last instant after the summary); allowed, as long as the files are final.
    # CPython stopped in its own start-up (site) exits 1: "Fatal Python error ... KeyboardInterrupt"
    startup = rc == 1 and not stdout and "KeyboardInterrupt" in stderr
    assert startup or rc in (130, -signal.SIGINT), (rc, stdout, stderr)
    return "early exit"


@pytest.mark.timeout(300)
def test_cli_sigint_at_any_moment_on_a_loaded_machine_stops_with_final_files(
    tmp_path: Path,
) -> None:
    """SIGINT at a random moment, then a burst of more (a user hammering Ctrl-C: the stop
    must be idempotent), while two busy loops load the machine. Half the runs start from
    their first instant (start-up, imports, building, subscribing, running); the other half
    are started as a script's background job (SIGINT ignored by the parent, which used to
    drop it) and signalled a random moment after their first audio (before it, CPython alone
    runs and rightly keeps the parent's "ignore"). Every run ends with its files final, and
    none plays its input to the end."""
    import soundfile as sf

    rng = random.Random(21)
    want, rate = sf.read(S, dtype="int16", always_2d=True)
    src = tmp_path / "in.wav"
    sf.write(str(src), want[: 6 * rate], rate, subtype="PCM_16")  # a lost signal costs 6 s
    ends: list[str] = []
    span = 0.0
    with h.BusyLoops(2):
        for k in range(8):
            d = tmp_path / f"run{k}"
            d.mkdir()
            text = (
                f"file location={src} realtime=true block_size=512 ! tee name=t  "
                f"t. ! wav location={d / 'o.wav'}  t. ! level ! jsonl location={d / 'l.jsonl'}"
            )
            ignored = k % 2 == 1
            t0 = time.monotonic()
            proc = h.spawn_rxaudio("launch", text, sigint_ignored=ignored)
            try:
                if ignored or k == 0:  # from the first audio on (the partial WAV exists)
                    partial = d / Path(partial_name(str(d / "o.wav"))).name
                    while not partial.exists() and time.monotonic() < t0 + 60:
                        if proc.poll() is not None:
                            break
                        time.sleep(0.005)
                    if k == 0:  # how long start-up takes at this load: the span to cover
                        span = time.monotonic() - t0
                    time.sleep(rng.uniform(0.0, 0.5))
                else:  # from start-up on, 0 included: imports, building, subscribing, running
                    time.sleep(0.0 if k == 2 else rng.uniform(0.0, 1.5 * span))
                for _ in range(rng.randint(1, 4)):
                    if proc.poll() is not None:
                        break
                    proc.send_signal(signal.SIGINT)
                    time.sleep(rng.uniform(0.005, 0.05))
                ends.append(_check_stopped_run(d, src, proc))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert len(ends) == 8, ends


def test_cli_status_line_on_a_terminal(tmp_path: Path) -> None:
    text = f"file location={S} ! level ! jsonl location={tmp_path}/a.jsonl"
    code, stdout, status = h.rxaudio_on_tty("launch", text)
    assert code == 0 and "rxaudio launch: 17.07 s of audio" in stdout
    assert status.startswith("\r") and status.endswith("\n") and status.count("\n") == 1
    last = [r for r in status.strip("\n").split("\r") if r][-1]
    assert last.split() == ["17.07", "s", "jsonl:", "267"]
