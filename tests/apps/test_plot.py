"""``rxaudio plot``: the PNG, the VAD overlay, short files and bad options."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from rxaudio.apps.cli import main


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


def test_plot_writes_a_png_of_the_expected_size(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.png"
    assert (
        main(
            ["plot", speech_path, "--out", str(out), "--width", "8", "--height", "5", "--dpi", "80"]
        )
        == 0
    )
    assert _png_size(out) == (640, 400)
    assert "17.1 s -> " in capsys.readouterr().out
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[:2] == (400, 640)
    assert img[..., :3].std() > 0.1  # a picture, not a blank canvas
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_plot_with_vad_draws_segments_and_probability(
    tmp_path: Path, speech_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The --vad drawing path end to end (energy backend: no model to load)."""
    import matplotlib.image

    out = tmp_path / "v.png"
    argv = ["plot", speech_path, "--out", str(out), "--vad", "--backend", "energy"]
    assert main([*argv, "--width", "9", "--height", "5", "--dpi", "70"]) == 0
    assert _png_size(out) == (630, 350)
    said = capsys.readouterr().out
    assert "speech segments" in said and " 0 speech segments" not in said
    img = matplotlib.image.imread(out)[..., :3]
    assert img.shape == (350, 630, 3) and img.std() > 0.1
    # the probability curve (#d62728) and the speech shading (green over white) are drawn
    red = (img[..., 0] > 0.75) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)
    green = (img[..., 1] > img[..., 0] + 0.1) & (img[..., 1] > img[..., 2] + 0.1)
    assert red.sum() > 300 and green.sum() > 2000, (red.sum(), green.sum())
    assert sorted(os.listdir(tmp_path)) == ["v.png"]


def test_plot_vad_threshold_stands_out_and_legend_is_outside(
    tmp_path: Path, speech_path: str
) -> None:
    """The threshold (0.5) lies on the waveform's zero line: it must be drawn in a colour of
    its own (#ff9f1c), over the waveform; the legend sits outside every axes."""
    import argparse

    import matplotlib.image

    from rxaudio.apps import _plot

    p = argparse.ArgumentParser()
    _plot.add_arguments(p)
    out = tmp_path / "t.png"
    args = p.parse_args([speech_path, "--out", str(out), "--vad", "--backend", "energy"])
    fig = _plot.draw(_plot.collect(args), str(out), args)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["speech (VAD)", "speech probability", "threshold 0.5"]
    img = matplotlib.image.imread(out)[..., :3]
    orange = (img[..., 0] > 0.9) & (np.abs(img[..., 1] - 0.62) < 0.12) & (img[..., 2] < 0.3)
    rows = np.flatnonzero(orange.sum(axis=1) > 200)  # a dashed line across the panel
    assert rows.size, orange.sum()
    top = img.shape[0] // 3  # within the waveform panel, at its zero line (mid-panel)
    assert rows.max() < top


def test_plot_of_a_file_shorter_than_one_window_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    for n in (300, 0):  # shorter than a window; no samples at all
        wav = tmp_path / f"s{n}.wav"
        sf.write(wav, np.full(n, 0.1, dtype=np.float32), 16000)
        out = tmp_path / f"s{n}.png"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no matplotlib UserWarning (singular xlim)
            assert main(["plot", str(wav), "--out", str(out), "--dpi", "50"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "shorter than one 512-sample window" in err[0], err
        assert "no spectrogram" in err[0] and _png_size(out) == (600, 300)


def test_plot_vad_finds_the_speech_segments(
    speech_path: str, speech_truth: list[dict[str, Any]]
) -> None:
    import argparse

    from rxaudio.apps import _plot

    p = argparse.ArgumentParser()
    _plot.add_arguments(p)
    args = p.parse_args([speech_path, "--out", "unused.png", "--vad", "--columns", "300"])
    data = _plot.collect(args)
    assert data.log_mel.shape[0] == 64 and 250 <= data.log_mel.shape[1] <= 300
    assert data.vad_p.min() >= 0 and data.vad_p.max() <= 1 and len(data.vad_t) > 400
    assert data.segments
    for seg in speech_truth:  # every true sentence overlaps a detected segment
        assert any(a < seg["end"] and b > seg["start"] for a, b in data.segments)
    inside = sum(min(b, 17.1) - a for a, b in data.segments)
    truth = sum(s["end"] - s["start"] for s in speech_truth)
    assert 0.7 * truth < inside < 1.3 * truth


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--out", "{d}/p.jpg"], ["PNG", "*.png"]),
        (["--out", "{d}/p.png", "--dpi", "5"], ["--dpi"]),
        (["--out", "{d}/p.png", "--vad", "--backend", "magic"], ["magic"]),
    ],
)
def test_plot_bad_options(
    tmp_path: Path,
    speech_path: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    words: list[str],
) -> None:
    assert main(["plot", speech_path, *[a.format(d=tmp_path) for a in argv]]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert os.listdir(tmp_path) == []
