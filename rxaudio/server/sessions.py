"""Sessions and outboxes: one live pipeline per session, bounded per-connection queues.

A :class:`Session` owns an input :class:`~reactivex.subject.Subject` of audio frames, the
operator chain built from its options, the files it writes (utterance WAVs and a JSONL log
under ``out/<session id>/``) and the set of :class:`Outbox` es its events fan out to. A client
session has at most one outbox (its connection); the server-microphone session has one per
viewer. Everything runs on the asyncio loop's thread: audio from other threads (the microphone,
a real-time file) is handed over with ``call_soon_threadsafe`` exactly once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from reactivex import abc
from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler
from reactivex.subject import BehaviorSubject

from ..frames import AudioFrame, LevelFrame, Transcript, Utterance, VadFrame, vad_dict
from ..operators import ScoredWindow
from ..sinks import JsonlLog, UtteranceWriter, to_json
from ..sinks._utterances import wav_bytes
from .config import Limit
from .limits import BLOCK, StorageBudget, disk_cost
from .messages import ErrorCode, Stats, error_event
from .metrics import ServerMetrics
from .pipeline import (
    ChainOptions,
    SessionGraph,
    Settings,
    WindowBatcher,
    check_settings,
    default_settings,
    encode_item,
)
from .writer import FileJob, FileWriter

if TYPE_CHECKING:
    from ..vad.silero import BatchedStream

# events that must reach the client if at all possible: never dropped while a droppable
# (level, vad, spectrogram, stats) event is still queued
CRITICAL = frozenset(
    {"speech_start", "speech_end", "utterance", "transcript", "error", "started", "stopped"}
)
# what waits behind an utterance's file (Outbox.hold): numbered speech events and what must
# follow them; the display stream (vad, level, spectrogram, a branch's rows) goes on
WAITS = CRITICAL | {"stats"}
# numbered per session (``seq``), kept until acknowledged and sent again on resume
SPEECH = ("speech_start", "speech_end", "utterance", "transcript")
REPLAY_MAX = 1024  # unacknowledged speech events kept per session
BATCH_BYTES = 64 * 1024  # a batched message stops growing past this many characters


encode = to_json  # an event's JSON text: the one encoding, shared with the JSONL sink


def _weak_call(method: Callable[[], None]) -> Callable[[], None]:
    """Call ``method`` while its object lives (a callback that does not keep it alive)."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        m = ref()
        if m is not None:
            m()

    return call


def new_session_id(worker: int | None = None) -> str:
    """A random URL-safe session id (16 characters), never starting with ``-``.

    (An id that starts with ``-`` reads as an option when a person pastes it into a command.)
    In a worker of ``rxaudio serve --processes N`` the first character names the worker
    (:func:`~rxaudio.server.supervisor.worker_mark`), so a reconnect can be routed to it.
    """
    while True:
        sid = secrets.token_urlsafe(12)
        if worker is not None:
            from .supervisor import worker_mark

            return worker_mark(worker) + sid[1:]
        if not sid.startswith("-"):
            return sid


def new_resume_token() -> str:
    """The secret that resumes a session: sent once, in ``started``, never in a URL."""
    return secrets.token_urlsafe(24)


