"""Real capture: PortAudio records PulseAudio's pipe source while a feeder writes known audio."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import rxaudio_tests_virtual_mic as vm
from reactivex import operators as ops

from rxaudio.errors import DeviceError
from rxaudio.frames import AudioFrame
from rxaudio.sources import from_microphone

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

RATE = 16000


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``cond`` until true; fail (never hang) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Collector:
    """Thread-safe list of the frames and terminal events a subscriber saw."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []
        self.errors: list[Exception] = []
        self.lock = threading.Lock()

    def on_next(self, f: AudioFrame) -> None:
        with self.lock:
            self.frames.append(f)

    def on_error(self, e: Exception) -> None:
        self.errors.append(e)

    @property
    def samples(self) -> int:
        with self.lock:
            return sum(f.n for f in self.frames)

    def signal(self) -> np.ndarray:
        with self.lock:
            return np.concatenate([f.samples[:, 0] for f in self.frames])


def record_known(mic: Any, source: Any, x: np.ndarray, tail: float = 0.5) -> Collector:
    """Subscribe, wait for audio to flow, play ``x``, keep ``tail`` s more, dispose."""
    got = Collector()
    sub = source.subscribe(got.on_next, got.on_error)
    try:
        wait_until(lambda: got.samples > 0, 10, "the first captured block")
        done = mic.play(x)
        assert done.wait(len(x) / RATE + 10), "feeder did not write the known audio"
        target = got.samples + int(tail * RATE)
        wait_until(lambda: got.samples >= target, 10, "the tail of the known audio")
    finally:
        sub.dispose()
    assert not got.errors, got.errors
    return got


def test_recording_equals_the_source(virtual_mic: Any, speech: np.ndarray) -> None:
    x = speech[RATE : 4 * RATE]  # 3 s containing the first sentence
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, block_size=512)
    got = record_known(virtual_mic, mic, x)
    y = got.signal()
    peak, lag = vm.ncc_peak(y, x)
    assert peak > 0.99, f"normalized cross-correlation peak {peak:.4f} at lag {lag}"
    # through a 16 kHz s16le pipe the capture is exact: sample for sample after int16 rounding
    assert np.array_equal(vm.to_pcm16(y[lag : lag + len(x)]), vm.to_pcm16(x))
    starts = [f.start for f in got.frames]
    assert starts == list(range(0, 512 * len(starts), 512))
    assert all(f.sample_rate == RATE and f.channels == 1 for f in got.frames)
    assert mic.stats.opens == 1 and mic.stats.closes == 1
    assert mic.stats.dropped_blocks == 0 and mic.stats.overruns == 0


def test_two_subscribers_through_share_open_the_device_once(virtual_mic: Any) -> None:
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, block_size=512)
    shared = mic.pipe(ops.share())
    a, b = Collector(), Collector()
    sa = shared.subscribe(a.on_next, a.on_error)
    sb = shared.subscribe(b.on_next, b.on_error)
    try:
        wait_until(lambda: b.samples >= 4 * 512, 10, "blocks on the second subscriber")
        assert virtual_mic.source_outputs() == 1
        assert mic.stats.opens == 1
    finally:
        sa.dispose()
        assert mic.stats.closes == 0  # the second subscriber still holds the device
        sb.dispose()
    assert mic.stats.opens == 1 and mic.stats.closes == 1
    first_b = b.frames[0].start
    a_by_start = {f.start: f for f in a.frames}
    assert first_b in a_by_start and a_by_start[first_b] is b.frames[0]  # the same frames


def test_dispose_closes_the_stream_and_resubscribe_starts_fresh(virtual_mic: Any) -> None:
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, block_size=256)
    for round_ in (1, 2):
        got = Collector()
        sub = mic.subscribe(got.on_next, got.on_error)
        wait_until(lambda g=got: g.samples >= 1024, 10, "captured audio")
        assert virtual_mic.source_outputs() == 1
        sub.dispose()
        assert mic.stats.closes == round_
        wait_until(lambda: virtual_mic.source_outputs() == 0, 5, "the server to drop the stream")
        n = len(got.frames)
        time.sleep(0.2)
        assert len(got.frames) == n, "frames arrived after dispose"
        assert got.frames[0].start == 0  # a new subscription counts from sample 0 again
    assert mic.stats.opens == 2


