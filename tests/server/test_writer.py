"""Utterance files on the writer thread (rxaudio.server.writer) and what waits for them.

The server writes a session's utterance WAVs on a thread of its own; the session's ``utterance``
event, every numbered speech event, ``stats``, ``stopped`` and errors after it wait in the
outbox until the file is in place, and the session's log lines and Redis entries after it
likewise. Display events (``vad``, ``level``, ...) go on. These tests run the real thread, real
files and real sessions (Silero in the chain) on a real event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from reactivex.scheduler.eventloop import AsyncIOScheduler

from rxaudio.data import speech_sample
from rxaudio.server import HUB
from rxaudio.server.metrics import ServerMetrics
from rxaudio.server.pipeline import ChainOptions
from rxaudio.server.sessions import WAITS, Outbox, Session
from rxaudio.server.writer import NICE, FileWriter
from rxaudio.sinks import JsonlLog

RATE = 16000


def _streams(texts: list[str]) -> tuple[list[str], list[str]]:
    kinds = [json.loads(t)["type"] for t in texts]
    return (
        [t for t, k in zip(texts, kinds, strict=True) if k not in WAITS],
        [t for t, k in zip(texts, kinds, strict=True) if k in WAITS],
    )


# ---- the thread ---------------------------------------------------------------------------------
def test_jobs_run_in_order_off_the_loop_and_complete_on_it_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        w = FileWriter(loop)
        ran: list[tuple[int, int]] = []
        done: list[tuple[int, int]] = []
        try:
            jobs = []
            for i in range(50):
                job = w.submit(lambda i=i: ran.append((i, threading.get_ident())), 10)
                job.then(lambda j, i=i: done.append((i, threading.get_ident())))
                jobs.append(job)
            await w.drain()
            assert [i for i, _ in ran] == list(range(50))
            assert {t for _, t in ran} != {threading.get_ident()}  # not on the loop's thread
            assert done == [(i, threading.get_ident()) for i in range(50)]  # on the loop, in order
            assert all(j.done and j.error is None for j in jobs) and w.in_flight == 0
        finally:
            w.close()

    asyncio.run(main())


def test_a_failing_job_says_why_and_the_next_ones_still_run() -> None:
    async def main() -> None:
        w = FileWriter(asyncio.get_running_loop())
        try:
            bad = w.submit(lambda: open("/nonexistent-dir/x.wav", "wb"))
            good = w.submit(lambda: None)
            await w.drain()
            assert isinstance(bad.error, FileNotFoundError) and good.error is None
        finally:
            w.close()

    asyncio.run(main())


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="per-thread niceness is Linux's")
def test_the_writer_thread_runs_nicer_than_the_loop() -> None:
    async def main() -> None:
        w = FileWriter(asyncio.get_running_loop())
        seen: list[int] = []
        try:
            w.submit(
                lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            )
            await w.drain()
        finally:
            w.close()
        base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert seen == [min(base + NICE, 19)]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # ours as was

    asyncio.run(main())


def test_submit_waits_for_the_thread_past_its_byte_bound() -> None:
    async def main() -> None:
        w = FileWriter(asyncio.get_running_loop(), max_bytes=100)
        gate = threading.Event()
        first_ran = threading.Event()

        def slow() -> None:
            first_ran.set()
            gate.wait(5)

        try:
            w.submit(slow, 80)
            assert first_ran.wait(5)
            threading.Timer(0.2, gate.set).start()
            w.submit(lambda: None, 80)  # 160 > 100 bytes waiting: back-pressure until written
            assert gate.is_set()
            await w.drain()
        finally:
            gate.set()
            w.close()

    asyncio.run(main())


def test_after_close_a_job_runs_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    async def main() -> None:
        w = FileWriter(asyncio.get_running_loop())
        w.close()
        job = w.submit(lambda: (tmp_path / "late.wav").write_bytes(b"x"))
        assert job.done and job.error is None and (tmp_path / "late.wav").read_bytes() == b"x"

    asyncio.run(main())


# ---- the outbox's holds -------------------------------------------------------------------------
@asynccontextmanager
async def _held_box(*, batch: bool = False) -> AsyncIterator[tuple[FileWriter, Outbox, list[str]]]:
    """A writer thread, an outbox sending into a list (``batch`` as a client may ask), its send
    task running; all ended on the way out."""
    loop = asyncio.get_running_loop()
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    w = FileWriter(loop)
    box = Outbox(send, ServerMetrics())
    box.batch = batch
    task = loop.create_task(box.run())
    try:
        yield w, box, sent
    finally:
        box.close()
        await task
        w.close()


def test_an_outbox_holds_what_waits_behind_a_file_and_lets_display_events_pass() -> None:
    async def main() -> None:
        gate = threading.Event()
        try:
            async with _held_box() as (w, box, sent):
                job = w.submit(lambda: gate.wait(5))
                box.put_text("vad", "v1", 0.0)
                box.hold(job, "utterance", "u1", 0.0)
                box.put_text("speech_start", "s2", 0.0)
                box.put_text("vad", "v2", 0.0)
                box.put_text("stopped", "end", 0.0)
                await asyncio.sleep(0.05)
                assert sent == ["v1", "v2"]  # the display stream goes on
                gate.set()
                await w.drain()
                await box.drain()
                assert sent == ["v1", "v2", "u1", "s2", "end"]
                # a failed write: its event is not sent (it names a file that is not there),
                # the rest is
                bad = w.submit(lambda: 1 / 0)
                box.hold(bad, "utterance", "u2", 0.0)
                box.put_text("speech_end", "e3", 0.0)
                await w.drain()
                await box.drain()
                assert sent[5:] == ["e3"] and isinstance(bad.error, ZeroDivisionError)
        finally:
            gate.set()

    asyncio.run(main())


def test_a_batched_message_never_reaches_past_a_hold() -> None:
    async def main() -> None:
        gate = threading.Event()
        try:
            async with _held_box(batch=True) as (w, box, sent):
                job = w.submit(lambda: gate.wait(5))
                box.put_text("speech_start", '{"a":1}', 0.0)
                box.hold(job, "utterance", '{"u":1}', 0.0)
                box.put_text("speech_end", '{"b":2}', 0.0)
                await asyncio.sleep(0.05)
                assert sent == ['{"a":1}']
                gate.set()
                await w.drain()
                await box.drain()
                assert sent == ['{"a":1}', '[{"u":1},{"b":2}]']
        finally:
            gate.set()

    asyncio.run(main())


# ---- sessions ----------------------------------------------------------------------------------
def _audio() -> np.ndarray:
    x, sr = sf.read(speech_sample(), dtype="float32")
    assert sr == RATE
    return np.resize(x, 12 * RATE).reshape(-1, 1)


async def _session(folder: Path, threaded: bool, *, block: str | None = None) -> dict[str, Any]:
    """One session of the bundled speech (1,024-sample frames, one per loop turn); its events
    as handed to the socket, and for each ``utterance`` event whether its file was complete
    when it was handed over."""
    loop = asyncio.get_running_loop()
    metrics = ServerMetrics()
    w = FileWriter(loop) if threaded else None
    sent: list[str] = []
    complete: list[bool] = []
    s: Session

    async def send(text: str) -> None:
        sent.append(text)
        if '"type":"utterance"' in text:
            name = json.loads(text)["file"]
            path = folder / "s" / name
            complete.append(path.is_file() and sf.info(str(path)).frames > 0)

    s = Session(
        "s",
        sample_rate=RATE,
        channels=1,
        options=ChainOptions(events=("level", "vad")),
        out_dir=str(folder),
        metrics=metrics,
        loop=loop,
        scheduler=AsyncIOScheduler(loop),
        files=w,
    )
    if block is not None:
        (folder / "s" / block).mkdir()  # a folder where the file would go: its write fails
    box = Outbox(send, metrics, maxlen=1 << 20, maxbytes=1 << 30)
    s.attach(box)
    task = loop.create_task(box.run())
    audio = _audio()
    for i in range(0, audio.shape[0], 1024):
        s.feed(audio[i : i + 1024])
        await asyncio.sleep(0)
    s.close("done")
    if w is not None:
        await w.drain()
        w.close()
    await box.drain()
    box.close()
    await task
    log = (folder / "s" / "events.jsonl").read_text()
    wavs = {p.name: p.read_bytes() for p in sorted((folder / "s").glob("utt-*.wav")) if p.is_file()}
    return {"sent": sent, "complete": complete, "log": log, "wavs": wavs, "session": s}


def test_a_session_on_the_writer_thread_says_what_the_session_writing_itself_says(
    tmp_path: Path,
) -> None:
    """The same events in each stream, the same log, the same WAVs byte for byte; and each
    ``utterance`` event reached the socket only once its file was complete."""
    itself = asyncio.run(_session(tmp_path / "a", False))
    threaded = asyncio.run(_session(tmp_path / "b", True))
    assert len(itself["wavs"]) >= 3
    assert threaded["wavs"] == itself["wavs"]
    assert threaded["log"] == itself["log"]
    assert _streams(threaded["sent"]) == _streams(itself["sent"])
    assert threaded["complete"] == [True] * len(itself["wavs"])


def test_a_write_that_fails_fails_its_session_and_its_event_is_never_sent(
    tmp_path: Path,
) -> None:
    got = asyncio.run(_session(tmp_path, True, block="utt-0001.wav"))
    texts = got["sent"]
    assert not any('"file":"utt-0001.wav"' in t for t in texts)
    errors = [t for t in texts if '"type":"error"' in t]
    assert len(errors) == 1 and "pipeline_error" in errors[0] and "utt-0001.wav" in errors[0]
    assert "is a directory" in errors[0]
    assert got["session"].failed is not None
    lines = [json.loads(line) for line in got["log"].splitlines()]
    assert [r["type"] for r in lines[-2:]] == ["error", "closed"]  # the log is complete
    assert not any(r.get("file") == "utt-0001.wav" for r in lines)


# ---- the server ---------------------------------------------------------------------------------
async def test_a_served_session_hears_of_each_utterance_once_its_file_is_there(
    server: Any, proto: Any, speech_pcm: np.ndarray, tmp_path: Path, monkeypatch: Any
) -> None:
    """A client that stops at once after its audio: every ``utterance`` event, and ``stopped``
    after them, come only when the file is complete (read on receipt); on ``stopped`` the
    session's log (written on the writer thread too) is complete and names every file."""
    async with server() as client:
        ws = await client.ws_connect("/ws")
        started = await proto.start(ws)
        await proto.send_audio(ws, np.tile(speech_pcm, 2))
        # the disk is slow: nothing the writer thread does finishes for 0.3 s, and the log's
        # closing line takes 0.3 s more
        gate = threading.Event()
        client.server.app[HUB].files.submit(lambda: gate.wait(10))
        threading.Timer(0.3, gate.set).start()
        append = JsonlLog.append

        def slow(log: JsonlLog, line: str) -> None:
            if '"type":"closed"' in line:
                time.sleep(0.3)
            append(log, line)

        monkeypatch.setattr(JsonlLog, "append", slow)
        await ws.send_json({"type": "stop"})
        folder = tmp_path / "out" / started["session"]
        files = []
        while True:
            ev = await ws.receive_json(timeout=30)
            if ev["type"] == "utterance":
                info = sf.info(str(folder / ev["file"]))  # complete: it opens and reads
                want = (ev["audio_end"] - ev["audio_start"]) * RATE
                assert abs(info.frames - want) <= 16  # (the event's times are in ms)
                files.append(ev["file"])
            if ev["type"] == "stopped":
                break
        assert len(files) >= 4
        # read on receipt of stopped, the server still running: the log is complete
        records = [json.loads(x) for x in (folder / "events.jsonl").open()]
        assert records[-1]["type"] == "closed"
        assert [r["file"] for r in records if "file" in r] == files
        assert {p.name for p in folder.glob("utt-*.wav")} == set(files)


