"""``to_features`` (``features``): feature rows to NPZ, CSV or Parquet on the atomic-write base."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reactivex import Observable, from_iterable
from reactivex import operators as ops

from rxaudio.data import speech_sample
from rxaudio.errors import ConfigError, StreamError
from rxaudio.frames import FeatureFrame, FileReceipt
from rxaudio.operators import mfcc
from rxaudio.sinks import to_features
from rxaudio.sources import from_file
from rxaudio.testing import collect, frame, run_marbles

FORMATS = ("npz", "csv", "parquet")


def ff(row: int, n: int = 2, cols: int = 3) -> FeatureFrame:
    """``n`` rows of ``cols`` features, 160 samples apart, starting at row ``row``."""
    values = (np.arange(n * cols, dtype=np.float32).reshape(n, cols) + row) * np.float32(0.25)
    return FeatureFrame(
        "mfcc",
        values,
        start=row * 160,
        sample_rate=16000,
        hop=160,
        n_fft=512,
        row=row,
        columns=tuple(f"mfcc_{i}" for i in range(cols)),
        params={"n_mfcc": cols},
        latency=0,
    )


def _fmt(fmt: str) -> str:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    return fmt


def read_back(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(values, times, column names) of a features file of any format."""
    if path.suffix == ".npz":
        z = np.load(path)
        return z["values"], z["times"], list(z["columns"])
    if path.suffix == ".csv":
        lines = path.read_text().splitlines()
        names = lines[0].split(",")[3:]
        table = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
        table = table.reshape(-1, len(names) + 3)
        return table[:, 3:], table[:, 2], names
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    names = t.column_names[3:]
    values = np.stack([np.asarray(t.column(c)) for c in names], axis=1)
    return values, np.asarray(t.column("time")), names


def rows_of(frames: list[FeatureFrame]) -> np.ndarray:
    return np.concatenate([f.values for f in frames])


def assert_holds(path: Path, frames: list[FeatureFrame]) -> None:
    values, times, names = read_back(path)
    assert names == list(frames[0].columns)
    assert values.shape == rows_of(frames).shape
    assert np.allclose(values, rows_of(frames), rtol=0, atol=1e-6)  # CSV: 6 decimals
    assert np.allclose(times, np.concatenate([f.times for f in frames]), rtol=0, atol=1e-6)
    assert [p for p in os.listdir(path.parent) if p.startswith(".")] == []  # no partial left


