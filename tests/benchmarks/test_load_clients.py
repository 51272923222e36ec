"""The capacity harness: client-bound marking, CPU accounting, the raw client, the race.

A capacity figure is only the server's if the clients kept up, so the bookkeeping that says
whether they did is tested here with plain numbers; the raw-socket client is checked against
the aiohttp client on the floor server (the same events, field for field). Nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import struct
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from benchmarks import capacity as cap
from benchmarks.bench_server import capacity, fits, floor_ratio, wait_seconds
from benchmarks.load_clients import (
    client_cores,
    client_load,
    is_client_bound,
    merge,
    pins,
    report,
    run_clients,
    split,
)
from benchmarks.loadgen import ClientResult, LoadResult, parse_frames, run_load_raw


def test_split_spreads_streams_evenly_and_never_leaves_a_process_empty() -> None:
    assert split(10, 3) == [(0, 4), (4, 3), (7, 3)]
    assert split(2, 5) == [(0, 1), (1, 1)]
    assert split(250, 1) == [(0, 250)]
    with pytest.raises(ValueError, match="at least one stream"):
        split(0, 2)


def test_clients_go_to_the_cores_the_server_does_not_use() -> None:
    assert client_cores(2, server_cpu=0) == [1]
    assert client_cores(4, server_cpu=1) == [0, 2, 3]
    assert client_cores(1, server_cpu=0) == [0]  # one core: nowhere else to go
    assert pins(3, [1]) == [1, 1, 1]
    assert pins(3, [2, 3]) == [2, 3, 2]


def test_client_load_adds_up_processes_sharing_a_core() -> None:
    # two processes on core 1 at 0.45 each: that core is 0.9 busy, the run is client-bound
    assert client_load([0.45, 0.45], [1, 1]) == pytest.approx(0.9)
    assert is_client_bound(client_load([0.45, 0.45], [1, 1]))
    # the same two on different cores: each core 0.45
    assert client_load([0.45, 0.45], [1, 2]) == pytest.approx(0.45)
    assert not is_client_bound(0.45)
    # unpinned processes count alone
    assert client_load([0.5, 0.5], [None, None]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one core"):
        client_load([0.5], [1, 1])


def test_client_bound_is_strictly_over_the_limit() -> None:
    assert not is_client_bound(0.8)
    assert is_client_bound(0.8001)
    assert is_client_bound(0.5, limit=0.4)


def test_clients_that_could_not_keep_the_schedule_are_client_bound_too() -> None:
    # a light client whose core others took: frames went out late, whatever its CPU
    assert not is_client_bound(0.1, late=10, frames=1000)  # 1 %: within
    assert is_client_bound(0.1, late=11, frames=1000)
    assert not is_client_bound(0.1, late=5, frames=0)  # nothing known about the frames


def _part(lat: list[float], cpu: float, wall: float, **kw: Any) -> dict[str, Any]:
    base = {"clients": 1, "latencies": lat, "vad_events": len(lat), "dropped": 0}
    base |= {"late_frames": 0, "utterances": 0, "errors": [], "cpu_s": cpu, "wall_s": wall}
    return {**base, **kw}


def test_merge_pools_latencies_and_measures_each_process_cpu_over_its_own_run() -> None:
    parts = [
        _part([0.010] * 99, cpu=3.0, wall=10.0, dropped=2, frames=600),
        _part([0.200], cpu=6.0, wall=10.0, late_frames=5, errors=[{"type": "error"}], frames=600),
    ]
    m = merge(parts, [1, 1])
    assert m["clients"] == 2 and m["vad_events"] == 100
    assert m["p50_ms"] == pytest.approx(10.0)
    assert m["p99_ms"] == pytest.approx(np.percentile([0.01] * 99 + [0.2], 99) * 1000)
    assert m["client_cpu_per_proc"] == pytest.approx([0.3, 0.6])
    assert m["client_cpu"] == pytest.approx(0.9) and m["client_bound"]
    assert m["dropped"] == 2 and m["late_frames"] == 5 and len(m["errors"]) == 1
    assert m["frames"] == 1200
    # the same processes on two cores: neither core is over 0.8
    assert not merge(parts, [1, 2])["client_bound"]
    # ... unless too many of their frames went out late (13 of 1200)
    parts[1]["late_frames"] = 13
    assert merge(parts, [1, 2])["client_bound"]
    # no latencies at all: NaN, not a crash (and NaN fails the latency goal)
    assert math.isnan(merge([_part([], 1.0, 10.0)], [None])["p99_ms"])


def test_report_carries_the_client_cpu_of_a_load_result() -> None:
    c = ClientResult(latencies=[0.01, 0.02], vad_events=2, late_frames=1, stats={"dropped": 3})
    c.sent_samples = 2 * 512 + 100  # two whole frames and a short last one
    r = report(LoadResult([c, ClientResult()], wall_s=4.0, cpu_s=1.0), wait_s=0.5, frame=512)
    assert r["cpu_s"] / r["wall_s"] == 0.25 and r["wait_s"] == 0.5
    assert r["frames"] == 3
    assert (r["clients"], r["vad_events"], r["dropped"], r["late_frames"]) == (2, 2, 3, 1)


def _row(n: int, p99: float = 20.0, **kw: Any) -> dict[str, Any]:
    base = {"server": "rxaudio", "streams": n, "frame_ms": 32.0, "events": ("level", "vad"),
            "p99_ms": p99, "server_cpu": 0.5, "dropped": 0, "errors": 0,
            "client_bound": False, "cpu_per_stream_rt": 0.01, "batch": True, "p50_ms": 5.0,
            "late_frames": 0, "client_cpu": 0.2}  # fmt: skip
    return {**base, **kw}


def test_fits_is_the_issues_rule() -> None:
    assert fits(_row(50))
    assert not fits(_row(50, p99=100.1))
    assert not fits(_row(50, server_cpu=0.99))
    assert not fits(_row(50, dropped=1))
    assert not fits(_row(50, errors=1))
    assert not fits(_row(50, p99=math.nan))


def test_a_client_bound_run_does_not_count_toward_capacity() -> None:
    rows = [_row(50), _row(100), _row(150, client_bound=True), _row(200)]
    assert capacity(rows) == (100, "client-bound at 150")
    # even when its latency was fine and it is the last count tried
    assert capacity([_row(50), _row(100, client_bound=True)]) == (50, "client-bound at 100")
    assert capacity([_row(50), _row(100, p99=300.0)]) == (50, "failed at 100")
    assert capacity([_row(50), _row(100)]) == (100, "largest count tried")
    assert capacity([_row(50, dropped=4)]) == (0, "failed at 50")


def test_floor_ratio_pairs_runs_by_count_frame_and_events() -> None:
    floor = _row(150, server="floor:silero", cpu_per_stream_rt=0.004)
    other = _row(150, server="floor:silero", frame_ms=64.0, cpu_per_stream_rt=0.001)
    mine = _row(150, cpu_per_stream_rt=0.006)
    assert floor_ratio(mine, [other, floor, mine]) == pytest.approx(1.5)
    assert floor_ratio(floor, [floor, mine]) is None
    assert floor_ratio(_row(100), [floor]) is None


def test_the_race_runs_the_floor_beside_every_tree_still_in_it() -> None:
    calls: list[tuple[str, int]] = []
    out = {("old", 100): {"p99_ms": 500.0}, ("new", 150): {"client_bound": True}}

    def fake(n: int, *a: Any, tree: str | None, name: str, **kw: Any) -> dict[str, Any]:
        calls.append((name, n))
        return _row(n, server=name, **out.get((name, n), {}))

    args = argparse.Namespace(
        events="level,vad", no_floor=False, floor_to_end=False, keep_going=False,
        seconds=1.0, batch_wait_ms=5.0,
        repeat=1, client_procs=1, client="raw", p99_ms=100.0, max_wait=0.1, retries=2,
    )  # fmt: skip
    rows = cap.race([("old", "/a"), ("new", "/b")], 512, [50, 100, 150, 200], args, run=fake)
    assert calls == [
        ("floor:silero", 50), ("old", 50), ("new", 50),
        ("floor:silero", 100), ("old", 100), ("new", 100),
        ("floor:silero", 150), ("new", 150),
    ]  # fmt: skip
    assert capacity([r for r in rows if r["server"] == "old"]) == (50, "failed at 100")
    assert capacity([r for r in rows if r["server"] == "new"]) == (100, "client-bound at 150")
    # --keep-going: every tree runs every count (its ratio to the floor past its capacity)
    calls.clear()
    args.keep_going = True
    rows = cap.race([("old", "/a")], 512, [50, 100, 150], args, run=fake)
    assert calls == [(n, c) for c in (50, 100, 150) for n in ("floor:silero", "old")]
    assert capacity([r for r in rows if r["server"] == "old"]) == (50, "failed at 100")
    args.keep_going = False
    # --floor-to-end: the floor goes on alone once the trees are out
    calls.clear()
    args.floor_to_end = True
    cap.race([("old", "/a")], 512, [50, 100, 150, 200], args, run=fake)
    assert calls == [
        ("floor:silero", 50), ("old", 50), ("floor:silero", 100), ("old", 100),
        ("floor:silero", 150), ("floor:silero", 200),
    ]  # fmt: skip


def test_a_disturbed_run_is_run_again_and_the_least_disturbed_kept() -> None:
    waits = {50: [0.5, 0.3, 0.05], 100: [0.5, 0.4, 0.3]}
    seen: list[int] = []

    def fake(n: int, *a: Any, name: str, **kw: Any) -> dict[str, Any]:
        seen.append(n)
        w = waits[n][sum(1 for m in seen if m == n) - 1]
        return _row(n, server=name, server_wait=w, p99_ms=10.0 + 100 * w)

    args = argparse.Namespace(
        events="level,vad", no_floor=True, floor_to_end=False, keep_going=False,
        seconds=1.0, batch_wait_ms=5.0,
        repeat=1, client_procs=1, client="raw", p99_ms=100.0, max_wait=0.1, retries=2,
    )  # fmt: skip
    rows = cap.race([("t", "/t")], 512, [50, 100], args, run=fake)
    assert seen == [50, 50, 50, 100, 100, 100]  # at most 1 + 2 runs of a count
    assert [r["server_wait"] for r in rows] == [0.05, 0.3]  # undisturbed, else the least p99
    assert [r["tries"] for r in rows] == [3, 3]
    assert cap.disturbed(rows[1], 0.1) and not cap.disturbed(rows[0], 0.1)


def test_a_server_started_in_a_tree_imports_that_trees_rxaudio(tmp_path: Any) -> None:
    # a tree whose rxaudio has a module this checkout's has not: it starts only if the server
    # process imports rxaudio from the tree (``-m`` puts the working directory first)
    (tmp_path / "rxaudio").mkdir()
    (tmp_path / "rxaudio" / "__init__.py").write_text("")
    (tmp_path / "rxaudio" / "probe.py").write_text(
        "import sys\nprint('http://127.0.0.1:1/', flush=True)\nsys.stdin.read()\n"
    )
    from benchmarks._util import start_server

    proc, url = start_server([], module="rxaudio.probe", pin=False, tree=str(tmp_path))
    proc.terminate()
    proc.wait(30)
    assert url == "http://127.0.0.1:1/ws"


def test_tree_arguments_are_checked_in_one_line(tmp_path: Any) -> None:
    with pytest.raises(SystemExit, match="NAME=PATH or NAME=REV"):
        cap.parse_tree("justapath")
    with pytest.raises(SystemExit, match="the floor's"):
        cap.parse_tree("floor:silero=.")
    with pytest.raises(SystemExit, match="holds no rxaudio package"):
        cap.materialise(str(tmp_path), str(tmp_path))
    with pytest.raises(SystemExit, match="neither a folder nor a git revision"):
        cap.materialise("no-such-revision-xyz", str(tmp_path))


def test_a_git_revision_becomes_a_tree_with_the_built_kernel(tmp_path: Any) -> None:
    if subprocess.run(["git", "-C", cap.HERE, "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    tree = cap.materialise("HEAD", str(tmp_path))
    assert os.path.isfile(os.path.join(tree, "rxaudio", "server", "hub.py"))
    built = [f for f in os.listdir(os.path.join(cap.HERE, "rxaudio", "dsp")) if f.endswith(".so")]
    for f in built:  # the ignored build output comes along, or spectrograms fall back to numpy
        assert os.path.isfile(os.path.join(tree, "rxaudio", "dsp", f))


def test_wait_seconds_reads_the_run_queue_delay() -> None:
    assert wait_seconds(os.getpid()) >= 0.0
    assert wait_seconds(2**22 + 12345) == 0.0  # no such process


def _frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"") -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + payload


def test_parse_frames_takes_whole_frames_of_every_length_and_leaves_the_rest() -> None:
    small, mid, big = b"x" * 5, b"y" * 300, b"z" * 70000
    data = (
        _frame(0x1, small) + _frame(0x2, mid) + _frame(0x1, big, fin=False)
        + _frame(0x1, b"ab", mask=b"\x01\x02\x03\x04")
    )  # fmt: skip
    frames, used = parse_frames(bytearray(data))
    assert used == len(data)
    assert frames == [(0x1, True, small), (0x2, True, mid), (0x1, False, big), (0x1, True, b"ab")]
    # every cut through the stream gives the frames before it and keeps the rest for later
    first = len(_frame(0x1, small))
    for cut in (1, first - 1, first, first + 1, first + 3, len(data) - 1):
        frames, used = parse_frames(bytearray(data[:cut]))
        assert used <= cut
        rest, used2 = parse_frames(bytearray(data[used:]))
        assert [f[2] for f in frames + rest] == [small, mid, big, b"ab"]
        assert used + used2 == len(data)


@pytest.fixture
def speech_pcm(speech_path: str) -> np.ndarray:
    import soundfile as sf

    x, _ = sf.read(speech_path, dtype="int16")
    return np.asarray(x)


@pytest.fixture
def floor_url() -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_server", "--port", "0", "--model", "silero"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
    assert m, "floor server did not start"
    yield f"http://127.0.0.1:{m.group(1)}/ws"
    proc.terminate()
    proc.wait(30)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch", [False, True])
async def test_raw_client_sees_what_the_aiohttp_client_sees(
    floor_url: str, speech_pcm: np.ndarray, batch: bool
) -> None:
    from aiohttp import ClientSession

    from benchmarks.loadgen import stream_client

    audio = speech_pcm[: 16000 * 2]
    raw: list[list[dict[str, Any]]] = [[], [], []]
    res = await run_load_raw(
        floor_url, audio, 16000, clients=3, frame=800, batch=batch, records=raw
    )
    ref: list[dict[str, Any]] = []
    async with ClientSession() as http:
        await stream_client(http, floor_url, audio, 16000, frame=800, batch=batch, record=ref)
    windows = audio.shape[0] // 512
    for c, rec in zip(res.clients, raw, strict=True):
        assert not c.errors and c.stats["received"] == audio.shape[0]
        assert c.vad_events == windows and len(c.latencies) == windows
        assert all(0 < x < 60 for x in c.latencies)
        assert rec == ref  # the same events, field for field, in the same order
    assert res.cpu_s > 0 and res.wall_s > 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_client_processes_share_one_schedule_and_report_their_cpu(
    floor_url: str,
) -> None:
    marks: list[int] = []
    # 64 streams x 4 s: each process's report (8,000 latencies) is larger than a pipe's buffer
    got = run_clients(
        floor_url, streams=64, frame=512, seconds=4.0, procs=2, on_start=lambda: marks.append(1)
    )
    assert marks == [1] and got["procs"] == 2 and got["clients"] == 64
    assert got["vad_events"] == 64 * (64000 // 512) and not got["errors"]
    assert got["frames"] == 64 * 125
    assert len(got["client_cpu_per_proc"]) == 2
    assert all(0 < f < 1.5 for f in got["client_cpu_per_proc"])
    assert got["client_bound"] == (got["client_cpu"] > 0.8)
    assert got["end"] > got["start"]
    assert not math.isnan(got["p99_ms"])


def test_run_load_raw_refuses_a_phase_outside_its_total() -> None:
    with pytest.raises(ValueError, match="not within"):
        asyncio.run(
            run_load_raw("ws://127.0.0.1:1/ws", np.zeros(512, np.int16), 16000, clients=3,
                         phase=(2, 4))
        )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_raw_client_names_a_refused_upgrade(floor_url: str) -> None:
    with pytest.raises(ConnectionError, match=r"upgrade refused: HTTP/1\.1 404"):
        await run_load_raw(
            floor_url.replace("/ws", "/nowhere"), np.zeros(1024, np.int16), 16000, clients=1
        )


def test_vad_summary_compares_trees_by_their_ratio_to_onnxruntime_in_the_same_process() -> None:
    def run(pair: float, chain: float, direct: float) -> dict[str, Any]:
        return {"pair": pair, "pair_cpu": pair, "chain_s": chain, "direct_s": direct}

    got = {
        # before: chain 1.4x onnxruntime in every run, whatever the machine's speed
        "before": [run(1.0, 1.4, 1.0), run(1.1, 2.8, 2.0), run(0.9, 0.7, 0.5)],
        # after: faster in seconds only because its runs met a faster machine; 1.5x onnxruntime
        "after": [run(1.05, 0.75, 0.5), run(1.2, 0.75, 0.5), run(1.0, 0.75, 0.5)],
    }
    before, after = cap.vad_summary(got)
    assert "1.000x onnxruntime direct (median of 3" in before
    assert "median 1.400 s, 1.400x onnxruntime direct" in before
    assert "1.050x onnxruntime direct (median of 3" in after
    assert "1.500x onnxruntime direct; 1.071x before's" in after