def test_a_resumed_session_replays_an_utterance_only_once_its_file_is_there(
    tmp_path: Path,
) -> None:
    """A client that resumes while files are still being written: the replayed speech events
    wait for them in its new outbox too."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        metrics = ServerMetrics()
        w = FileWriter(loop)
        gate = threading.Event()
        w.submit(lambda: gate.wait(10))  # every file after this waits for the gate
        s = Session(
            "s",
            sample_rate=RATE,
            channels=1,
            options=ChainOptions(events=("vad",)),
            out_dir=str(tmp_path),
            metrics=metrics,
            loop=loop,
            scheduler=AsyncIOScheduler(loop),
            files=w,
        )
        audio = _audio()
        for i in range(0, 6 * RATE, 1024):
            s.feed(audio[i : i + 1024])
        assert s._writing  # utterances cut, their files not yet written
        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        box = Outbox(send, metrics)
        task = loop.create_task(box.run())
        try:
            s.attach(box)
            assert s.replay_to(box, 0) == 0
            s.feed(audio[6 * RATE : 6 * RATE + 1024])  # a display event goes on meanwhile
            await asyncio.sleep(0.05)
            assert sent and all('"type":"vad"' in t for t in sent)
            gate.set()
            await w.drain()
            await box.drain()
            replayed = [json.loads(t) for t in sent if '"type":"vad"' not in t]
            assert [e["seq"] for e in replayed] == list(range(1, s.seq + 1))
            for e in replayed:
                if e["type"] == "utterance":
                    assert (tmp_path / "s" / e["file"]).is_file()
        finally:
            gate.set()
            s.close("done")
            await w.drain()
            w.close()
            box.close()
            await task

    asyncio.run(main())
