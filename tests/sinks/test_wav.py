"""``to_wav``: complete, lossless, marbles, finalized on error, dispose and Ctrl-C."""

from __future__ import annotations

import os

import numpy as np
import pytest
import reactivex
import soundfile as sf
from reactivex import operators as ops
from reactivex.subject import Subject

from rxaudio.errors import ConfigError, FormatError, StreamError
from rxaudio.frames import AudioFrame, FileReceipt
from rxaudio.operators import level
from rxaudio.sinks import to_jsonl, to_wav
from rxaudio.sources import from_array
from rxaudio.testing import collect, frame, run_marbles


def test_to_wav_complete(tmp_path: os.PathLike[str], speech: np.ndarray) -> None:
    p = os.path.join(tmp_path, "out.wav")
    (receipt,) = collect(from_array(speech, 16000, block_size=512).pipe(to_wav(p)))
    assert isinstance(receipt, FileReceipt)
    assert receipt.samples == speech.shape[0] and receipt.reason == "completed"
    y, sr = sf.read(p, dtype="float32")
    assert sr == 16000 and np.allclose(y, speech, atol=1 / 32768)
    assert os.listdir(tmp_path) == ["out.wav"]


def test_to_wav_run_returns_the_receipt_and_raises_the_error(
    tmp_path: os.PathLike[str], speech: np.ndarray
) -> None:
    p = os.path.join(tmp_path, "r.wav")
    receipt = from_array(speech, 16000, block_size=512).pipe(to_wav(p)).run()
    assert receipt.reason == "completed" and receipt.samples == speech.shape[0]
    q = os.path.join(tmp_path, "e.wav")
    boom = RuntimeError("mic unplugged")
    failing = reactivex.concat(from_array(speech[:1000], 16000), reactivex.throw(boom))
    with pytest.raises(RuntimeError, match="mic unplugged"):
        failing.pipe(to_wav(q)).run()
    assert sf.info(q).frames == 1000  # final before the error was raised


def test_to_wav_float_is_lossless(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "f.wav")
    x = np.random.default_rng(1).uniform(-1, 1, (3000, 2)).astype(np.float32)
    collect(from_array(x, 48000, block_size=1000).pipe(to_wav(p, subtype="FLOAT")))
    y, sr = sf.read(p, dtype="float32")
    assert np.array_equal(y, x) and sr == 48000


def test_to_wav_marbles_and_upstream_error(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "e.wav")
    boom = RuntimeError("mic unplugged")
    out = run_marbles("-a-b-#", {"a": frame(0, 100), "b": frame(100, 100)}, to_wav(p), error=boom)
    assert out.marbles() == "-----(x#)"
    assert out.values[0].samples == 200 and out.values[0].reason == "error"
    assert out.error is boom
    y, _ = sf.read(p)
    assert y.shape[0] == 200


def test_to_wav_dispose_finalizes(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "d.wav")
    src = {k: frame(i * 100, 100) for i, k in enumerate("abc")}
    out = run_marbles("-a-b-c-|", src, to_wav(p), dispose_at=4)
    assert out.values == [] and not out.completed
    info = sf.info(p)
    assert info.frames == 200
    assert not os.path.exists(os.path.join(tmp_path, ".d.wav.partial"))


def test_to_wav_header_valid_while_writing(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "live.wav")
    subj: Subject[AudioFrame] = Subject()
    subj.pipe(to_wav(p)).subscribe()
    subj.on_next(frame(0, 300))
    subj.on_next(frame(300, 300))
    partial = os.path.join(tmp_path, ".live.wav.partial")
    assert not os.path.exists(p)
    assert sf.info(partial).frames == 600  # a reader sees a valid file mid-stream
    subj.on_completed()
    assert sf.info(p).frames == 600


def test_to_wav_nan_keeps_what_was_written(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "nan.wav")
    bad = AudioFrame(np.full((100, 1), np.nan, dtype=np.float32), 16000, 100)
    out = run_marbles("-a-b-c-|", {"a": frame(0, 100), "b": bad, "c": frame(200, 100)}, to_wav(p))
    assert isinstance(out.error, StreamError) and "NaN" in str(out.error)
    assert out.error.sample_index == 100
    assert sf.info(p).frames == 100
    q = os.path.join(tmp_path, "nan2.wav")
    late = np.zeros((100, 1), dtype=np.float32)
    late[30] = np.nan
    out = run_marbles("-a-b-|", {"a": frame(0, 100), "b": AudioFrame(late, 16000, 100)}, to_wav(q))
    assert "at sample 130 (in the frame from 100)" in str(out.error)


