"""``from_file``: round trip, pacing, disposal, missing, truncated and odd files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from reactivex.testing import TestScheduler

from rxaudio.errors import FormatError, SourceError
from rxaudio.frames import AudioFrame
from rxaudio.sinks import to_wav
from rxaudio.sources import from_file
from rxaudio.testing import collect, concat


def test_from_file_roundtrip(tmp_path: object, speech_path: str, speech: np.ndarray) -> None:
    src = from_file(speech_path, block_size=4000)
    assert src.info.sample_rate == 16000 and src.info.channels == 1
    frames = collect(src)
    assert all(f.n == 4000 for f in frames[:-1])
    assert np.array_equal(concat(frames)[:, 0], speech)
    # a second subscription re-opens the file and gives the same frames
    again = collect(src)
    assert len(again) == len(frames)


def test_from_file_realtime_paces_on_the_scheduler(speech_path: str) -> None:
    sched = TestScheduler()
    got: list[float] = []
    from_file(speech_path, block_size=16000, realtime=True, scheduler=sched).subscribe(
        lambda f: got.append(sched.clock)
    )
    sched.start()
    assert np.allclose(got, np.arange(len(got)))


def test_from_file_dispose_closes(speech_path: str) -> None:
    sched = TestScheduler()
    got: list[int] = []
    sub = from_file(speech_path, block_size=1600, realtime=True, scheduler=sched).subscribe(
        lambda f: got.append(f.start)
    )
    sched.advance_to(0.25)
    sub.dispose()
    sched.start()
    assert got == [0, 1600, 3200]


def test_from_file_missing_and_not_audio(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(SourceError, match="no such file"):
        from_file(os.path.join(tmp_path, "nope.wav"))
    txt = os.path.join(tmp_path, "a.wav")
    with open(txt, "w") as f:
        f.write("this is not audio" * 100)
    with pytest.raises(SourceError, match="not an audio file"):
        from_file(txt)
    with pytest.raises(SourceError, match="directory"):
        from_file(tmp_path)


def test_from_file_truncated(tmp_path: os.PathLike[str], speech: np.ndarray) -> None:
    p = os.path.join(tmp_path, "t.wav")
    sf.write(p, speech[:16000], 16000, subtype="PCM_16")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size // 2)
    # the samples that are there are streamed, then a clear error says the file is truncated
    frames: list[AudioFrame] = []
    errors: list[BaseException] = []
    from_file(p, block_size=1000).subscribe(frames.append, errors.append)
    got = concat(frames)[:, 0]
    assert 0 < got.shape[0] < 16000
    assert np.allclose(got, speech[: got.shape[0]], atol=1 / 32768)
    assert isinstance(errors[0], SourceError)
    assert "truncated" in str(errors[0]) and f"{got.shape[0]} samples" in str(errors[0])


def test_truncated_file_through_to_wav_keeps_what_was_read(
    tmp_path: os.PathLike[str], speech: np.ndarray
) -> None:
    p = os.path.join(tmp_path, "t.wav")
    out = os.path.join(tmp_path, "copy.wav")
    sf.write(p, speech[:16000], 16000, subtype="PCM_16")
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) // 2)
    errors: list[BaseException] = []
    from_file(p, block_size=1000).pipe(to_wav(out)).subscribe(on_error=errors.append)
    assert "truncated" in str(errors[0])
    y, _ = sf.read(out, dtype="float32")
    assert 0 < y.shape[0] < 16000 and np.allclose(y, speech[: y.shape[0]], atol=1 / 32768)


def test_from_file_nan_in_float_file(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "nan.wav")
    x = np.zeros(3000, dtype=np.float32)
    x[2500] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    got: list[object] = []
    errors: list[BaseException] = []
    from_file(p, block_size=1000).subscribe(got.append, errors.append)
    assert len(got) == 2  # the blocks before the bad one arrived
    # the bad sample itself, not the start of the block it came in (that was "sample 2000")
    assert isinstance(errors[0], FormatError) and "at sample 2500 (0.156 s)" in str(errors[0])


def test_from_file_nan_reports_its_own_sample_in_any_channel(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "nan2.wav")
    x = np.zeros((48000, 2), dtype=np.float32)
    x[1000, 1] = np.inf
    x[1500, 0] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    errors: list[BaseException] = []
    from_file(p, block_size=16000).subscribe(lambda _: None, errors.append)
    assert "at sample 1000 " in str(errors[0])


def test_from_file_symlink_loop_and_dangling_link_say_so(tmp_path: os.PathLike[str]) -> None:
    loop = os.path.join(tmp_path, "loop.wav")
    os.symlink("loop.wav", loop)
    with pytest.raises(SourceError, match=r"loop.wav: symlink loop \(ELOOP"):
        from_file(loop)
    dangling = os.path.join(tmp_path, "d.wav")
    os.symlink("gone.wav", dangling)
    with pytest.raises(SourceError, match=r"a symlink to gone\.wav, which does not exist"):
        from_file(dangling)


def test_from_file_stereo_flac(tmp_path: os.PathLike[str]) -> None:
    p = os.path.join(tmp_path, "s.flac")
    x = (np.random.default_rng(0).uniform(-0.5, 0.5, (5000, 2))).astype(np.float32)
    sf.write(p, x, 44100)
    frames = collect(from_file(p, block_size=2048))
    assert frames[0].channels == 2 and frames[0].sample_rate == 44100
    assert np.allclose(concat(frames), x, atol=1e-4)
