"""`rxaudio run`: the bundled sample when there is no microphone, the microphone when there is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rxaudio_tests_cli as h
import rxaudio_tests_virtual_mic as vm

from rxaudio.apps._run import output_path
from rxaudio.apps.cli import main
from rxaudio.data import speech_sample

pytestmark = pytest.mark.timeout(60)


def _only_wav(folder: Path) -> Path:
    files = [f for f in folder.iterdir() if f.name != "serve"]  # OUT/serve: the live page's
    assert len(files) == 1 and files[0].name.startswith("run-"), files
    assert files[0].suffix == ".wav"
    return files[0]


def test_run_on_the_sample_writes_it_in_real_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", "--sample", "--seconds", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        "rxaudio run: as asked: playing the bundled speech sample (17.1 s) in real time"
    )
    got, rate = h.read_wav(_only_wav(out))
    want, _ = h.read_wav(Path(speech_sample()))
    assert rate == 16000 and got.shape == (16000, 1)
    assert np.array_equal(got, want[:16000])


def test_run_without_a_device_falls_back_to_the_sample(
    tmp_path: Path, no_sound_server_env: dict[str, str]
) -> None:
    devices = json.loads(h.rxaudio("devices", "--json", env=no_sound_server_env).stdout)
    out = tmp_path / "out"
    res = h.rxaudio("run", "--seconds", "0.5", "--out", str(out), env=no_sound_server_env)
    assert res.returncode == 0, res.stderr
    first = res.stderr.splitlines()[0]
    if devices:  # a machine with a real sound card uses it
        assert first == "rxaudio run: live on the default microphone (Ctrl-C to stop)"
    else:
        assert first == (
            "rxaudio run: no input device found: playing the bundled speech sample (17.1 s) "
            "in real time"
        )
    assert "rxaudio run: wrote " in res.stdout
    _, rate = h.read_wav(_only_wav(out))
    assert rate == 16000


def test_run_uses_the_microphone_when_there_is_one(virtual_mic: Any, tmp_path: Path) -> None:
    period = h.chirp(0.5)
    virtual_mic.loop(period)
    try:
        out = tmp_path / "out"
        res = h.rxaudio("run", "--seconds", "1", "--out", str(out), env=virtual_mic.env)
    finally:
        virtual_mic.loop(None)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[0] == (
        "rxaudio run: live on the default microphone (Ctrl-C to stop)"
    )
    got, _ = h.read_wav(_only_wav(out))
    assert got.shape == (16000, 1)
    window = got[4000:12000, 0].astype(np.float64)
    assert vm.circular_ncc_peak(window, vm.to_pcm16(period)) > 0.99


def test_run_creates_the_output_folder_and_refuses_bad_seconds(tmp_path: Path) -> None:
    res = h.rxaudio("run", "--seconds", "-1", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert res.stderr.strip() == "rxaudio run: error: --seconds must be a positive number, got -1.0"


def test_run_output_names_never_overwrite(tmp_path: Path) -> None:
    first = output_path(str(tmp_path))
    Path(first).write_bytes(b"")
    second = output_path(str(tmp_path))
    assert second != first and second.endswith("-1.wav") and Path(second).parent == tmp_path


def test_run_out_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    res = h.rxaudio("run", "--sample", "--out", str(tmp_path / "f"))
    assert res.returncode == 2
    assert res.stderr.strip().startswith(f"rxaudio run: error: --out {tmp_path / 'f'}: cannot")
