"""A real capture device for tests: PulseAudio's ``module-pipe-source`` fed from a thread.

:func:`virtual_microphone` starts a private ``pulseaudio`` (its own ``XDG_RUNTIME_DIR``, no
cookie, no autospawn), loads a pipe source reading a FIFO (s16le, 16 kHz, mono) and makes it
the default source. A feeder thread writes 10 ms chunks into the FIFO at real-time pace, always:
known audio when a test asks for it (:meth:`VirtualMic.play`, :meth:`VirtualMic.loop`),
silence otherwise. Without that feeder PortAudio spins on the empty pipe and ``stop()`` never
returns. ``PULSE_SERVER`` points this process (and the subprocesses given :attr:`VirtualMic.env`)
at the server, and PortAudio is re-initialised so it sees the device ``pulse``. Everything is
stopped and PortAudio re-initialised again on exit.

The server runs in the foreground as our child (``--daemonize=no``: we own its pid and stop it
with SIGTERM, then SIGKILL), in per-user mode (``--system=false``) which works as root (it only
warns) and as a normal user, with ``--disallow-exit``, no idle exit, no shm and no realtime
scheduling, so it needs neither D-Bus nor rtkit nor /dev/shm.

This module is shared by ``tests/e2e`` and ``tests/apps`` (loaded by path from their conftests).
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

RATE = 16000
CHUNK = RATE // 100  # 10 ms
SOURCE_NAME = "rxaudio_test_mic"


def reinit_portaudio() -> None:
    """Make PortAudio enumerate devices again (it does so only at initialisation).

    Streams still open or closing (a test's chain that ended on its pump thread) are closed
    first: PortAudio deadlocks when ``Pa_Terminate`` races a stream's abort.
    """
    import sounddevice as sd

    from rxaudio.sources._microphone import close_open_streams

    close_open_streams()
    sd._terminate()
    sd._initialize()


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] (or int16) -> int16."""
    if x.dtype == np.int16:
        return x
    return np.rint(np.clip(np.asarray(x, np.float64) * 32768.0, -32768, 32767)).astype(np.int16)


@dataclass
class _Play:
    pcm: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    pos: int = 0


class Feeder(threading.Thread):
    """Writes 10 ms int16 chunks into the FIFO at real-time pace until stopped."""

    def __init__(self, fifo: str) -> None:
        super().__init__(name="virtual-mic-feeder", daemon=True)
        self.fifo = fifo
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.plays: collections.deque[_Play] = collections.deque()
        self.looping: np.ndarray | None = None
        self.loop_pos = 0
        self.chunks = 0
        self.dropped = 0
        self.error: BaseException | None = None
        self.silence = np.zeros(CHUNK, dtype="<i2")

    def _next_chunk(self) -> np.ndarray:
        with self.lock:
            if self.plays:
                p = self.plays[0]
                c = p.pcm[p.pos : p.pos + CHUNK]
                p.pos += CHUNK
                if p.pos >= len(p.pcm):
                    self.plays.popleft()
                    p.done.set()
            elif self.looping is not None:
                x = self.looping
                idx = (self.loop_pos + np.arange(CHUNK)) % len(x)
                self.loop_pos = (self.loop_pos + CHUNK) % len(x)
                c = x[idx]
            else:
                c = self.silence
        if len(c) < CHUNK:
            c = np.concatenate([c, self.silence[: CHUNK - len(c)]])
        return c

    def run(self) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            # A small pipe: while no client records, PulseAudio does not read the FIFO; a
            # full default pipe (64 KiB, 2 s) would reach the next client as a burst of stale
            # audio. 4 KiB is 128 ms.
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)
        except OSError as exc:  # pragma: no cover - server gone
            self.error = exc
            return
        pending: np.ndarray | None = None
        try:
            t0 = time.monotonic()
            while not self.stop_event.is_set():
                chunk = self._next_chunk() if pending is None else pending
                try:
                    os.write(fd, chunk.astype("<i2").tobytes())
                    pending = None
                except BlockingIOError:
                    # pipe full: nobody is recording. Drop silence; keep known audio for later.
                    pending = None if chunk is self.silence else chunk
                    self.dropped += 1
                self.chunks += 1
                delay = t0 + self.chunks * CHUNK / RATE - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
        except OSError as exc:  # broken pipe once the server is gone
            if not self.stop_event.is_set():
                self.error = exc
        finally:
            os.close(fd)


