"""``rxaudio devices`` with and without a capture device."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rxaudio_tests_cli as h

from rxaudio.apps.cli import main

pytestmark = pytest.mark.timeout(60)


def test_devices_lists_the_virtual_microphone(
    virtual_mic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["devices", "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)
    pulse = next(d for d in devices if d["name"] == "pulse")
    assert pulse["max_input_channels"] == 32
    assert pulse["hostapi"] == "ALSA"
    assert {8000, 16000, 44100, 48000} <= set(pulse["rates"])
    assert sum(d["default"] for d in devices) == 1

    assert main(["devices"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["index", "name"]
    row = next(line for line in table if " pulse " in f" {line} ")
    assert row.split()[0] == str(pulse["index"])
    assert "16000" in row


def test_devices_in_a_subprocess_sees_the_virtual_microphone(virtual_mic: Any) -> None:
    res = h.rxaudio("devices", "--json", env=virtual_mic.env)
    assert res.returncode == 0, res.stderr
    assert "pulse" in [d["name"] for d in json.loads(res.stdout)]


def test_devices_without_any_device_says_so(no_sound_server_env: dict[str, str]) -> None:
    res = h.rxaudio("devices", "--json", env=no_sound_server_env)
    assert res.returncode == 0, res.stderr
    devices = json.loads(res.stdout)
    res = h.rxaudio("devices", env=no_sound_server_env)
    assert res.returncode == 0
    if not devices:  # no sound card here (CI): the table says so and names the fallback
        assert res.stdout.startswith("no input devices found")
        assert "bundled speech sample" in res.stdout
    else:  # a machine with a real sound card still lists it
        assert devices[0]["name"] in res.stdout