def test_to_wav_format_change_refused(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "fmt.wav")
    src = {"a": frame(0, 100), "b": frame(100, 100, sample_rate=8000)}
    out = run_marbles("-a-b-|", src, to_wav(p))
    assert isinstance(out.error.__cause__, FormatError)  # type: ignore[union-attr]
    assert sf.info(p).frames == 100


def test_to_wav_empty_stream_writes_nothing(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "empty.wav")
    out = run_marbles("--|", {}, to_wav(p))
    assert out.values[0].reason == "empty" and not os.path.exists(p)


def test_to_wav_bad_target(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        to_wav(os.path.join(tmp_path, "no", "such", "dir.wav"))
    with pytest.raises(ConfigError, match="directory"):
        to_wav(tmp_path)
    with pytest.raises(ConfigError, match="subtype"):
        to_wav(os.path.join(tmp_path, "x.wav"), subtype="MP3")


def test_sinks_fan_out_with_share(tmp_path: os.PathLike[str], speech: np.ndarray) -> None:
    wav = os.path.join(tmp_path, "a.wav")
    log = os.path.join(tmp_path, "a.jsonl")
    src = from_array(speech, 16000, block_size=800).pipe(ops.publish())
    receipts: list[FileReceipt] = []
    src.pipe(to_wav(wav)).subscribe(receipts.append)
    src.pipe(level(), to_jsonl(log)).subscribe(receipts.append)
    src.connect()  # type: ignore[attr-defined]
    assert sorted(r.path for r in receipts) == sorted([wav, log])
    assert sf.info(wav).frames == speech.shape[0]


def test_to_wav_fills_gaps_and_refuses_overlaps(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "gap.wav")
    # a block dropped at capture: frames at 100 and 300, 100 samples each, stream starts at 100
    out = run_marbles(
        "-a-b-|", {"a": frame(100, 100, value=0.5), "b": frame(300, 100, value=0.5)}, to_wav(p)
    )
    assert out.completed and out.values[0].samples == 300
    y, _ = sf.read(p, dtype="float32")
    assert np.allclose(y[:100], 0.5, atol=1e-4) and np.all(y[100:200] == 0)
    assert np.allclose(y[200:], 0.5, atol=1e-4)
    p2 = os.path.join(tmp_path, "overlap.wav")
    bad = run_marbles("-a-b-|", {"a": frame(0, 100), "b": frame(50, 100)}, to_wav(p2))
    assert "overlap" in str(bad.error) and sf.info(p2).frames == 100


def test_ctrl_c_in_a_script_still_finalizes_the_wav(
    tmp_path: os.PathLike[str], speech_path: str, speech: np.ndarray
) -> None:
    import select
    import signal
    import subprocess
    import sys

    out = os.path.join(tmp_path, "x.wav")
    # the child says when two blocks are in the file (the tap sees block 3 after to_wav wrote
    # blocks 1 and 2): signalling on that line, not on a clock, holds however slowly it starts
    script = (
        "from reactivex import operators as ops\n"
        "from rxaudio.sources import from_file\n"
        "from rxaudio.sinks import to_wav\n"
        "def tap(f):\n"
        "    if f.start == 3200:\n"
        "        print('streaming', flush=True)\n"
        f"from_file({speech_path!r}, block_size=1600, realtime=True).pipe(\n"
        f"    ops.do_action(tap), to_wav({out!r})\n"
        ").run()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C reaches a foreground script whose SIGINT is at its default; a runner that
        # starts the suite as a background job (`make test &`) passes SIGINT ignored, and then
        # Python installs no KeyboardInterrupt handler at all
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        assert line == "streaming\n", f"child never streamed: {line!r} {proc.poll()}"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # a lost SIGINT lets the whole file play and the script exit 0: both fail here
    assert proc.returncode == -signal.SIGINT, err
    assert "KeyboardInterrupt" in err
    assert os.path.exists(out) and not os.path.exists(os.path.join(tmp_path, ".x.wav.partial"))
    y, _ = sf.read(out, dtype="float32")
    assert 3200 <= y.shape[0] < speech.shape[0] and y.shape[0] % 1600 == 0
    assert np.allclose(y, speech[: y.shape[0]], atol=1 / 32768)