class Outbox:
    """A bounded, drop-oldest queue of events for one WebSocket, drained by one task.

    ``put`` never blocks: when ``maxlen`` events or ``maxbytes`` characters of them are
    waiting, the oldest droppable event is discarded (critical ones only when nothing else is
    left) and counted in ``dropped``. The
    send loop stamps each event's latency (arrival of the audio frame that caused it to the
    moment it is handed to the socket) into the metrics histogram.

    :meth:`hold` parks what :data:`WAITS` (the speech stream, ``stats``, ``stopped``, errors)
    behind an utterance file being written, in order, until the file is in place; the display
    stream is queued as usual meanwhile (docs/protocol.md, "Order").
    """

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        metrics: ServerMetrics,
        *,
        maxlen: int = 256,
        maxbytes: int = 1 << 20,
    ) -> None:
        self._send = send
        self.metrics = metrics
        self.maxlen = maxlen
        self.maxbytes = maxbytes
        self.bytes = 0  # characters of JSON text queued (bounded by maxbytes, as events by maxlen)
        self.queue: deque[tuple[str, str, float]] = deque()  # (type, JSON text, arrival)
        # behind a file being written (hold): (the job or None, type, JSON text, arrival)
        self.held: deque[tuple[FileJob | None, str | None, str, float]] = deque()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._closed = False
        self._busy = False
        self.batch = False  # several events per message, as a JSON array (start.batch)

    def __len__(self) -> int:
        return len(self.queue)

    def put(self, event: dict[str, Any], arrival: float) -> None:
        """Queue an event caused by audio that arrived at loop time ``arrival``."""
        self.put_text(event["type"], encode(event), arrival)

    def put_text(self, kind: str, text: str, arrival: float) -> None:
        """Queue an already encoded event of type ``kind`` (fan-out encodes once); behind a
        :meth:`hold` when of a kind that :data:`WAITS` (display events go on)."""
        if self._closed:
            return
        if self.held and kind in WAITS:
            self.held.append((None, kind, text, arrival))
            return
        self._queue(kind, text, arrival)

    def hold(
        self, job: FileJob, kind: str | None = None, text: str = "", arrival: float = 0.0
    ) -> None:
        """Send nothing that :data:`WAITS` put from now on until ``job`` is done; then
        the event ``kind``/``text`` first, unless the job failed (the event names its file)."""
        if self._closed:
            return
        if job.done and not self.held:
            if kind is not None and job.error is None:
                self._queue(kind, text, arrival)
            return
        self.held.append((job, kind, text, arrival))
        job.then(self._release)

    def _release(self, _: FileJob) -> None:
        """Queue what the holds done so far let through, in order."""
        held = self.held
        while held:
            job, kind, text, arrival = held[0]
            if job is not None and not job.done:
                break
            held.popleft()
            if kind is not None and not self._closed and (job is None or job.error is None):
                self._queue(kind, text, arrival)

    def _queue(self, kind: str, text: str, arrival: float) -> None:
        q = self.queue
        while q and (len(q) >= self.maxlen or self.bytes + len(text) > self.maxbytes):
            victim = None
            for i, (k, _, _) in enumerate(q):
                if k not in CRITICAL:
                    victim = i
                    break
            if victim is None:
                gone = q.popleft()
            else:
                gone = q[victim]
                del q[victim]
            self.bytes -= len(gone[1])
            self.dropped += 1
            self.metrics.dropped.inc()
        q.append((kind, text, arrival))
        self.bytes += len(text)
        self._wake.set()

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait (at most ``timeout`` s) until everything queued has been handed to the socket."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (self.queue or self._busy or self.held) and loop.time() < end:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Stop the send loop after what is queued now."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """Send queued events until :meth:`close` (or the socket fails).

        With :attr:`batch` (the client's ``start`` asked for it) every event queued when the
        socket is free goes out in one text message, a JSON array of the events in order (up
        to :data:`BATCH_BYTES`): no event waits for company, and a loaded server sends one
        message per session per loop turn instead of one per event."""
        loop = asyncio.get_running_loop()
        q = self.queue
        while True:
            while q:
                if self.batch and len(q) > 1:
                    texts: list[str] = []
                    arrivals: list[float] = []
                    size = 0
                    while q and size < BATCH_BYTES:
                        _, text, arrival = q.popleft()
                        texts.append(text)
                        arrivals.append(arrival)
                        size += len(text)
                    self.bytes -= size
                    payload = "[" + ",".join(texts) + "]"
                else:
                    _, payload, arrival = q.popleft()
                    self.bytes -= len(payload)
                    arrivals = [arrival]
                self._busy = True
                try:
                    await self._send(payload)
                finally:
                    self._busy = False
                tally = self.metrics.tally  # added to the series once per batcher round
                tally.events += len(arrivals)
                tally.sent(loop.time(), arrivals)
            if self._closed:
                return
            self._wake.clear()
            await self._wake.wait()


