"""Ctrl-C in a script: the pipeline stops at once and the WAV is final.

Each test runs a small script in a child Python and sends it SIGINT (or has one of the child's
threads take one) at a moment the child announces on stdout: while the main thread waits for
the chain, which is where a user's Ctrl-C lands. Nothing depends on how fast the machine is:
waits are bounded generously and nothing asserts a duration. SIGINT during the interpreter's
start-up is left out on purpose: CPython itself can swallow it there (``site`` reports a
KeyboardInterrupt inside a ``.pth`` import as "Error processing line", importlib's module-lock
weakref callback prints "Exception ignored"), before any rxaudio code runs.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rxaudio.io.wav import partial_name

WAIT_S = 120  # for the child to reach the moment it announces (start-up on a loaded machine)


EXIT_S = 60  # for the child to exit after the signal (the whole sample plays in 17 s)


PRELUDE = """\
import os, signal, sys, threading, time
import soundfile  # imported here, not lazily while the chain is built
from reactivex import operators as ops
from rxaudio.sources import from_file
from rxaudio.sinks import to_wav
SPEECH, OUT = sys.argv[1], sys.argv[2]
PARTIAL = os.path.join(os.path.dirname(OUT), "." + os.path.basename(OUT) + ".partial")
MAIN = threading.main_thread().ident

def say(*words):
    print(*words, flush=True)

def main_waits():
    # the main thread is blocked waiting for the chain (in run(), or the script's own wait),
    # not still subscribing
    f, names = sys._current_frames().get(MAIN), []
    while f is not None:
        names.append(f.f_code.co_name)
        f = f.f_back
    return names[:1] == ["wait"] and "subscribe" not in names

count = [0]
announced = []

def tap_at(start, then=lambda: None):
    # counts frames; at the first frame from ``start`` on while the main thread waits, says
    # "streaming" (before to_wav writes that frame) and calls ``then``
    def tap(f):
        count[0] += 1
        if f.start >= start and not announced and main_waits():
            announced.append(f.start)
            say("streaming")
            then()
    return ops.do_action(tap)
"""


RUN = """\
try:
    chain.run()
except KeyboardInterrupt:
    # what a script that catches Ctrl-C and goes on finds: the file final, the source stopped
    say("final", os.path.exists(OUT), os.path.exists(PARTIAL))
    seen = count[0]
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join(timeout=60)
    say("frames after", count[0] - seen)
    raise
