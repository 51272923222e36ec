"""Long and deep pipelines: a thousand elements in a row run to the end, nesting too deep is one
clear error, and whatever fails while a pipeline runs reaches ``Pipeline.run`` as an error
instead of leaving it waiting for ever (issue 21, item 6).

The command-line cases run in a subprocess with a timeout, so that a hang fails the test."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from reactivex import Observable, abc

from rxaudio.core.caps import Caps
from rxaudio.core.element import map_operator
from rxaudio.frames import AudioFrame
from rxaudio.pipeline.launch import MAX_DEPTH, Branch, LaunchError, Pipeline, parse_launch
from rxaudio.sinks import to_wav
from rxaudio.sources import from_file

pytestmark = pytest.mark.timeout(300)

RATE = 16000


def _input(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    samples = (0.05 * rng.standard_normal(RATE)).astype(np.float32)
    path = tmp_path / "in.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    return path, samples


def _launch(text: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxaudio.apps.cli", "launch", text],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,  # a hang raises TimeoutExpired: the test fails, it does not stall
        check=False,
    )


def _run_in_thread(pipeline: Pipeline, timeout: float = 30) -> BaseException | None:
    """``pipeline.run()`` on a thread; what it raised (None if it returned). Fails on a hang."""
    raised: list[BaseException | None] = []

    def target() -> None:
        try:
            pipeline.run()
            raised.append(None)
        except BaseException as exc:
            raised.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "Pipeline.run never returned: the end of the run was lost"
    return raised[0]


@pytest.mark.parametrize(("n", "db"), [(1000, 0.01), (5000, 0.002)])
def test_thousands_of_gains_run_to_the_end_and_multiply_right(
    tmp_path: Path, n: int, db: float
) -> None:
    # 1,000 gains used to hang for ever: a fused run called each stage from inside the last
    path, samples = _input(tmp_path)
    text = (
        f"file location={path} ! "
        + " ! ".join([f"gain db={db}"] * n)
        + " ! wav location=out.wav subtype=FLOAT"
    )
    done = _launch(text, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == RATE and out.shape == samples.shape
    factor = 10 ** (n * db / 20)  # 10 dB in all
    np.testing.assert_allclose(out, samples * factor, rtol=2e-3, atol=1e-6)


def test_300_nested_tees_are_one_error_line_and_exit_2(tmp_path: Path) -> None:
    # used to print a 4,018-line RecursionError traceback and never exit
    path, _ = _input(tmp_path)
    text = (
        f"file location={path} ! tee name=t0 "
        + " ".join(f"t{i}. ! tee name=t{i + 1}" for i in range(299))
        + " t299. ! wav location=out.wav"
    )
    done = _launch(text, tmp_path)
    assert done.returncode == 2
    first, *rest = done.stderr.splitlines()
    assert first.startswith("rxaudio launch: error: pipeline too deep: 101 hops")
    assert f"at most {MAX_DEPTH}" in first and "t. ! a  t. ! b" in first
    assert len(rest) <= 2 and "Traceback" not in done.stderr  # the caret excerpt only
    assert not (tmp_path / "out.wav").exists()


def test_a_path_at_the_depth_limit_runs_to_the_end(tmp_path: Path) -> None:
    # the limit keeps room to spare: MAX_DEPTH hops of the costliest kinds (tees and caps
    # filters, which are not fused, alternating) still run, in order, to the right file
    path, samples = _input(tmp_path)
    hops = ["tee", "audio/x-raw,rate=16000"] * MAX_DEPTH
    text = f"file location={path} ! " + " ! ".join(hops[: MAX_DEPTH - 1])
    text += f" ! wav location={tmp_path}/out.wav subtype=FLOAT"
    pipeline = parse_launch(text)
    assert _run_in_thread(pipeline, timeout=120) is None
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_array_equal(out, samples)
    with pytest.raises(LaunchError, match=f"pipeline too deep: {MAX_DEPTH + 1} hops"):
        parse_launch(text.replace(" ! wav", " ! tee ! wav"))


def test_a_long_tee_chain_builds_without_recursion(tmp_path: Path) -> None:
    # building (the branches of tee after tee) is a loop: a recursion limit far below the
    # number of tees does not matter; only the depth check refuses it
    path, _ = _input(tmp_path)
    text = f"file location={path} ! " + " ! ".join(["tee"] * 2000) + " ! wav location=o.wav"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        with pytest.raises(LaunchError, match="pipeline too deep"):
            parse_launch(text)
    finally:
        sys.setrecursionlimit(old)


def _pipeline(path: Path, operators: tuple[Any, ...], sink: Any) -> Pipeline:
    return Pipeline(
        "test",
        from_file(path),
        "file",
        Caps(RATE, 1, None),
        [Branch("file", ("a", "b"), operators, sink, "sink", None, ())],
    )


def _fails_at_third_frame() -> tuple[Any, ...]:
    seen = [0]

    def maybe_fail(f: AudioFrame) -> AudioFrame:
        seen[0] += 1
        if seen[0] == 3:
            raise ValueError("third frame")
        return f

    return (map_operator("a", lambda f: f), map_operator("b", maybe_fail))  # fused: one run


def test_an_observer_failing_while_an_error_is_reported_still_ends_the_run(
    tmp_path: Path,
) -> None:
    # The cause of the hang: a stage failed, and while the fused run reported it the
    # observer below raised (there, a RecursionError). That exception went up to the file
    # source, which sent it down again as on_error; the fused run, whose failed stage had
    # already ended, dropped it, so nothing ever reached run()'s Event. Injected here with an
    # observer that raises in on_error: run() must end, with an error.
    path, _ = _input(tmp_path)

    def breaks_on_error(source: Observable[Any]) -> Observable[Any]:
        def subscribe(
            obs: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_error(exc: Exception) -> None:
                raise RuntimeError("the sink broke while failing")

            return source.subscribe(obs.on_next, on_error, obs.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    raised = _run_in_thread(_pipeline(path, _fails_at_third_frame(), breaks_on_error))
    assert isinstance(raised, RuntimeError) and "broke while failing" in str(raised)


def test_a_sink_that_cannot_finalize_fails_the_run(tmp_path: Path) -> None:
    # teardown disposes every sink before the end is reported; one whose disposal raises used
    # to lose the completion (run() waited for ever) and left the others undisposed
    path, samples = _input(tmp_path)
    good = tmp_path / "good.wav"

    def breaks_on_dispose(source: Observable[Any]) -> Observable[Any]:
        inner = to_wav(str(good), subtype="FLOAT")(source)

        def subscribe(
            obs: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sub = inner.subscribe(obs, scheduler=scheduler)

            class Broken(abc.DisposableBase):
                def dispose(self) -> None:
                    sub.dispose()
                    raise OSError("cannot close the file")

            return Broken()

        return Observable(subscribe)

    raised = _run_in_thread(_pipeline(path, (map_operator("a", lambda f: f),), breaks_on_dispose))
    assert isinstance(raised, OSError) and "cannot close" in str(raised)
    out, _ = sf.read(good, dtype="float32")
    np.testing.assert_array_equal(out, samples)