class Session:
    """One live pipeline: audio in, events out to outboxes, utterances and a log to files."""

    def __init__(
        self,
        session_id: str,
        *,
        sample_rate: int,
        channels: int,
        options: ChainOptions,
        out_dir: str | None,
        metrics: ServerMetrics,
        loop: asyncio.AbstractEventLoop,
        scheduler: abc.SchedulerBase,
        batcher: WindowBatcher | None = None,
        url_prefix: str = "/files",
        stats_every_s: float = 1.0,
        budget: StorageBudget | None = None,
        max_bytes: int | None = None,
        on_limit: Callable[[Session, Limit], None] | None = None,
        replay: bool = True,
        publish: Callable[[Session, dict[str, Any], Any], None] | None = None,
        quiet_path: bool = True,
        files: FileWriter | None = None,
    ) -> None:
        self.id = session_id
        self._publish = publish
        self.resume_token = new_resume_token()
        # speech events numbered for acknowledgement and replay (see docs/protocol.md)
        self.seq = 0
        self.acked = 0
        self.replay: deque[tuple[int, str, str]] = deque()  # (seq, type, JSON text)
        self.replay_lost = 0  # highest seq dropped from a full replay buffer, unacknowledged
        self._keep_replay = replay
        # storage limits: bytes this session wrote, the server-wide budget, who ends us
        self.written = 0
        self.max_bytes = max_bytes
        self.budget = budget
        self.storage_stopped: str | None = None  # the limit that stopped our writing
        self._on_limit = on_limit
        self.sample_rate = sample_rate
        self.channels = channels
        self.options = options
        self.metrics = metrics
        self.loop = loop
        self.outboxes: set[Outbox] = set()
        self.owner: Any = None  # the client connection feeding it (None: in grace, or shared)
        self.received = 0  # samples per channel received so far
        self.frames = 0
        self.utterances = 0
        self.closed = False
        self._closing = False  # close() began; completes after the batcher's queued windows
        self.failed: str | None = None
        self.grace: asyncio.TimerHandle | None = None
        self._stats_every = max(1, int(stats_every_s * sample_rate))
        self._next_stats = self._stats_every
        self._arrival = loop.time()
        self._url_prefix = url_prefix
        self.dir: str | None = None
        self._wavs: UtteranceWriter | None = None
        self._log: JsonlLog | None = None
        # utterance WAVs on the server's writer thread (None: written here, at once); what
        # must follow a file waits for it: its jobs in order, and (job, action) to run after
        self._files = files
        self._writing: deque[FileJob] = deque()
        self._after: deque[tuple[FileJob, Callable[[], None]]] = deque()
        self._log_closed: FileJob | None = None  # done once the log is closed (Outbox.hold)
        if out_dir is not None:
            self.dir = os.path.join(out_dir, session_id)
            os.makedirs(self.dir, exist_ok=True)
            # utterance WAVs through the sinks' writer (atomic), charged before each (_on_item)
            self._wavs = UtteranceWriter(self.dir, "utt-", labels=())
            self._log = JsonlLog(os.path.join(self.dir, "events.jsonl"))
            # the folder and the log's first block count from the start (a session that writes
            # nothing still costs them: thousands of empty sessions must show in the budget)
            self._spend(2 * BLOCK)
        # every live setting, effective values (the operators' defaults unless given)
        self.settings: BehaviorSubject[Settings] = BehaviorSubject(
            {**default_settings(), **options.settings}
        )
        self.batcher = batcher
        # the session's stream of the shared scorer: its vad's windows are scored in batches
        self.stream: BatchedStream | None = (
            batcher.shared.stream() if batcher is not None and options.backend == "silero" else None
        )
        self._utterance_ids: dict[int, int] = {}  # utterance index -> its id, until transcribed
        self.graph = SessionGraph(
            options,
            sample_rate=sample_rate,
            channels=channels,
            settings=self.settings,
            scheduler=scheduler,
            scorer=self.stream,
            deliver=AsyncIOThreadSafeScheduler(loop) if options.transcribe is not None else None,
            quiet_path=quiet_path,  # False: every window through the executor (the reference)
        )
        # what lands outside our calls (a gap timer's utterance, a transcript) is drained at
        # once; the graph refers to us only weakly, so ending us needs no cycle broken
        self._wake_call = self.graph.out.wake = _weak_call(self._drain)
        self._vad_events = "vad" in options.events
        self._draining = False

    # ---- input -------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray, arrival: float | None = None) -> None:
        """Push ``(n, channels)`` float32 samples that arrived at loop time ``arrival``."""
        if self.closed or self._closing or self.failed is not None:
            return
        self._arrival = self.loop.time() if arrival is None else arrival
        if samples.dtype == np.float32 and samples.ndim == 2 and samples.size:
            # decode_audio's samples (or a source's frames'): only our rate and count to add
            if samples.flags.writeable:  # the frame's read-only view (as AudioFrame makes
                samples = samples.view()  # it), by setflags: a microsecond less than
                samples.setflags(write=False)  # setting flags.writeable
            frame = AudioFrame.trusted(samples, self.sample_rate, self.received)
        else:  # anything else is checked, and refused with the frame's own message
            frame = AudioFrame(samples, self.sample_rate, self.received)
        n = frame.samples.shape[0]
        self.received += n
        self.frames += 1
        tally = self.metrics.tally  # added to the series once per batcher round
        tally.frames += 1
        tally.samples += n
        direct = self.graph.direct
        if direct is None:
            self._push(self.graph.push, frame)
        else:  # the common session: the graph's input without its runs (as _push, _drain)
            cut = direct.push(frame)
            out = self.graph.out
            if out.items or out.error is not None:
                self._drain()
            if cut is not None:
                windows, k = cut
                batcher = self.batcher
                if batcher is not None and self.stream is not None:
                    arrival = self._arrival
                    for i in range(windows.shape[0]):
                        batcher.add(self, windows[i], k + i, arrival)
        if self.received >= self._next_stats and not self.closed:
            self._next_stats += self._stats_every
            self.emit(self.stats())

    def _push(self, push: Callable[[Any], None], item: Any) -> None:
        """``push(item)`` into the graph, then handle what it gave: the graph's wake call is
        for what lands outside our calls, so it is off meanwhile (one drain per push, not a
        weak call and a drain per item)."""
        out = self.graph.out
        out.wake = None
        try:
            push(item)
        finally:
            if not out.closed:
                out.wake = self._wake_call
        self._drain()

    def _drain(self) -> None:
        """Handle what the graph gave: its items in order, the windows its vad cut (to the
        batcher), its error, its end."""
        if self._draining:  # called from inside an item's handling: the loop below goes on
            return
        self._draining = True
        out = self.graph.out
        try:
            while out.items:
                self._on_item(out.items.popleft())
            if out.cut:
                if self.batcher is not None and self.stream is not None:
                    for window, index in out.cut:
                        self.batcher.add(self, window, index, self._arrival)
                out.cut.clear()
            if out.error is not None:
                err, out.error = out.error, None
                self._on_error(err)
            if out.done:
                out.done = False
                self._on_completed()
        finally:
            self._draining = False

    def push_scored(self, index: int, probability: float, arrival: float) -> None:
        """Window ``index``'s probability from the batcher: on into vad and the rest of the
        chain (on a direct path of the default chain where one applies, its VadFrame
        handled here at once when nothing of the graph waits to be handled)."""
        if self.failed is None:
            self._arrival = arrival
            lane = self.graph.lane
            if (
                lane is not None
                and lane.rate
                and not self._draining
                and not self.graph.out.items
                and lane.direct(index, probability, self._vad_frame)
            ):
                out = self.graph.out
                if out.items or out.cut or out.error is not None or out.done:
                    self._drain()  # what handling the VadFrame made land (as after a push)
                return
            self._push(self.graph.push_scored, ScoredWindow(index, probability))

    def _vad_frame(
        self, a: int, b: int, p: float, speech: bool, index: int, pending: int | None
    ) -> None:
        """A direct path's window ``[a, b)``: what :meth:`_drain` does with its VadFrame as
        the one item of its push (an event at most, ``VadFrame.to_dict``'s, its speech flag
        set by hysteresis), without the frame (``index`` and ``pending`` go in no event)."""
        if self.graph.out.closed or not self._vad_events or not self.outboxes:
            return  # the graph would have dropped it; or no event is sent
        lane = self.graph.lane
        assert lane is not None
        text = encode(vad_dict(a, b, lane.rate, p, speech))  # (lane.rate: the windows')
        arrival = self._arrival
        for ob in self.outboxes:
            ob.put_text("vad", text, arrival)

    def configure(self, settings: dict[str, float]) -> Settings:
        """Merge new live settings into the running pipeline; return the effective ones.

        Raises :class:`~rxaudio.errors.ConfigError` (and keeps the old settings) when the
        operators would refuse the merged settings.
        """
        merged = {**self.settings.value, **settings}
        check_settings(merged)
        self.settings.on_next(merged)
        return merged

    def close(self, reason: str = "closed") -> None:
        """Complete the pipeline (flushing any open utterance to disk) and close the files.

        With a batcher, the pipeline completes after every window queued before, in order: at
        once, or, when ``close`` is called from inside a batcher run (from some session's
        push), as soon as that run has pushed them.
        """
        if self.closed or self._closing:
            return
        self._closing = True
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        self._arrival = self.loop.time()
        self.graph.end_input()  # phase 1 flushes; what reaches vad is cut and queued
        self._drain()
        if self.stream is not None and self.batcher is not None:
            self.batcher.end(self, lambda: self._finish(reason))
        else:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        try:
            if self.failed is None:
                self.graph.end_speech()  # open utterance -> end_of_stream, written below
                self._drain()
        finally:
            self.closed = True
            self.graph.close()
            if self.stream is not None:
                self.stream.close()
            self._write_log(
                {"type": "closed", "reason": reason, "received": self.received}, force=True
            )
            if self._files is not None and self._log is not None:
                # what the outboxes get after this (``stopped``) waits for the complete log
                self._log_closed = FileJob(None, 0)
                for ob in self.outboxes:
                    ob.hold(self._log_closed)
            self._later(self._close_log)

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            if self._files is None:
                log.close()
            else:  # after its last lines, on the writer thread
                job = self._files.submit(log.close)
                closed = self._log_closed
                if closed is not None:
                    job.then(lambda j: closed.settle(j.error))

    # ---- output ------------------------------------------------------------------------------
    def attach(self, outbox: Outbox) -> None:
        """Send this session's future events to ``outbox`` too."""
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        self.outboxes.add(outbox)

    def detach(self, outbox: Outbox) -> None:
        """Stop sending to ``outbox``."""
        self.outboxes.discard(outbox)

    def emit(self, event: dict[str, Any]) -> None:
        """Fan an event out to every attached outbox (encoded once)."""
        if self.outboxes:
            self._fan(event["type"], encode(event))

    def _fan(self, kind: str, text: str) -> None:
        for ob in self.outboxes:
            ob.put_text(kind, text, self._arrival)

    # ---- numbered speech events: acknowledgement and replay -----------------------------------
    def ack(self, seq: int) -> bool:
        """The client holds every speech event up to ``seq``; ``False`` if ``seq`` is unknown."""
        if seq > self.seq:
            return False
        self.acked = max(self.acked, seq)
        while self.replay and self.replay[0][0] <= self.acked:
            self.replay.popleft()
        return True

    def replay_to(self, outbox: Outbox, after: int) -> int:
        """Queue every kept speech event numbered above ``after``; return how many are lost.

        Lost ones are those dropped from a full replay buffer (more than ``REPLAY_MAX``
        unacknowledged); they are still in the session's ``events.jsonl``.
        """
        now = self.loop.time()
        if self._writing:  # the events of files not yet written wait for them
            outbox.hold(self._writing[-1])
        for seq, kind, text in self.replay:
            if seq > after:
                outbox.put_text(kind, text, now)
        return max(0, self.replay_lost - max(after, self.acked))

    # ---- storage limits -------------------------------------------------------------------------
    def _spend(self, n: int) -> None:
        """Count ``n`` bytes that are written whatever the limits (the session's folder and log
        block, its closing record)."""
        self.written += n
        if self.budget is not None:
            self.budget.used += n

    def _spent(self, n: int) -> bool:
        self._spend(n)
        return True

    def _charge(self, n: int) -> bool:
        """Reserve ``n`` bytes of files; on refusal stop writing, say why, and end the session."""
        if self.storage_stopped is not None:
            return False
        limit = None
        if self.max_bytes is not None and self.written + n > self.max_bytes:
            limit = Limit.SESSION_BYTES
        elif self.budget is not None and not self.budget.charge(n):
            limit = Limit.OUT_BYTES
        if limit is None:
            self.written += n
            return True
        self.storage_stopped = limit
        if limit == Limit.SESSION_BYTES:
            code = ErrorCode.SESSION_STORAGE_LIMIT
            msg = (
                f"session {self.id} reached its limit of {self.max_bytes} bytes of files "
                "(--max-session-bytes); the session ended and its files are complete; "
                "start a new session to go on"
            )
        else:
            code = ErrorCode.STORAGE_FULL
            msg = (
                "the server's output folder reached its limit (--max-out-bytes); the session "
                "ended and its files are complete; no new sessions until space is freed"
            )
        self.emit(error_event(code, msg))
        if self._on_limit is not None:
            self._on_limit(self, limit)
        return False

    def stats(self) -> dict[str, Any]:
        """A ``stats`` event for this session."""
        return Stats(
            session=self.id,
            received=self.received,
            seconds=round(self.received / self.sample_rate, 3),
            frames=self.frames,
            utterances=self.utterances,
            dropped=sum(ob.dropped for ob in self.outboxes),
            queue=max((len(ob) for ob in self.outboxes), default=0),
        ).encode()

    def file_url(self, name: str) -> str:
        """URL under which the server serves this session's file ``name``."""
        return f"{self._url_prefix}/{self.id}/{name}"

    def _write_log(self, record: dict[str, Any], *, force: bool = False) -> None:
        self._later(partial(self._log_now, record, force))  # after the files it names

    def _log_now(self, record: dict[str, Any], force: bool) -> None:
        log = self._log
        if log is not None:
            # the closing record is written whatever the limits: a complete log matters more
            # than a few bytes
            line = log.line(record, self._spent if force else self._charge)
            if line is None:
                return
            if self._files is None:
                log.append(line)
            else:  # on the writer thread, after the files submitted before it
                self._files.submit(partial(log.append, line)).then(self._log_written)

    def _log_written(self, job: FileJob) -> None:
        if isinstance(job.error, Exception):  # as a log line that failed here failed us
            self._on_error(job.error)

    # ---- files written on the writer thread ----------------------------------------------------
    def _later(self, action: Callable[[], None]) -> None:
        """Run ``action`` once every utterance file submitted so far is written (at once when
        none is waiting)."""
        if self._writing:
            self._after.append((self._writing[-1], action))
        else:
            action()

    def _written(self, job: FileJob) -> None:
        """An utterance file is written (jobs end in submission order), or failed to be."""
        if self._writing and self._writing[0] is job:
            self._writing.popleft()
        else:
            self._writing.remove(job)
        if job.error is None:
            self.metrics.utterances.inc()
        elif isinstance(job.error, Exception):
            # as a write on the loop failed the session, at the file's place: its log line
            # before those that waited for the file, its event next in the outboxes' holds
            writing, self._writing = self._writing, deque()
            try:
                self._on_error(job.error)
            finally:
                self._writing = writing
        after = self._after
        while after and after[0][0].done:
            after.popleft()[1]()

    def _if_written(self, job: FileJob, event: dict[str, Any], item: Any) -> None:
        """An utterance event's log line and Redis entry, once its file is in place."""
        if job.error is None:
            self._log_now(event, False)
            if self._publish is not None:
                self._publish(self, event, item)

    def _on_item(self, item: Any) -> None:
        t = type(item)
        if t is VadFrame or t is LevelFrame:  # the many: an event at most (encode_item's)
            if t is LevelFrame or self._vad_events:
                self.emit(item.to_dict())
            return
        event = encode_item(item, self.options.events)
        if event is None:
            return
        kind = event["type"]
        job: FileJob | None = None
        if isinstance(item, Utterance):  # its dict form, plus the session's id and file
            self.utterances += 1
            event["id"] = self.utterances
            wavs = self._wavs
            name = (
                wavs.reserve(item)
                if wavs is not None and self._charge(disk_cost(wav_bytes(item)))
                else None
            )
            if name is not None:
                assert wavs is not None
                event["url"] = self.file_url(name)
                event["file"] = name
                if self._files is None:
                    wavs.write_file(name, item)
                    self.metrics.utterances.inc()
                else:  # on the writer thread; what must follow the file waits for it
                    job = self._files.submit(
                        partial(wavs.write_file, name, item), item.samples.nbytes
                    )
                    self._writing.append(job)
                    job.then(self._written)
                wavs.record(name, item)
            if self.options.transcribe is not None:
                self._utterance_ids[item.index] = self.utterances
        elif isinstance(item, Transcript):  # its dict form, plus its utterance's id
            event["id"] = self._utterance_ids.pop(item.utterance, None)
        if kind in SPEECH:
            self.seq += 1
            event["seq"] = self.seq
            if job is None:
                self._write_log(event)
                if self._publish is not None:  # after the files earlier entries name
                    self._later(partial(self._publish, self, event, item))
            else:  # once its file is written; not at all if it fails (it names the file)
                self._later(partial(self._if_written, job, event, item))
            text = encode(event)
            if self._keep_replay:
                self.replay.append((self.seq, kind, text))
                if len(self.replay) > REPLAY_MAX:
                    self.replay_lost = self.replay.popleft()[0]
            if job is not None:  # its file first
                for ob in self.outboxes:
                    ob.hold(job, kind, text, self._arrival)
            elif self.outboxes:
                self._fan(kind, text)
            return
        self.emit(event)

    def fail(self, exc: Exception) -> None:
        """End this session's pipeline with an error (the batcher could not score or push it)."""
        self._on_error(exc)

    def _on_error(self, exc: Exception) -> None:
        if self.failed is not None:
            return
        self.failed = str(exc)
        if self.stream is not None:  # unregister its stream (vad may have; twice is harmless)
            self.stream.close()
        self.stream = None  # the batcher skips this session
        if self.batcher is not None:
            self.batcher.drop(self)
        self._write_log({"type": "error", "message": str(exc)})
        self.emit(error_event(ErrorCode.PIPELINE_ERROR, str(exc)))

    def _on_completed(self) -> None:
        self.emit(self.stats())
