"""``rxaudio features``: npz, csv and parquet outputs, options, errors and memory."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from reactivex import from_iterable

from rxaudio.apps.cli import main
from rxaudio.frames import AudioFrame
from rxaudio.operators import mfcc, spectral, spectrogram
from rxaudio.testing import collect


def _exit_code(argv: list[str]) -> int | str | None:
    """main's return value, or the status argparse exits with on a usage error."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _operator_rows(x: np.ndarray, op: object) -> np.ndarray:
    frames = [
        AudioFrame(x[i : i + 16384].reshape(-1, 1), 16000, i) for i in range(0, len(x), 16384)
    ]
    return np.concatenate([f.values for f in collect(from_iterable(frames).pipe(op))])


def test_features_npz_holds_the_operator_rows_times_and_meta(
    tmp_path: Path, speech_path: str, speech: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.npz"
    assert main(["features", speech_path, "--out", str(out), "--deltas", "2", "--no-progress"]) == 0
    z = np.load(out)
    want = _operator_rows(speech, mfcc(deltas=2))
    assert z["values"].shape == want.shape == (1 + (len(speech) - 512) // 160, 39)
    assert np.array_equal(z["values"], want)
    assert np.allclose(z["times"][:3], [0.0, 0.01, 0.02])
    assert list(z["columns"][:2]) == ["mfcc_0", "mfcc_1"]
    import json

    meta = json.loads(str(z["meta"]))
    assert meta["kind"] == "mfcc" and meta["latency"] == 4 and meta["params"]["deltas"] == 2
    assert "1705 rows x 39 mfcc" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["f.npz"]  # no temporary left behind


def test_features_csv_and_parquet_agree(
    tmp_path: Path, speech_path: str, speech: np.ndarray
) -> None:
    csv, pq_path = tmp_path / "s.csv", tmp_path / "s.parquet"
    assert (
        main(["features", speech_path, "--out", str(csv), "--kind", "spectral", "--no-progress"])
        == 0
    )
    header = csv.read_text().splitlines()[0]
    assert header == "row,start,time,centroid,bandwidth,rolloff,flatness,zcr,rms"
    table = np.loadtxt(csv, delimiter=",", skiprows=1)
    want = _operator_rows(speech, spectral())
    assert table.shape == (want.shape[0], 9)
    assert np.array_equal(table[:, 0], np.arange(want.shape[0]))
    assert np.array_equal(table[:, 1], 160 * np.arange(want.shape[0]))
    assert np.allclose(table[:, 3:], want, rtol=1e-5, atol=1e-6)
    pq = pytest.importorskip("pyarrow.parquet")
    assert (
        main(
            ["features", speech_path, "--out", str(pq_path), "--kind", "spectral", "--no-progress"]
        )
        == 0
    )
    t = pq.read_table(pq_path)
    assert t.column_names == header.split(",")
    assert np.array_equal(np.asarray(t.column("rms")), want[:, 5])


def test_features_resamples_on_request(
    tmp_path: Path, speech_path: str, speech: np.ndarray
) -> None:
    out = tmp_path / "m.npz"
    argv = [
        "--kind",
        "log_mel",
        "--rate",
        "8000",
        "--n-fft",
        "256",
        "--hop",
        "80",
        "--n-mels",
        "40",
    ]
    assert main(["features", speech_path, "--out", str(out), *argv, "--no-progress"]) == 0
    z = np.load(out)
    assert z["values"].shape[1] == 40
    # the resampler may round the length by a sample
    assert abs(z["values"].shape[0] - (1 + (len(speech) // 2 - 256) // 80)) <= 1
    assert np.isclose(z["times"][1], 0.01)


@pytest.mark.parametrize(
    ("argv", "op", "params"),
    [
        (
            ["--deltas", "1", "--delta-width", "5"],
            mfcc(deltas=1, delta_width=5),
            {"deltas": 1, "delta_width": 5},
        ),
        (["--lifter", "22"], mfcc(lifter=22), {"lifter": 22.0}),
        (["--ref", "10"], mfcc(ref=10), {"ref": 10.0}),
        (["--amin", "1e-4"], mfcc(amin=1e-4), {"amin": 1e-4}),
        (
            ["--kind", "log_mel", "--ref", "100"],
            spectrogram(kind="log_mel", ref=100),
            {"ref": 100.0},
        ),
        (
            ["--kind", "log_mel", "--amin", "1e-4"],
            spectrogram(kind="log_mel", amin=1e-4),
            {"amin": 1e-4},
        ),
        (
            ["--kind", "spectral", "--roll-percent", "0.5"],
            spectral(roll_percent=0.5),
            {"roll_percent": 0.5},
        ),
        (["--kind", "spectral", "--p", "3"], spectral(p=3.0), {"p": 3.0}),
    ],
)
def test_features_operator_options_reach_the_operator(
    tmp_path: Path,
    speech_path: str,
    speech: np.ndarray,
    argv: list[str],
    op: object,
    params: dict[str, Any],
) -> None:
    """Each operator option on the command line: the rows of the operator given that option
    (and not the default rows), the value recorded in the NPZ meta."""
    import json

    out = tmp_path / "f.npz"
    assert main(["features", speech_path, "--out", str(out), *argv, "--no-progress"]) == 0
    z = np.load(out)
    want = _operator_rows(speech, op)
    assert np.array_equal(z["values"], want)
    kind = argv[argv.index("--kind") + 1] if "--kind" in argv else "mfcc"
    default = {"mfcc": mfcc(deltas=params.get("deltas", 0)), "spectral": spectral()}.get(
        kind, spectrogram(kind="log_mel")
    )
    assert not np.array_equal(want, _operator_rows(speech, default))  # the option does something
    meta = json.loads(str(z["meta"]))
    assert {k: meta["params"][k] for k in params} == params


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--out", "{d}/x.txt"], ["unknown format .txt", ".npz, .csv, .parquet"]),
        (
            ["--out", "{d}/x.npz", "--hop", "600"],
            ["--hop (600) must be at most --n-fft (512)", "lower --hop"],
        ),
        (["--out", "{d}/nodir/x.npz"], ["does not exist"]),
        (
            ["--out", "{d}/x.npz", "--kind", "mel", "--n-mels", "300"],
            ["--n-mels must be at most 257"],
        ),
        (["--out", "{d}/x.csv", "--decimals", "-1"], ["--decimals", "from 0 to 16, got -1"]),
        (
            ["--out", "{d}/x.npz", "--kind", "spectral", "--n-mels", "40"],
            ["--n-mels does not apply to --kind spectral", "mfcc, log_mel or mel"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "log_mel", "--deltas", "0", "--n-mfcc", "13"],
            ["--n-mfcc, --deltas do not apply to --kind log_mel", "only to --kind mfcc"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "power", "--fmin", "0", "--fmax", "4000"],
            ["--fmin, --fmax do not apply to --kind power", "drop them"],
        ),
        (["--out", "{d}/x.csv", "--decimals", "2.5"], ["--decimals", "integer", "'2.5'"]),
        # the operators' own options: refused for a kind they do not apply to
        (
            ["--out", "{d}/x.npz", "--kind", "spectral", "--delta-width", "5"],
            ["--delta-width does not apply to --kind spectral", "only to --kind mfcc"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "log_mel", "--lifter", "22"],
            ["--lifter does not apply to --kind log_mel", "only to --kind mfcc"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "mel", "--ref", "10"],
            ["--ref does not apply to --kind mel", "only to --kind mfcc or log_mel"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "power", "--amin", "1e-6"],
            ["--amin does not apply to --kind power", "only to --kind mfcc or log_mel"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "magnitude", "--ref", "10", "--amin", "1e-6"],
            ["--ref, --amin do not apply to --kind magnitude", "drop them"],
        ),
        (
            ["--out", "{d}/x.npz", "--roll-percent", "0.5"],
            ["--roll-percent does not apply to --kind mfcc", "only to --kind spectral"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "log_mel", "--p", "3"],
            ["--p does not apply to --kind log_mel", "only to --kind spectral"],
        ),
        # --delta-width means nothing without deltas
        (
            ["--out", "{d}/x.npz", "--delta-width", "5"],
            ["--delta-width only applies with --deltas 1 or 2", "drop --delta-width"],
        ),
        (
            ["--out", "{d}/x.npz", "--deltas", "0", "--delta-width", "5"],
            ["--delta-width only applies with --deltas 1 or 2"],
        ),
        # bad values: the operator's message
        (
            ["--out", "{d}/x.npz", "--deltas", "1", "--delta-width", "8"],
            ["--delta-width must be odd and >= 3, got 8"],
        ),
        (
            ["--out", "{d}/x.npz", "--deltas", "1", "--delta-width", "1"],
            ["--delta-width must be an int >= 3, got 1"],
        ),
        (["--out", "{d}/x.npz", "--deltas", "2", "--delta-width", "4.5"], ["--delta-width", "int"]),
        (
            ["--out", "{d}/x.npz", "--lifter", "-1"],
            ["--lifter must be a finite number >= 0, got -1.0"],
        ),
        (["--out", "{d}/x.npz", "--lifter", "nan"], ["--lifter must be a finite number"]),
        (
            ["--out", "{d}/x.npz", "--amin", "0"],
            ["--amin must be a finite number >= 1e-30, got 0.0"],
        ),
        (
            ["--out", "{d}/x.npz", "--ref", "-1"],
            ["--ref must be a finite number >= 1e-30, got -1.0"],
        ),
        (["--out", "{d}/x.npz", "--kind", "log_mel", "--amin", "0"], ["--amin must be", "got 0.0"]),
        (["--out", "{d}/x.npz", "--kind", "log_mel", "--ref", "0"], ["--ref must be", "got 0.0"]),
        (
            ["--out", "{d}/x.npz", "--kind", "spectral", "--roll-percent", "1.5"],
            ["--roll-percent must be", "got 1.5"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "spectral", "--roll-percent", "0"],
            ["--roll-percent must be a finite number in (0, 1), got 0.0"],
        ),
        (
            ["--out", "{d}/x.npz", "--kind", "spectral", "--p", "0.5"],
            ["--p must be a finite number >= 1, got 0.5"],
        ),
    ],
)
def test_features_bad_options_fail_cleanly(
    tmp_path: Path,
    speech_path: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    words: list[str],
) -> None:
    args = [a.format(d=tmp_path) for a in argv]
    assert _exit_code(["features", speech_path, *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    for w in words:
        assert w in err
    assert os.listdir(tmp_path) == []


def test_features_stream_error_leaves_no_partial_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "hi.wav"
    sf.write(wav, np.zeros(48000, dtype=np.float32), 48000)
    out = tmp_path / "f.csv"
    # 128 mel bands are too many for n_fft=512 at 48 kHz: found at the first frame
    code = main(
        [
            "features",
            str(wav),
            "--out",
            str(out),
            "--kind",
            "log_mel",
            "--n-mels",
            "128",
            "--no-progress",
        ]
    )
    assert code == 2
    assert "n_mels <= 90" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["hi.wav"]


def test_features_missing_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["features", str(tmp_path / "nope.wav"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def _peak_memory(path: Path, out: Path) -> int:
    tracemalloc.start()
    try:
        assert (
            main(["features", str(path), "--out", str(out), "--deltas", "2", "--no-progress"]) == 0
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_features_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    block = (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32)
    peaks = []
    for minutes in (1, 6):
        wav = tmp_path / f"{minutes}.wav"
        with sf.SoundFile(wav, "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(minutes * 2):
                f.write(block)
        peaks.append(_peak_memory(wav, tmp_path / f"{minutes}.npz"))
        assert (
            np.load(tmp_path / f"{minutes}.npz")["values"].shape[0]
            == 1 + (minutes * 60 * 16000 - 512) // 160
        )
    # six times the audio (and 6x the rows, 5.6 MB of output): the same peak, give or take
    assert peaks[1] < peaks[0] * 1.2 + 256 * 1024, peaks


def test_features_on_a_file_shorter_than_one_window_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No rows, but every format still carries the column names (and NPZ the meta): a
    readable, empty table, not a 0-byte file."""
    import json

    wav = tmp_path / "short.wav"
    sf.write(wav, np.full(300, 0.1, dtype=np.float32), 16000)
    base = ["--deltas", "1", "--no-progress"]
    names = ["mfcc_" + str(i) for i in range(13)] + ["dmfcc_" + str(i) for i in range(13)]
    assert main(["features", str(wav), "--out", str(tmp_path / "s.npz"), *base]) == 0
    z = np.load(tmp_path / "s.npz")
    assert z["values"].shape == (0, 26) and z["times"].shape == (0,)
    assert list(z["columns"]) == names
    meta = json.loads(str(z["meta"]))
    assert meta["kind"] == "mfcc" and meta["sample_rate"] == 16000 and meta["hop"] == 160
    assert meta["columns"] == names and meta["params"]["deltas"] == 1 and meta["latency"] == 4
    assert "shorter than one 512-sample window" in capsys.readouterr().err

    assert main(["features", str(wav), "--out", str(tmp_path / "s.csv"), *base]) == 0
    assert (tmp_path / "s.csv").read_text() == ",".join(["row", "start", "time", *names]) + "\n"

    pq = pytest.importorskip("pyarrow.parquet")
    argv = ["--kind", "spectral", "--no-progress"]
    assert main(["features", str(wav), "--out", str(tmp_path / "s.parquet"), *argv]) == 0
    t = pq.read_table(tmp_path / "s.parquet")
    assert t.num_rows == 0
    descriptors = ["centroid", "bandwidth", "rolloff", "flatness", "zcr", "rms"]
    assert t.column_names == ["row", "start", "time", *descriptors]
    assert str(t.schema.field("rms").type) == "float"
    assert str(t.schema.field("row").type) == "int64"


def test_parquet_row_groups_and_output_mode(
    tmp_path: Path, speech_path: str, speech: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from rxaudio.apps import _features

    monkeypatch.setattr(_features, "ROW_GROUP_BYTES", 64 << 10)  # ~500 rows a group
    out = tmp_path / "m.parquet"
    old = os.umask(0o022)
    try:
        assert main(["features", speech_path, "--out", str(out), "--no-progress"]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644  # as a plain open() would make it
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups >= 3
    t = f.read()
    want = _operator_rows(speech, mfcc())
    assert t.num_rows == want.shape[0]
    assert np.array_equal(np.asarray(t.column("row")), np.arange(want.shape[0]))
    got = np.stack([np.asarray(t.column(f"mfcc_{i}")) for i in range(13)], axis=1)
    assert np.array_equal(got, want)