def test_slow_consumer_drops_are_counted(virtual_mic: Any) -> None:
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, block_size=256, queue_blocks=2)
    got = Collector()

    def slow(f: AudioFrame) -> None:
        got.on_next(f)
        time.sleep(0.1)  # a consumer far slower than 16 ms blocks

    sub = mic.subscribe(slow, got.on_error)
    try:
        wait_until(
            lambda: mic.stats.dropped_blocks >= 5 and len(got.frames) >= 8,
            15,
            "dropped blocks while the consumer keeps taking some",
        )
    finally:
        sub.dispose()
    stats = mic.stats
    assert stats.blocks == len(got.frames)
    assert stats.max_queue_depth <= 2
    starts = [f.start for f in got.frames]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    gaps = sum((b - a) // 256 - 1 for a, b in itertools.pairwise(starts))
    assert gaps >= 5  # the sample index keeps counting through the dropped blocks
    assert gaps <= stats.dropped_blocks


def test_missing_device_names_it_and_lists_the_devices(virtual_mic: Any) -> None:
    with pytest.raises(DeviceError) as info:
        from_microphone("no-such-microphone")
    msg = str(info.value)
    assert "no-such-microphone" in msg and "'pulse'" in msg


def test_unsupported_rate_names_the_device_and_what_it_supports(virtual_mic: Any) -> None:
    with pytest.raises(DeviceError) as info:
        from_microphone(virtual_mic.device, sample_rate=1_000_000)
    msg = str(info.value)
    assert "'pulse'" in msg and "1000000 Hz" in msg
    assert "16000" in msg and "48000" in msg  # the rates it does support


def test_too_many_channels_names_the_maximum(virtual_mic: Any) -> None:
    with pytest.raises(DeviceError) as info:
        from_microphone(virtual_mic.device, channels=64)
    msg = str(info.value)
    assert "'pulse'" in msg and "cannot capture 64 channels: it has at most 32" in msg


def test_open_failure_at_subscribe_is_an_error_not_a_hang(virtual_mic: Any) -> None:
    mic = from_microphone("no-such-microphone", check=False)
    got = Collector()
    mic.subscribe(got.on_next, got.on_error)
    assert len(got.errors) == 1 and isinstance(got.errors[0], DeviceError)
    assert "no-such-microphone" in str(got.errors[0])
    assert mic.stats.opens == 0


def test_subscriber_exception_ends_the_stream_with_it(virtual_mic: Any) -> None:
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, block_size=512)
    errors: list[Exception] = []

    def boom(_f: AudioFrame) -> None:
        raise ValueError("subscriber failed")

    mic.subscribe(boom, errors.append)
    wait_until(lambda: len(errors) == 1, 10, "the error to reach the subscriber")
    assert isinstance(errors[0], ValueError)
    wait_until(lambda: mic.stats.closes == 1, 5, "the stream to close")
    assert mic.stats.blocks == 1


def test_sound_server_going_away_is_a_device_error(tmp_path: Any) -> None:
    root = str(tmp_path) if len(str(tmp_path)) <= 80 else tempfile.mkdtemp()
    with vm.virtual_microphone(root) as own:
        mic = from_microphone(own.device, sample_rate=RATE, block_size=512)
        got = Collector()
        sub = mic.subscribe(got.on_next, got.on_error)
        wait_until(lambda: got.samples >= 2048, 10, "captured audio")
        own.proc.kill()
        wait_until(lambda: len(got.errors) == 1, 10, "a DeviceError after the server died")
        sub.dispose()
    err = got.errors[0]
    assert isinstance(err, DeviceError)
    assert "'pulse'" in str(err) and "stopped delivering audio" in str(err)
    assert mic.stats.closes == 1


def test_exit_right_after_a_chain_completes_does_not_hang(virtual_mic: Any) -> None:
    # `take` completes on the pump thread, which then closes the stream while the main thread
    # exits; PortAudio used to deadlock when its exit handler raced that close (about one run
    # in three), so try a few times.
    code = (
        "from reactivex import operators as ops\n"
        "from rxaudio.sources import from_microphone\n"
        "from rxaudio.testing import collect\n"
        "print(len(collect(from_microphone('pulse').pipe(ops.take(8)), timeout=10)))\n"
    )
    for _ in range(3):
        res = subprocess.run(
            [sys.executable, "-c", code],
            env=virtual_mic.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert res.returncode == 0 and res.stdout.strip() == "8", res.stderr


def test_stereo_capture_of_the_mono_source(virtual_mic: Any, speech: np.ndarray) -> None:
    x = speech[RATE : int(2.5 * RATE)]
    mic = from_microphone(virtual_mic.device, sample_rate=RATE, channels=2, block_size=512)
    got = record_known(virtual_mic, mic, x)
    y = np.concatenate([f.samples for f in got.frames])
    assert y.shape[1] == 2 and all(f.channels == 2 for f in got.frames)
    assert np.array_equal(y[:, 0], y[:, 1])  # PulseAudio copies the mono source to both
    peak, _ = vm.ncc_peak(y[:, 0], x)
    assert peak > 0.99, peak


def test_capture_at_48k_then_resample_to_16k(virtual_mic: Any, speech: np.ndarray) -> None:
    from rxaudio.operators import resample

    x = speech[RATE : int(2.5 * RATE)]
    mic = from_microphone(virtual_mic.device, sample_rate=48000, block_size=1536)
    got = record_known(virtual_mic, mic.pipe(resample(16000)), x)
    assert all(f.sample_rate == 16000 for f in got.frames)
    peak, lag = vm.ncc_peak(got.signal(), x)  # PulseAudio upsampled, soxr brought it back
    assert peak > 0.99, f"peak {peak:.4f} at lag {lag}"