@pytest.mark.parametrize("fmt", FORMATS)
def test_marbles_rows_as_they_come_one_receipt_at_completion(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"f.{_fmt(fmt)}"
    src = {"a": ff(0), "b": ff(2), "c": ff(4, n=3)}
    r = run_marbles("-a-b-c-|", src, to_features(out))
    assert r.marbles() == "-------(x|)"
    (receipt,) = r.values
    assert isinstance(receipt, FileReceipt)
    assert receipt.path == str(out) and receipt.frames == 7 and receipt.reason == "completed"
    assert_holds(out, [ff(0), ff(2), ff(4, n=3)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_upstream_error_finalizes_the_rows_before_it(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"e.{_fmt(fmt)}"
    boom = RuntimeError("mic unplugged")
    r = run_marbles("-a-b-#", {"a": ff(0), "b": ff(2)}, to_features(out), error=boom)
    assert r.marbles() == "-----(x#)"
    assert r.values[0].frames == 4 and r.values[0].reason == "error"
    assert r.error is boom
    assert_holds(out, [ff(0), ff(2)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_dispose_mid_stream_finalizes_the_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"d.{_fmt(fmt)}"
    r = run_marbles(
        "-a-b-c-|", {"a": ff(0), "b": ff(2), "c": ff(4)}, to_features(out), dispose_at=4
    )
    assert r.values == [] and not r.completed
    assert_holds(out, [ff(0), ff(2)])


def test_resubscribe_writes_a_fresh_file(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    sink = to_features(out)
    first = run_marbles("-a-b-|", {"a": ff(0), "b": ff(2)}, sink)
    second = run_marbles("-a-|", {"a": ff(10, n=1)}, sink)
    assert first.values[0].frames == 4 and second.values[0].frames == 1  # fresh state
    assert_holds(out, [ff(10, n=1)])


def test_no_rows_no_file_unless_empty_gives_the_columns(tmp_path: Path) -> None:
    out = tmp_path / "n.csv"
    r = run_marbles("---|", {}, to_features(out))
    assert r.values[0].reason == "empty" and r.values[0].frames == 0
    assert os.listdir(tmp_path) == []
    # an error or dispose before any row: nothing to keep, no file, ``empty`` not asked
    asked: list[int] = []

    def template() -> FeatureFrame:
        asked.append(1)
        return ff(0)

    run_marbles("--#", {}, to_features(out, empty=template), error=RuntimeError("x"))
    assert os.listdir(tmp_path) == [] and asked == []
    r = run_marbles("---|", {}, to_features(out, empty=template))
    assert r.values[0].reason == "completed" and r.values[0].frames == 0 and asked == [1]
    assert out.read_text() == "row,start,time,mfcc_0,mfcc_1,mfcc_2\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_template_gives_a_readable_empty_table(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"t.{_fmt(fmt)}"
    (receipt,) = collect(
        from_file(speech_sample()).pipe(_nothing(), to_features(out, empty=lambda: ff(0)))
    )
    assert receipt.frames == 0
    values, times, names = read_back(out)
    assert values.shape[0] == 0 and times.shape == (0,) and names == list(ff(0).columns)
    if fmt == "npz":
        meta = json.loads(str(np.load(out)["meta"]))
        assert meta["kind"] == "mfcc" and meta["hop"] == 160 and meta["params"] == {"n_mfcc": 3}


def _nothing() -> Callable[[Observable[Any]], Observable[Any]]:
    return ops.filter(lambda _f: False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_real_chain_writes_the_operator_rows(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"speech.{_fmt(fmt)}"
    frames = collect(from_file(speech_sample(), block_size=4096).pipe(mfcc(deltas=1)))
    (receipt,) = collect(
        from_file(speech_sample(), block_size=4096).pipe(mfcc(deltas=1), to_features(out))
    )
    assert receipt.frames == sum(f.n_rows for f in frames) == 1705
    assert_holds(out, frames)
    if fmt == "npz":  # NPZ is exact: float32 as written
        assert np.array_equal(np.load(out)["values"], rows_of(frames))


def test_fmt_option_overrides_the_extension_and_csv_decimals(tmp_path: Path) -> None:
    out = tmp_path / "rows.dat"
    collect(from_file(speech_sample()).pipe(mfcc(), to_features(out, fmt="csv", decimals=2)))
    header, first = out.read_text().splitlines()[:2]
    assert header.startswith("row,start,time,mfcc_0")
    assert first.split(",")[:3] == ["0", "0", "0.000000"]
    assert all(len(v.split(".")[1]) == 2 for v in first.split(",")[3:])


def test_parquet_rows_are_gathered_into_row_groups(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "g.parquet"
    frames = [ff(2 * i) for i in range(40)]  # 80 rows of 6 columns (with row/start/time)
    (receipt,) = collect(from_iterable(frames).pipe(to_features(out, row_group_bytes=16 * 6 * 8)))
    assert receipt.frames == 80
    assert pq.ParquetFile(out).metadata.num_row_groups == 5
    assert_holds(out, frames)


def test_registered_as_features_for_launch_strings(tmp_path: Path, from_text: Any) -> None:
    out = tmp_path / "l.npz"
    sink = from_text("features", {"location": str(out)})
    r = run_marbles("-a-|", {"a": ff(0)}, sink)
    assert r.values[0].frames == 2
    assert_holds(out, [ff(0)])
    csv = tmp_path / "l.txt"  # the format named in text where the extension says nothing
    sink = from_text("features", {"location": str(csv), "fmt": "csv"})
    run_marbles("-a-|", {"a": ff(0)}, sink)
    assert csv.read_text().startswith("row,start,time,mfcc_0")


# --- bad input ----------------------------------------------------------------------------


def test_bad_options_are_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown format \.txt; use \.npz, \.csv, \.parquet"):
        to_features(tmp_path / "x.txt")
    with pytest.raises(ConfigError, match="unknown format"):
        to_features(tmp_path / "noext")
    with pytest.raises(ConfigError, match="does not exist"):
        to_features(tmp_path / "no" / "such" / "x.csv")
    with pytest.raises(ConfigError, match="is a directory"):
        (tmp_path / "d.csv").mkdir()
        to_features(tmp_path / "d.csv")
    with pytest.raises(ConfigError, match="fmt must be one of"):
        to_features(tmp_path / "x.csv", fmt="xlsx")
    with pytest.raises(ConfigError, match="decimals must be an int in"):
        to_features(tmp_path / "x.csv", decimals=17)
    assert sorted(os.listdir(tmp_path)) == ["d.csv"]  # nothing written


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_item_that_is_no_feature_frame_ends_the_stream(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"w.{_fmt(fmt)}"
    r = run_marbles("-a-x-b-|", {"a": ff(0), "x": frame(0, 160), "b": ff(2)}, to_features(out))
    assert r.marbles() == "---#"
    err = r.error
    assert isinstance(err, StreamError) and "expected a FeatureFrame, got AudioFrame" in str(err)
    assert_holds(out, [ff(0)])  # what came before stays, valid


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_column_count_change_mid_stream_ends_the_stream(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"c.{_fmt(fmt)}"
    src = {"a": ff(0), "b": ff(2), "w": ff(4, cols=5)}
    r = run_marbles("-a-b-w-|", src, to_features(out))
    assert r.marbles() == "-----#"
    assert "columns changed mid-stream from 3" in str(r.error) and "to 5" in str(r.error)
    assert "keeps the 4 rows before it" in str(r.error)
    assert_holds(out, [ff(0), ff(2)])


def test_a_rate_or_hop_change_mid_stream_ends_the_stream(tmp_path: Path) -> None:
    out = tmp_path / "h.npz"
    a = ff(0)
    b = FeatureFrame("mfcc", a.values, 320, 16000, 80, 512, 2, a.columns)
    r = run_marbles("-a-b-|", {"a": a, "b": b}, to_features(out))
    assert "hop 160 to 16000 Hz, hop 80" in str(r.error)
    assert_holds(out, [a])