class VirtualMic:
    """Handle on the running virtual microphone."""

    device = "pulse"

    def __init__(self, root: str, server: str, feeder: Feeder, proc: subprocess.Popen[bytes]):
        self.root = root
        self.server = server
        self.feeder = feeder
        self.proc = proc
        client_conf = os.path.join(root, "client.conf")
        self.env = dict(os.environ, PULSE_SERVER=server, PULSE_CLIENTCONFIG=client_conf)

    def play(self, x: np.ndarray) -> threading.Event:
        """Queue ``x`` (float or int16, 16 kHz mono) once; the event is set when all is written."""
        p = _Play(to_pcm16(np.asarray(x).reshape(-1)))
        with self.feeder.lock:
            self.feeder.plays.append(p)
        return p.done

    def loop(self, x: np.ndarray | None) -> None:
        """Write ``x`` over and over whenever nothing is queued (``None``: back to silence)."""
        with self.feeder.lock:
            self.feeder.looping = None if x is None else to_pcm16(np.asarray(x).reshape(-1))
            self.feeder.loop_pos = 0

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against this server and return its output."""
        out = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout

    def source_outputs(self) -> int:
        """How many capture streams are open on the server right now."""
        return len([ln for ln in self.pactl("list", "short", "source-outputs").splitlines() if ln])


def _wait_for(path: str, proc: subprocess.Popen[bytes], log: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError(f"pulseaudio did not come up (exit {proc.poll()}):\n{tail}")
        time.sleep(0.02)


@contextmanager
def virtual_microphone(root: str) -> Iterator[VirtualMic]:
    """Start the server, the pipe source and the feeder under ``root``; stop all on exit."""
    exe = shutil.which("pulseaudio")
    if exe is None or shutil.which("pactl") is None:
        raise RuntimeError(
            "pulseaudio/pactl not found: install Debian's pulseaudio pulseaudio-utils "
            "libasound2-plugins (scripts/setup.sh does)"
        )
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o700)
    socket = os.path.join(root, "native")
    fifo = os.path.join(root, "mic.fifo")
    log = os.path.join(root, "pulseaudio.log")
    for stale in (socket, fifo):  # left by an earlier run: the pipe source refuses to start
        if os.path.exists(stale):
            os.remove(stale)
    with open(os.path.join(root, "client.conf"), "w", encoding="utf-8") as f:
        f.write("autospawn = no\nenable-shm = no\n")
    env = dict(os.environ, XDG_RUNTIME_DIR=root, HOME=root)
    env.pop("PULSE_SERVER", None)
    cmd = [
        exe,
        "--daemonize=no",
        "--system=false",
        "--exit-idle-time=-1",
        "--disallow-exit",
        "-n",
        "--use-pid-file=no",
        "--disable-shm=yes",  # containers often restrict /dev/shm; a pipe source needs no speed
        "--realtime=no",  # no rtkit over D-Bus (absent on CI)
        "--high-priority=no",
        "--log-target=stderr",
        f"--load=module-native-protocol-unix auth-anonymous=1 socket={socket}",
        f"--load=module-pipe-source source_name={SOURCE_NAME} file={fifo} format=s16le "
        f"rate={RATE} channels=1",
    ]
    logf = open(log, "wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
    )
    old_env = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_CLIENTCONFIG")}
    feeder = Feeder(fifo)
    mic: VirtualMic | None = None
    try:
        _wait_for(socket, proc, log, 10.0)
        _wait_for(fifo, proc, log, 10.0)
        feeder.start()
        mic = VirtualMic(root, f"unix:{socket}", feeder, proc)
        mic.pactl("set-default-source", SOURCE_NAME)
        os.environ["PULSE_SERVER"] = mic.server
        os.environ["PULSE_CLIENTCONFIG"] = mic.env["PULSE_CLIENTCONFIG"]
        reinit_portaudio()
        yield mic
    finally:
        feeder.stop_event.set()
        feeder.join(timeout=2.0)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            proc.kill()
            proc.wait(timeout=5.0)
        feeder.join(timeout=2.0)
        logf.close()
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reinit_portaudio()


def ncc_peak(recorded: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Peak of the normalized cross-correlation of ``reference`` sliding over ``recorded``.

    Returns ``(peak, lag)``: ``recorded[lag:lag + len(reference)]`` is most like the reference,
    and ``peak`` is their cosine similarity (1.0 for an exact copy at any gain).
    """
    y = np.asarray(recorded, np.float64).reshape(-1)
    x = np.asarray(reference, np.float64).reshape(-1)
    n, m = len(y), len(x)
    if n < m:
        raise ValueError(f"recording ({n} samples) is shorter than the reference ({m})")
    size = 1 << int(np.ceil(np.log2(n + m)))
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)[: n - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(y * y)])
    window = np.sqrt(np.maximum(energy[m:] - energy[:-m], 1e-20))
    ncc = corr / (window * np.linalg.norm(x))
    lag = int(np.argmax(ncc))
    return float(ncc[lag]), lag


def circular_ncc_peak(window: np.ndarray, period: np.ndarray) -> float:
    """Peak normalized correlation of a window against every rotation of a looped signal."""
    y = np.asarray(window, np.float64).reshape(-1)
    x = np.asarray(period, np.float64).reshape(-1)
    if len(y) != len(x):
        raise ValueError("window and period must have the same length")
    corr = np.fft.irfft(np.fft.rfft(y) * np.conj(np.fft.rfft(x)), len(x))
    return float(corr.max() / (np.linalg.norm(y) * np.linalg.norm(x)))
