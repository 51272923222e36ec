"""`rxaudio record`: from a file in real time, from the virtual microphone, errors, signals,
and --segment while recording."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rxaudio_tests_cli as h
import rxaudio_tests_virtual_mic as vm

from rxaudio.apps.cli import main
from rxaudio.io.labels import read_labels
from rxaudio.io.wav import partial_name

pytestmark = pytest.mark.timeout(90)


def test_record_source_writes_the_source_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(0.6))
    out = tmp_path / "out.wav"
    assert main(["record", str(out), "--source", str(src)]) == 0
    got, rate = h.read_wav(out)
    want, _ = h.read_wav(src)
    assert rate == 16000 and got.shape == want.shape == (9600, 1)
    assert np.array_equal(got, want)
    assert not os.path.exists(partial_name(str(out)))
    captured = capsys.readouterr()
    assert f"wrote {out}: 0.60 s, 16000 Hz, 1 ch" in captured.out
    assert "level 00:00.6 rms -9.0 dBFS peak -6.0 dBFS" in captured.err  # plain meter lines


def test_record_seconds_cuts_inside_a_block(tmp_path: Path) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(0.6))
    out = tmp_path / "out.wav"
    assert main(["record", str(out), "--source", str(src), "--seconds", "0.25", "--quiet"]) == 0
    got, _ = h.read_wav(out)
    want, _ = h.read_wav(src)
    assert got.shape == (4000, 1)  # 0.25 s, not a whole number of 512-sample blocks
    assert np.array_equal(got, want[:4000])


def test_record_source_converts_rate_and_channels_on_request(tmp_path: Path) -> None:
    stereo = np.stack([h.chirp(0.5), h.chirp(0.5)], axis=1)
    src = h.write_wav(tmp_path / "in.wav", stereo)
    out = tmp_path / "out.wav"
    argv = ["record", str(out), "--source", str(src), "--rate", "8000", "--channels", "1"]
    assert main([*argv, "--quiet"]) == 0
    got, rate = h.read_wav(out)
    assert rate == 8000 and got.shape[1] == 1
    assert abs(got.shape[0] - 4000) <= 1


def test_record_on_the_virtual_microphone_writes_the_known_audio(
    virtual_mic: Any, tmp_path: Path
) -> None:
    period = h.chirp(1.0)
    virtual_mic.loop(period)  # the feeder writes the chirp over and over
    try:
        out = tmp_path / "mic.wav"
        res = h.rxaudio(
            "record", str(out), "--device", "pulse", "--seconds", "1.5", env=virtual_mic.env
        )
    finally:
        virtual_mic.loop(None)
    assert res.returncode == 0, res.stderr
    assert "device 'pulse' at 16000 Hz, 1 ch" in res.stderr
    got, rate = h.read_wav(out)
    assert rate == 16000 and got.shape == (24000, 1)
    window = got[4000:20000, 0].astype(np.float64)  # one period, away from the start
    assert vm.circular_ncc_peak(window, vm.to_pcm16(period)) > 0.99


def test_record_on_the_default_device_in_process(virtual_mic: Any, tmp_path: Path) -> None:
    out = tmp_path / "default.wav"
    virtual_mic.loop(h.chirp(0.5))
    try:
        assert main(["record", str(out), "--seconds", "1", "--quiet"]) == 0
    finally:
        virtual_mic.loop(None)
    got, rate = h.read_wav(out)
    assert rate == 16000 and got.shape == (16000, 1)
    # one period, after the first 0.25 s: a new stream may first get up to 128 ms of whatever
    # waited in the FIFO (the feeder's pipe) before the loop
    window = got[4000:12000, 0].astype(np.float64)
    assert vm.circular_ncc_peak(window, vm.to_pcm16(h.chirp(0.5))) > 0.99


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("rxaudio record: error: ")
    return lines[0]


def test_missing_device_is_one_line_exit_2(virtual_mic: Any, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    res = h.rxaudio("record", str(out), "--device", "no-such-mic", env=virtual_mic.env)
    line = _one_error_line(res)
    assert "no-such-mic" in line and "'pulse'" in line and "rxaudio devices" in line
    assert not out.exists()


def test_unsupported_rate_is_one_line_exit_2(virtual_mic: Any, tmp_path: Path) -> None:
    res = h.rxaudio(
        "record", str(tmp_path / "x.wav"), "--device", "pulse", "--rate", "1000000",
        env=virtual_mic.env,
    )  # fmt: skip
    line = _one_error_line(res)
    assert "1000000 Hz" in line and "16000" in line


def test_too_many_channels_is_one_clean_line(virtual_mic: Any, tmp_path: Path) -> None:
    res = h.rxaudio(
        "record", str(tmp_path / "x.wav"), "--device", "pulse", "--channels", "64",
        env=virtual_mic.env,
    )  # fmt: skip
    line = _one_error_line(res)  # and no PortAudio debug lines around it
    assert "cannot capture 64 channels: it has at most 32" in line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--source", "missing.wav"], "missing.wav: no such file"),
        (["--source", "not-audio.wav"], "not an audio file"),
        (["--seconds", "0"], "--seconds must be a positive number"),
        (["--source", "in.wav", "--rate", "7"], "--rate must be in [1000, 10000000], got 7"),
        (["--source", "in.wav", "--channels", "0"], "--channels must be in [1, 64], got 0"),
        (["--source", "in.wav", "--rate", "abc"], "--rate must be an integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "not-audio.wav").write_text("hello, not a RIFF file")
    h.write_wav(tmp_path / "in.wav", h.chirp(0.1))
    args = [str(tmp_path / a) if a.endswith(".wav") else a for a in args]
    res = h.rxaudio("record", str(tmp_path / "out.wav"), *args)
    assert needle in _one_error_line(res)
    assert not (tmp_path / "out.wav").exists()


def test_empty_source_says_no_file_written(tmp_path: Path) -> None:
    import soundfile as sf

    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    res = h.rxaudio("record", str(tmp_path / "out.wav"), "--source", str(tmp_path / "empty.wav"))
    assert res.returncode == 0, res.stderr
    assert "no audio arrived; no file written" in res.stdout
    assert not (tmp_path / "out.wav").exists()


def test_capture_losses_are_reported() -> None:
    from rxaudio.apps._record import capture_warning
    from rxaudio.sources import CaptureStats

    class Src:
        stats = CaptureStats()

    assert capture_warning(Src()) is None
    Src.stats.dropped_blocks, Src.stats.overruns = 3, 1
    line = capture_warning(Src())
    assert line is not None and "3 block(s) dropped" in line and "1 PortAudio overrun" in line
    assert capture_warning(object()) is None


def test_no_default_device_is_one_line_exit_2(
    tmp_path: Path, no_sound_server_env: dict[str, str]
) -> None:
    devices = json.loads(h.rxaudio("devices", "--json", env=no_sound_server_env).stdout)
    if devices:  # honest about it, rather than passing without checking anything
        pytest.skip("this machine has a real input device, so there is a default to use")
    res = h.rxaudio("record", str(tmp_path / "x.wav"), "--seconds", "1", env=no_sound_server_env)
    line = _one_error_line(res)
    assert "no default input device" in line and "input devices here: none" in line


def test_device_and_source_together_are_refused(tmp_path: Path) -> None:
    res = h.rxaudio("record", str(tmp_path / "x.wav"), "--device", "1", "--source", "a.wav")
    assert res.returncode == 2
    assert "not allowed with argument" in res.stderr and "Traceback" not in res.stderr


def test_missing_output_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(0.1))
    res = h.rxaudio("record", str(tmp_path / "nope" / "out.wav"), "--source", str(src))
    assert "does not exist; create it first" in _one_error_line(res)


def _start_and_wait_for_audio(args: list[str], out: Path, env: dict[str, str]) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxaudio.apps.cli", "record", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    partial = Path(partial_name(str(out)))
    deadline = time.monotonic() + 20
    while not (partial.exists() and partial.stat().st_size > 44 + 2 * 8192):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no audio written: {proc.communicate()}")
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_record_from_a_file_leaves_a_valid_wav(
    tmp_path: Path, sig: signal.Signals
) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(5.0))
    out = tmp_path / "out.wav"
    proc = _start_and_wait_for_audio(["--source", str(src)], out, dict(os.environ))
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert f"(stopped by {sig.name})" in stdout
    got, rate = h.read_wav(out)
    want, _ = h.read_wav(src)
    assert rate == 16000 and 8192 < got.shape[0] < want.shape[0]
    assert np.array_equal(got, want[: got.shape[0]])  # every sample written is the source's
    assert not Path(partial_name(str(out))).exists()


def test_sigint_during_record_from_the_microphone_leaves_a_valid_wav(
    virtual_mic: Any, tmp_path: Path
) -> None:
    out = tmp_path / "mic.wav"
    proc = _start_and_wait_for_audio(["--device", "pulse"], out, virtual_mic.env)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert "(stopped by SIGINT)" in stdout
    got, rate = h.read_wav(out)
    assert rate == 16000 and got.shape[0] > 8192
    assert not Path(partial_name(str(out))).exists()


def test_meter_on_a_terminal_is_one_updating_line(tmp_path: Path) -> None:
    src = h.write_wav(tmp_path / "in.wav", h.chirp(0.5))
    out = tmp_path / "out.wav"
    code, stdout, text = h.rxaudio_on_tty("record", str(out), "--source", str(src), timeout=30)
    assert code == 0 and "wrote" in stdout
    meter = text.split("\n")[1]  # line 0 says what is recorded; then the meter's one line
    readings = [r for r in meter.split("\r") if r]
    assert len(readings) == 5  # 0.1 s of audio each
    assert readings[-1].startswith("00:00.5 [") and "rms   -9.0 dBFS  peak   -6.0" in readings[-1]
    assert text.endswith("\n") and text.count("\n") == 2


def test_error_mid_recording_keeps_a_valid_file_and_is_one_line(tmp_path: Path) -> None:
    import soundfile as sf

    x = h.chirp(0.6)
    x[6000] = np.nan  # block 11 of 512 samples (5632..6143) is corrupt
    src = tmp_path / "nan.wav"
    sf.write(str(src), x, 16000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    res = h.rxaudio("record", str(out), "--source", str(src))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]  # after the announcement and the meter
    assert last.startswith("rxaudio record: error: ") and res.stderr.count(": error: ") == 1
    assert "NaN or inf samples at sample 6000" in last  # the bad sample, not its block's start
    assert f"wrote {out}: 0.35 s, 16000 Hz, 1 ch (stopped by an error)" in res.stdout
    got, rate = h.read_wav(out)  # finalized before the error was reported
    assert rate == 16000 and got.shape == (5632, 1)
    want = np.rint(np.clip(x[:5632] * 32768.0, -32768, 32767)).astype(np.int16)
    assert np.array_equal(got[:, 0], want)
    assert not Path(partial_name(str(out))).exists()


def test_record_segment_live(tmp_path: Path, speech_path: str) -> None:
    # 6 s of the sample in real time: the first sentence (1.0-4.4 s) is cut while recording
    r = subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "record", str(tmp_path / "take.wav"),
         "--source", speech_path, "--seconds", "6", "--quiet", "--segment", str(tmp_path / "u")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    recs = read_labels(str(tmp_path / "u" / "take.jsonl"))
    assert len(recs) >= 1 and recs[0]["start"] == pytest.approx(1.056, abs=0.04)
    assert os.path.exists(tmp_path / "u" / recs[0]["wav"])
    assert "utterances ->" in r.stdout