"""


def _sigint_at_default() -> None:
    # runs in the child before exec: a foreground script's Ctrl-C finds SIGINT at its default.
    # A test runner started as a background job (`make test &`) has SIGINT ignored, passes that
    # on, and Python then installs no KeyboardInterrupt handler at all.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """A child Python running ``PRELUDE + body`` (argv: the speech sample, the output)."""

    def __init__(self, body: str, speech_path: str, out: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + body, speech_path, str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: lines read here and by communicate() are never lost
            preexec_fn=_sigint_at_default,
        )
        self._buf = b""
        self.lines: list[str] = []
        self.err = ""

    def expect(self, word: str) -> None:
        """Wait (bounded) for the next line from the child, which must be ``word``."""
        stdout = self.proc.stdout
        assert stdout is not None
        while b"\n" not in self._buf:
            ready, _, _ = select.select([stdout], [], [], WAIT_S)
            chunk = os.read(stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.proc.kill()
                _, err = self.proc.communicate()
                raise AssertionError(
                    f"child said {self._buf!r}, not {word!r} (exit {self.proc.returncode}); "
                    f"stderr:\n{err.decode()}"
                )
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        assert line.decode() == word, (line, self._buf)

    def finish(self) -> None:
        """Wait (bounded) for the exit; keep the rest of stdout, and stderr."""
        try:
            out, err = self.proc.communicate(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"child did not exit; stderr:\n{err.decode()}") from None
        self.lines = (self._buf + out).decode().splitlines()
        self.err = err.decode()

    @property
    def interrupted(self) -> bool:
        """Whether the child ended by KeyboardInterrupt (exit by SIGINT: 130 in a shell)."""
        return self.proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in self.err


def _assert_final_prefix(out: Path, speech: np.ndarray, at_least: int) -> None:
    """The WAV is final (renamed, no partial), whole blocks, a strict prefix of the sample."""
    assert not Path(partial_name(str(out))).exists()
    assert os.listdir(out.parent) == [out.name]  # no scratch file either
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and y.shape[0] % 1600 == 0
    assert at_least <= y.shape[0] < speech.shape[0], "the whole sample played: SIGINT was lost"
    assert np.allclose(y, speech[: y.shape[0]], atol=1 / 32768)


@pytest.mark.parametrize("at", [0, 3200, 160000])
def test_ctrl_c_leaves_run_with_the_file_final_and_the_source_stopped(
    tmp_path: Path, speech_path: str, speech: np.ndarray, at: int
) -> None:
    # at the first block (before it is written), two blocks in, ten seconds in
    out = tmp_path / "x.wav"
    body = f"chain = from_file(SPEECH, block_size=1600, realtime=True).pipe(tap_at({at}), "
    child = Child(body + "to_wav(OUT))\n" + RUN, speech_path, out)
    child.expect("streaming")
    child.proc.send_signal(signal.SIGINT)
    child.finish()
    assert child.interrupted, child.err
    # before the fix the chain ran on until interpreter exit: the file was still a partial
    # when KeyboardInterrupt left run(), and the source played the whole sample meanwhile
    assert child.lines[0] in ("final True False", "final False False"), child.lines
    assert child.lines[1] in ("frames after 0", "frames after 1"), child.lines
    if child.lines[0] == "final False False":  # stopped before the first block was written
        assert at == 0 and os.listdir(tmp_path) == []
    else:
        _assert_final_prefix(out, speech, at)


def test_ctrl_c_taken_by_another_thread_still_stops_run(
    tmp_path: Path, speech_path: str, speech: np.ndarray
) -> None:
    # The kernel may hand a process's SIGINT to any thread that does not block it (and
    # raise() in a library runs the handler on the calling thread); Python then only flags it
    # for the main thread. Here the pacing thread takes it. An untimed wait on the main thread
    # is never woken by that: before the fix the whole sample played, then KeyboardInterrupt.
    out = tmp_path / "x.wav"
    body = """\
def take_sigint():
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
chain = from_file(SPEECH, block_size=1600, realtime=True).pipe(
    tap_at(3200, take_sigint), to_wav(OUT)
)
"""
    child = Child(body + RUN, speech_path, out)
    child.expect("streaming")
    child.finish()
    assert child.interrupted, child.err
    assert child.lines[0] == "final True False", child.lines
    _assert_final_prefix(out, speech, 3200)


def test_ctrl_c_before_any_audio_disposes_and_leaves_no_file(
    tmp_path: Path, speech_path: str
) -> None:
    # subscribed, no frame yet, the main thread waiting in run(): the chain is disposed and
    # no file is written, not even a partial
    out = tmp_path / "x.wav"
    body = """\
import reactivex
from reactivex.disposable import Disposable
def announce():
    while not main_waits():
        time.sleep(0.005)
    say("subscribed")
def subscribe(observer, scheduler=None):
    threading.Thread(target=announce, daemon=True).start()
    return Disposable(lambda: say("disposed"))
reactivex.create(subscribe).pipe(to_wav(OUT)).run()
"""
    child = Child(body, speech_path, out)
    child.expect("subscribed")
    child.proc.send_signal(signal.SIGINT)
    child.finish()
    assert child.interrupted, child.err
    assert child.lines == ["disposed"]  # before the fix nothing disposed the chain
    assert os.listdir(tmp_path) == []


def test_ctrl_c_in_a_script_that_subscribes_and_waits_itself(
    tmp_path: Path, speech_path: str, speech: np.ndarray
) -> None:
    # no run(), so nothing disposes the chain: the file is finalized at interpreter exit
    out = tmp_path / "x.wav"
    body = """\
from_file(SPEECH, block_size=1600, realtime=True).pipe(tap_at(3200), to_wav(OUT)).subscribe()
threading.Event().wait()
"""
    child = Child(body, speech_path, out)
    child.expect("streaming")
    child.proc.send_signal(signal.SIGINT)
    child.finish()
    assert child.interrupted, child.err
    _assert_final_prefix(out, speech, 3200)
