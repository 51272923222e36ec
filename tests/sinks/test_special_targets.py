"""File sinks at special locations (GStreamer's filesink rules, issue 21 item 4).

A device or FIFO is written in place and stays what it is; a symlink is followed and its
target replaced atomically (the link stays a link); a directory, a socket or a symlink loop is
refused by name. Every file sink writes through the one resolver in ``rxaudio.io.atomic``;
each case here runs wav, jsonl, labels, subtitles and the three feature formats.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reactivex as rx
import soundfile as sf

from rxaudio.errors import ConfigError
from rxaudio.frames import AudioFrame, FileReceipt, Transcript, Utterance
from rxaudio.io.atomic import atomic_path, target
from rxaudio.operators import mfcc
from rxaudio.sinks import to_features, to_jsonl, to_labels, to_subtitles, to_utterances, to_wav

R = 16000
AUDIO = [AudioFrame(np.full((1600, 1), 0.01 * (i + 1), np.float32), R, 1600 * i) for i in range(5)]


def _utt(a: int, b: int, i: int) -> Utterance:
    return Utterance(np.zeros((b - a, 1), np.float32), R, a, b, a, b, "silence", i)


@dataclass(frozen=True)
class Case:
    """One sink: how to build it, what to feed it, and how to check the bytes it wrote."""

    name: str
    ext: str
    sink: Callable[[str], Any]
    items: Callable[[], list[Any]]
    check: Callable[[bytes], None]
    before: tuple[Any, ...] = ()  # operators between the items and the sink


def _check_wav(b: bytes) -> None:
    y, sr = sf.read(io.BytesIO(b), dtype="float32")
    assert sr == R and y.shape == (8000,)
    assert np.allclose(y[::1600], [0.01, 0.02, 0.03, 0.04, 0.05], atol=1 / 32768)


def _check_jsonl(b: bytes) -> None:
    assert [json.loads(s) for s in b.decode().splitlines()] == [{"i": 0}, {"i": 1}, {"i": 2}]


def _check_rttm(b: bytes) -> None:
    lines = b.decode().splitlines()
    assert len(lines) == 2 and lines[1].startswith("SPEAKER ")


def _check_srt(b: bytes) -> None:
    assert "hello there" in b.decode() and "general kenobi" in b.decode()


def _check_csv(b: bytes) -> None:
    lines = b.decode().splitlines()
    assert lines[0].startswith("row,start,time,") and len(lines) > 5


def _check_npz(b: bytes) -> None:
    with np.load(io.BytesIO(b)) as z:
        assert z["values"].shape[0] == z["times"].shape[0] > 5


def _check_parquet(b: bytes) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(io.BytesIO(b)).num_rows > 5


CASES = [
    Case("wav", "wav", to_wav, lambda: AUDIO, _check_wav),
    Case("jsonl", "jsonl", to_jsonl, lambda: [{"i": i} for i in range(3)], _check_jsonl),
    Case(
        "labels",
        "rttm",
        lambda p: to_labels(p, fmt="rttm"),  # fmt: /dev/null has no extension
        lambda: [_utt(16000, 32000, 0), _utt(48000, 56000, 1)],
        _check_rttm,
    ),
    Case(
        "subtitles",
        "srt",
        lambda p: to_subtitles(p, fmt="srt"),
        lambda: [
            Transcript(0, 16000, 48000, R, "hello there"),
            Transcript(1, 80000, 96000, R, "general kenobi"),
        ],
        _check_srt,
    ),
    *(
        Case(
            f"features-{ext}",
            ext,
            lambda p, e=ext: to_features(p, fmt=e),
            lambda: AUDIO,
            c,
            (mfcc(),),
        )
        for ext, c in (("csv", _check_csv), ("npz", _check_npz), ("parquet", _check_parquet))
    ),
]
IDS = [c.name for c in CASES]


def _run(case: Case, path: str) -> FileReceipt:
    receipt = rx.from_iterable(case.items()).pipe(*case.before, case.sink(path)).run()
    assert isinstance(receipt, FileReceipt) and receipt.reason == "completed"
    return receipt


def _null_node(folder: Path) -> str:
    """A private character device that is a null device (1, 3): as root, a test that fails
    replaces this node, not the machine's ``/dev/null``. Without the right to create one,
    ``/dev/null`` itself (then a regression cannot replace it either: ``/dev`` is not ours)."""
    node = folder / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(node, "wb"):
            pass  # a mount with nodev refuses to open it
    except OSError:
        node.unlink(missing_ok=True)
        return os.devnull
    return str(node)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fifo_is_written_in_place_and_stays_a_fifo(tmp_path: Path, case: Case) -> None:
    fifo = tmp_path / f"pipe.{case.ext}"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # waits for the writer, reads to its end
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _run(case, str(fifo))
    except BaseException:
        # the sink failed, maybe before opening: free the reader (ENXIO: it is gone already)
        with contextlib.suppress(OSError), open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "wb"):
            pass
        raise
    reader.join(30)
    assert not reader.is_alive()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    case.check(got[0])
    assert os.listdir(tmp_path) == [fifo.name]  # no temporary file beside it


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_char_device_stays_a_char_device(tmp_path: Path, case: Case) -> None:
    node = _null_node(tmp_path)
    _run(case, node)
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.listdir(tmp_path) == ([] if node == os.devnull else ["null"])


@pytest.mark.parametrize("case", [CASES[0], CASES[1]], ids=IDS[:2])
def test_dev_null_stays_a_char_device(tmp_path: Path, case: Case) -> None:
    # the same sink on a private null node first: a regression that would replace the
    # machine's /dev/null (as root) fails here, before /dev/null is touched
    node = _null_node(tmp_path)
    _run(case, node)
    assert stat.S_ISCHR(os.lstat(node).st_mode)
    _run(case, os.devnull)
    st = os.lstat(os.devnull)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_symlink_is_followed_and_stays_a_symlink(tmp_path: Path, case: Case) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    real = tmp_path / "real" / f"out.{case.ext}"
    real.write_bytes(b"old")
    link = tmp_path / "links" / f"out.{case.ext}"
    link.symlink_to(os.path.join("..", "real", real.name))
    receipt = _run(case, str(link))
    assert receipt.path == str(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "real", real.name)
    assert stat.S_ISREG(os.lstat(real).st_mode)
    case.check(real.read_bytes())
    # the target was replaced in its own folder: nothing left beside either
    assert os.listdir(tmp_path / "real") == [real.name]
    assert os.listdir(tmp_path / "links") == [link.name]


@pytest.mark.parametrize("case", CASES[:2], ids=IDS[:2])
def test_dangling_symlink_creates_its_target(tmp_path: Path, case: Case) -> None:
    link = tmp_path / f"out.{case.ext}"
    link.symlink_to(f"made.{case.ext}")
    _run(case, str(link))
    assert link.is_symlink()
    case.check((tmp_path / f"made.{case.ext}").read_bytes())
    assert sorted(os.listdir(tmp_path)) == sorted([link.name, f"made.{case.ext}"])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_refused_targets(tmp_path: Path, case: Case) -> None:
    d = tmp_path / f"dir.{case.ext}"
    d.mkdir()
    with pytest.raises(ConfigError, match="is a directory; give a file name"):
        case.sink(str(d))
    loop = tmp_path / f"loop.{case.ext}"
    loop.symlink_to(loop.name)
    with pytest.raises(ConfigError, match="symlink loop"):
        case.sink(str(loop))
    gone = tmp_path / f"gone.{case.ext}"
    gone.symlink_to(os.path.join("nowhere", "x"))
    with pytest.raises(ConfigError, match=r"nowhere.* does not exist"):
        case.sink(str(gone))
    sock_path = tmp_path / f"s.{case.ext}"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(ConfigError, match="is a socket"):
            case.sink(str(sock_path))
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode) and loop.is_symlink() and d.is_dir()


def test_wavdir_files_that_are_symlinks_stay_symlinks(tmp_path: Path) -> None:
    out, keep = tmp_path / "out", tmp_path / "keep"
    out.mkdir()
    keep.mkdir()
    (out / "utt-0001.wav").symlink_to(keep / "first.wav")
    (out / "utt.jsonl").symlink_to(keep / "labels.jsonl")
    utts = [_utt(16000, 32000, 0), _utt(48000, 56000, 1)]
    receipt = rx.from_iterable(utts).pipe(to_utterances(str(out))).run()
    assert receipt.frames == 2
    assert (out / "utt-0001.wav").is_symlink() and (out / "utt.jsonl").is_symlink()
    assert sf.info(str(keep / "first.wav")).frames == 16000
    assert len((keep / "labels.jsonl").read_text().splitlines()) == 2
    assert sorted(os.listdir(keep)) == ["first.wav", "labels.jsonl"]


# --- the resolver itself ------------------------------------------------------------------


def test_target_resolves_as_filesink_does(tmp_path: Path) -> None:
    plain = tmp_path / "a.txt"
    t = target(str(plain))
    assert (t.final, t.direct, t.tmp) == (str(plain), False, str(tmp_path / ".a.txt.partial"))
    plain.write_text("x")
    link = tmp_path / "l.txt"
    link.symlink_to("a.txt")
    t = target(str(link))
    assert t.final == str(plain) and not t.direct and t.tmp == str(tmp_path / ".a.txt.partial")
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    t = target(str(fifo))
    assert t.direct and t.tmp == t.final == str(fifo)
    chain = tmp_path / "c"
    chain.symlink_to("f")  # a link to a FIFO: the FIFO, in place
    assert target(str(chain)).direct and target(str(chain)).final == str(fifo)


def test_atomic_path_through_a_symlink_and_into_a_fifo(tmp_path: Path) -> None:
    real = tmp_path / "r.txt"
    real.write_text("old")
    link = tmp_path / "l.txt"
    link.symlink_to("r.txt")
    with atomic_path(str(link)) as tmp:
        Path(tmp).write_text("new")
    assert link.is_symlink() and real.read_text() == "new"
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    with atomic_path(str(fifo)) as tmp:
        assert tmp == str(fifo)
        Path(tmp).write_text("through")
    reader.join(30)
    assert got == ["through"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def _zip_names(b: bytes) -> Iterator[str]:
    with zipfile.ZipFile(io.BytesIO(b)) as z:
        yield from z.namelist()


def test_streamed_npz_holds_every_array(tmp_path: Path) -> None:
    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    rx.from_iterable(AUDIO).pipe(mfcc(), to_features(str(fifo))).run()
    reader.join(30)
    assert sorted(_zip_names(got[0])) == ["columns.npy", "meta.npy", "times.npy", "values.npy"]
