"""Voice activity: speed ratios against the silero-vad package, and accuracy on the dev set.

    python -m benchmarks.bench_vad [--minutes 10] [--no-accuracy] [--no-speed]

Speed (one thread, per 32 ms window, median of repeats): the package's JIT model and ONNX
wrapper, onnxruntime called directly, our ``vad`` operator with live-sized chunks and with file
blocks, batched scoring at N = 32, the whole-sequence model; then ``rxaudio segment`` (its
offline fast path and ``--streaming``) against ``get_speech_timestamps`` on the same audio.
Every figure is also given as a ratio to a reference measured in the same run. Accuracy: every
backend (and ``get_speech_timestamps`` with its defaults) on the dev set from
``scripts/make_devset.py``, scored at 10 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile as sf
import soxr

HERE = os.path.dirname(os.path.abspath(__file__))


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, cpu: dict[str, float] | None = None
) -> dict[str, float]:
    """Best time of each function over ``rounds`` rounds that run all of them in turn: on a
    shared, noisy machine the minimum is the least disturbed measurement, and interleaving
    exposes every function to the same background load. With ``cpu``, also the best process
    CPU time of each (not counting time spent waiting for a core the load took)."""
    best = {k: float("inf") for k in fns}
    if cpu is not None:
        cpu.update({k: float("inf") for k in fns})
    for _ in range(rounds):
        for k, fn in fns.items():
            c = time.process_time()
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
            if cpu is not None:
                cpu[k] = min(cpu[k], time.process_time() - c)
    return best


def one_blas_thread() -> None:
    """One thread for numpy's BLAS too where threadpoolctl is there (a stream runs on one core)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def audio_minutes(minutes: float) -> np.ndarray:
    """The bundled sample repeated to ``minutes`` of 16 kHz audio."""
    from rxaudio.data import speech_sample

    x, _ = sf.read(speech_sample(), dtype="float32")
    n = int(minutes * 60 * 16000)
    return np.resize(x, n).astype(np.float32)


def speed(repeat: int) -> dict[str, float]:
    """Microseconds per window for each way of scoring."""
    import torch
    from reactivex import from_iterable
    from silero_vad import load_silero_vad

    from rxaudio.frames import AudioFrame
    from rxaudio.operators import vad
    from rxaudio.vad.silero import BatchedSileroScorer, SileroOnnx

    torch.set_num_threads(1)
    x = audio_minutes(0.25)
    n = len(x) // 512
    ws = x[: n * 512].reshape(n, 512)
    jit = load_silero_vad()
    tw = [torch.from_numpy(w.copy()) for w in ws]

    def run_jit() -> None:
        jit.reset_states()
        for w in tw:
            jit(w, 16000).item()

    wrap = load_silero_vad(onnx=True)

    def run_wrap() -> None:
        wrap.reset_states()
        for w in tw:
            wrap(w, 16000).item()

    run_direct = _direct(ws)

    live = [AudioFrame(ws[i].reshape(-1, 1), 16000, i * 512) for i in range(n)]
    big = [
        AudioFrame(x[i : i + 256000].reshape(-1, 1), 16000, i) for i in range(0, n * 512, 256000)
    ]
    single = SileroOnnx(16000, sequence=False)
    seq = SileroOnnx(16000)
    nb = 32
    shared = BatchedSileroScorer(16000)
    handles = [shared.register() for _ in range(nb)]
    m = min(n, 300)
    offsets = [(7 * i) % n for i in range(nb)]

    def run_batched() -> None:
        for k in range(m):
            shared.score_batch({h: ws[(offsets[i] + k) % n] for i, h in enumerate(handles)})

    fns: dict[str, Callable[[], Any]] = {
        "package JIT model": run_jit,
        "package ONNX wrapper": run_wrap,
        "onnxruntime called directly": run_direct,
        "vad operator, 32 ms chunks (live)": lambda: (
            from_iterable(live).pipe(vad()).subscribe(lambda _: None)
        ),
        "vad operator, 16 s blocks (file)": lambda: (
            from_iterable(big).pipe(vad()).subscribe(lambda _: None)
        ),
        "SileroOnnx.score": lambda: [single.score(w) for w in ws],
        "sequence model (score_many)": lambda: seq.score_many(ws),
        "batched, per stream-window at N = 32": run_batched,
    }
    best = _interleaved(fns, repeat)
    res = {k: v / n * 1e6 for k, v in best.items()}
    res["batched, per stream-window at N = 32"] = (
        best["batched, per stream-window at N = 32"] / (m * nb) * 1e6
    )
    return res


def _ort_session() -> Any:
    """onnxruntime on the silero-vad package's streaming model, one thread: built here from the
    package, not through rxaudio, so the reference stays the same whatever tree is measured."""
    import onnxruntime as ort

    spec = importlib.util.find_spec("silero_vad")
    assert spec is not None and spec.submodule_search_locations, "silero-vad is not installed"
    path = os.path.join(next(iter(spec.submodule_search_locations)), "data", "silero_vad.onnx")
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def _direct(ws: np.ndarray) -> Callable[[], None]:
    """onnxruntime called directly on ``ws`` (windows of 512), the model's state and 64-sample
    context carried by hand: the reference the operator is measured against."""
    sess = _ort_session()
    sr = np.array(16000, dtype=np.int64)

    def run() -> None:
        st = np.zeros((2, 1, 128), dtype=np.float32)
        ctx = np.zeros(64, dtype=np.float32)
        for w in ws:
            _out, st = sess.run(
                None, {"input": np.concatenate((ctx, w))[None], "state": st, "sr": sr}
            )
            ctx = w[-64:]

    return run


def pair(seconds: float, rounds: int, cpu: dict[str, float] | None = None) -> tuple[float, float]:
    """The ``vad`` operator on live 32 ms chunks against onnxruntime called directly on the same
    windows (the same model and state handling), one thread, interleaved rounds: the best
    round of each, in microseconds per window. ``cpu`` receives the same in process CPU time
    (``live`` and ``direct``), which the machine's other load moves less."""
    from reactivex import from_iterable

    from rxaudio.frames import AudioFrame
    from rxaudio.operators import vad

    x = audio_minutes(seconds / 60.0)
    n = len(x) // 512
    ws = x[: n * 512].reshape(n, 512)
    run_direct = _direct(ws)

    live = [AudioFrame(ws[i].reshape(-1, 1), 16000, i * 512) for i in range(n)]
    used: dict[str, float] = {}
    best = _interleaved(
        {
            "direct": run_direct,
            "live": lambda: from_iterable(live).pipe(vad()).subscribe(lambda _: None),
        },
        rounds,
        used,
    )
    if cpu is not None:
        cpu.update({k: v / n * 1e6 for k, v in used.items()})
    return best["live"] / n * 1e6, best["direct"] / n * 1e6


def pair_runs(runs: int = 5, seconds: float = 30.0, rounds: int = 11) -> list[tuple[float, float]]:
    """The issue's measure of the ``vad`` operator on live 512-sample chunks: ``runs`` times
    :func:`pair` (each the best of ``rounds`` interleaved rounds), the operator's time over
    onnxruntime's direct call in each, in wall and in CPU time; report their medians."""
    out = []
    for _ in range(runs):
        cpu: dict[str, float] = {}
        live, direct = pair(seconds, rounds, cpu)
        out.append((live / direct, cpu["live"] / cpu["direct"]))
    return out


def chain_file(seconds: float = 120.0, rounds: int = 5, block: int = 1024) -> dict[str, float]:
    """``vad ! hysteresis ! buffer_utterance`` on a WAV file (``from_file`` blocks of
    ``block`` samples, the utterances written by ``to_utterances`` into a new folder each run),
    against onnxruntime called directly on the same windows one by one, in interleaved rounds:
    the best of each (wall and process CPU seconds) and the utterances written."""
    from rxaudio.operators import buffer_utterance, hysteresis, vad
    from rxaudio.sinks import to_utterances
    from rxaudio.sources import from_file

    x = audio_minutes(seconds / 60.0)
    n = len(x) // 512
    run_direct = _direct(x[: n * 512].reshape(n, 512))
    got: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "speech.wav")
        sf.write(path, x, 16000, subtype="PCM_16")
        count = [0]

        def run_chain() -> None:
            count[0] += 1
            out = os.path.join(d, f"out{count[0]}")
            receipts: list[Any] = []
            from_file(path, block_size=block).pipe(
                vad(), hysteresis(), buffer_utterance(), to_utterances(out)
            ).subscribe(receipts.append)
            got["utterances"] = float(sum(r.frames for r in receipts))

        cpu: dict[str, float] = {}
        best = _interleaved({"chain": run_chain, "direct": run_direct}, rounds, cpu)
    return {
        "seconds": len(x) / 16000,
        "chain_s": best["chain"],
        "direct_s": best["direct"],
        "chain_cpu_s": cpu["chain"],
        "direct_cpu_s": cpu["direct"],
        "utterances": got["utterances"],
    }


def tree_worker(pair_seconds: float, pair_rounds: int, chain_seconds: float) -> dict[str, Any]:
    """One run of both issue-26 measures in this process, for ``benchmarks.capacity --vad``
    (which runs this file with another tree's ``rxaudio`` first on the path)."""
    cpu: dict[str, float] = {}
    live, direct = pair(pair_seconds, pair_rounds, cpu)
    return {"pair": live / direct, "pair_cpu": cpu["live"] / cpu["direct"], "live_us": live,
            "direct_us": direct, **chain_file(chain_seconds)}  # fmt: skip


def segment_speed(minutes: float, rounds: int = 3, same_out: bool = False) -> dict[str, Any]:
    """``rxaudio segment`` (its offline fast path, and the Rx operator chain with
    ``--streaming``) vs get_speech_timestamps (JIT, no padding) on the same audio, best of
    ``rounds`` interleaved runs each; plus the sequence model alone on the same windows (the
    inference share of the fast path), and the whole command as a user runs it (``rxaudio
    segment FILE --out DIR`` in a fresh process: its start-up, flags and imports included)."""
    import argparse as ap
    import json

    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    from rxaudio.apps._segment import segment_file
    from rxaudio.vad.silero import SileroOnnx

    torch.set_num_threads(1)
    x = audio_minutes(minutes)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "long.wav")
        sf.write(path, x, 16000, subtype="FLOAT")
        args = ap.Namespace(
            backend="silero", mode=3, frame_ms=30, threshold=0.5, neg_threshold=None,
            min_speech_ms=250, min_silence_ms=100, pre_roll_ms=300, post_roll_ms=200,
            min_ms=0, max_ms=30000,
        )  # fmt: skip
        # each run writes into a new, empty folder, as a user's run does (replacing 200
        # existing files by rename costs ~50 ms more CPU on ext4; see docs/benchmarks.md)
        outs: dict[str, str] = {}
        count = [0]

        def fresh(kind: str) -> str:
            count[0] += 0 if same_out else 1
            outs[kind] = os.path.join(d, f"{kind}{count[0]}")
            os.makedirs(outs[kind], exist_ok=True)
            return outs[kind]

        model = load_silero_vad()
        tx = torch.from_numpy(x)
        n = -(-len(x) // 512)
        padded = np.zeros(n * 512, dtype=np.float32)
        padded[: len(x)] = x
        windows = padded.reshape(n, 512)
        block = 500  # windows per call, as the 16 s blocks of segment
        got: dict[str, Any] = {}

        def run_fast() -> None:
            got["fast"] = segment_file(path, "long", fresh("fast"), args, streaming=False)

        def run_streaming() -> None:
            got["streaming"] = segment_file(path, "long", fresh("streaming"), args, streaming=True)

        from benchmarks.bench_startup import _cli

        def run_cli() -> None:
            out = fresh("cli")
            cmd = [*_cli(), "segment", path, "--out", out, "--no-progress"]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def run_ref() -> None:
            got["ref"] = get_speech_timestamps(tx, model, speech_pad_ms=0)

        def run_inference() -> None:
            s = SileroOnnx(16000)
            got["probs"] = [s.score_many(windows[i : i + block]) for i in range(0, n, block)]

        cpu: dict[str, float] = {}
        best = _interleaved(
            {
                "fast": run_fast,
                "streaming": run_streaming,
                "cli": run_cli,
                "ref": run_ref,
                "inference": run_inference,
            },
            rounds,
            cpu,
        )
        ref = got["ref"]
        recs = {}
        for k, o in outs.items():
            with open(os.path.join(o, "long.jsonl")) as f:
                recs[k] = [json.loads(line) for line in f]
        identical = all(
            open(os.path.join(outs["fast"], name), "rb").read()
            == open(os.path.join(outs["streaming"], name), "rb").read()
            for name in sorted(os.listdir(outs["fast"]))
        ) and sorted(os.listdir(outs["fast"])) == sorted(os.listdir(outs["streaming"]))
    worst = max(
        (max(abs(r["start"] * 16000 - q["start"]), abs(r["end"] * 16000 - q["end"]))
         for r, q in zip(recs["fast"], ref, strict=True)),
        default=0.0,
    )  # fmt: skip
    return {
        "seconds": len(x) / 16000,
        "ours_s": best["fast"],
        "streaming_s": best["streaming"],
        "command_s": best["cli"],
        "inference_s": best["inference"],
        "reference_s": best["ref"],
        "cpu_s": {
            "ours_s": cpu["fast"],
            "streaming_s": cpu["streaming"],
            "command_s": float("nan"),  # a child process: its CPU time is not this process's
            "inference_s": cpu["inference"],
            "reference_s": cpu["ref"],
        },
        "segments": (got["fast"]["utterances"], got["streaming"]["utterances"], len(ref)),
        "identical_outputs": identical,
        "command_same_segments": recs["cli"] == recs["fast"],
        "max_boundary_diff_samples": worst,
    }


def _load_devset_module() -> Any:
    path = os.path.join(HERE, "..", "scripts", "make_devset.py")
    spec = importlib.util.spec_from_file_location("make_devset", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def accuracy() -> list[tuple[str, dict[str, Any]]]:
    """Pooled scores per backend on the default dev set grid."""
    import argparse as ap
    import json

    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    from rxaudio.apps._segment import segment_file
    from rxaudio.io.labels import read_labels
    from rxaudio.vad.metrics import evaluate

    dev = _load_devset_module()
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as d:
        names = dev.make_devset(d, [20, 10, 5, 0], [8000, 16000, 44100, 48000])
        truth = {n: read_labels(os.path.join(d, n + ".jsonl")) for n in names}
        durations = {n: sf.info(os.path.join(d, n + ".wav")).duration for n in names}

        def pooled(hyp: dict[str, list[tuple[float, float]]], audio: Any = None) -> dict[str, Any]:
            ref_all, hyp_all, aud_all, off = [], [], [], 0.0
            for n in names:
                ref_all += [(off + r["start"], off + r["end"]) for r in truth[n]]
                hyp_all += [(off + a, off + b) for a, b in hyp[n]]
                if audio is not None:
                    aud_all += [(off + a, off + b) for a, b in audio[n]]
                off += durations[n] + 1.0
            sc = evaluate(ref_all, hyp_all, duration=off, hyp_audio=aud_all if audio else None)
            return sc.to_dict()

        model = load_silero_vad()
        ref_hyp = {}
        for n in names:
            x, sr = sf.read(os.path.join(d, n + ".wav"), dtype="float32")
            x16 = np.asarray(soxr.resample(x, sr, 16000), dtype=np.float32)
            ts = get_speech_timestamps(torch.from_numpy(x16), model, return_seconds=False)
            ref_hyp[n] = [(t["start"] / 16000, t["end"] / 16000) for t in ts]
        rows.append(("get_speech_timestamps (defaults)", pooled(ref_hyp)))
        for backend, extra in (
            ("silero", {}),
            ("silero-torch", {}),
            ("webrtc", {"mode": 3}),
            ("webrtc", {"mode": 1}),
            ("energy", {}),
        ):
            args = ap.Namespace(
                backend=backend, mode=extra.get("mode", 3), frame_ms=30, threshold=0.5,
                neg_threshold=None, min_speech_ms=250, min_silence_ms=100, pre_roll_ms=300,
                post_roll_ms=200, min_ms=0, max_ms=30000,
            )  # fmt: skip
            out = os.path.join(d, f"out_{backend}_{extra.get('mode', '')}")
            os.makedirs(out)
            hyp, aud = {}, {}
            for n in names:
                segment_file(os.path.join(d, n + ".wav"), n, out, args)
                with open(os.path.join(out, n + ".jsonl")) as f:
                    recs = [json.loads(line) for line in f]
                hyp[n] = [(r["start"], r["end"]) for r in recs]
                aud[n] = [(r["audio_start"], r["audio_end"]) for r in recs]
            label = backend + (f" mode {extra['mode']}" if "mode" in extra else "")
            rows.append((label, pooled(hyp, aud)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description="VAD speed and accuracy")
    ap.add_argument("--minutes", type=float, default=10.0, help="audio for the segment race")
    ap.add_argument("--repeat", type=int, default=15, help="interleaved rounds")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the race")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--race-only", action="store_true", help="only the segment race")
    ap.add_argument(
        "--same-out", action="store_true", help="race: every run overwrites the same folder"
    )
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument(
        "--pair",
        action="store_true",
        help="only the vad operator (live chunks) against onnxruntime direct, 30 s, 11 rounds",
    )
    ap.add_argument(
        "--pair-runs", type=int, default=5, help="--pair: runs, their median is the figure"
    )
    ap.add_argument(
        "--chain",
        action="store_true",
        help="only vad ! hysteresis ! buffer_utterance on a 2-minute file against onnxruntime",
    )
    ap.add_argument("--tree-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.tree_worker:  # one run for benchmarks.capacity --vad: JSON on the last line
        import json

        one_blas_thread()
        print(json.dumps(tree_worker(30.0, 11, 120.0)), flush=True)
        return
    if a.pair or a.chain:
        one_blas_thread()
    if a.pair:
        ratios = pair_runs(a.pair_runs, 30.0, 11)
        wall, cpu = [r[0] for r in ratios], [r[1] for r in ratios]
        print("vad operator (live 512-sample chunks) / onnxruntime direct, per run: "
              + ", ".join(f"{r:.3f}x" for r in wall)
              + f"; median of {len(wall)}: {statistics.median(wall):.3f}x (in CPU time: "
              + ", ".join(f"{r:.3f}x" for r in cpu)
              + f"; median {statistics.median(cpu):.3f}x)")  # fmt: skip
    if a.chain:
        c = chain_file()
        print(f"vad ! hysteresis ! buffer_utterance on {c['seconds']:.0f} s of file: "
              f"{c['chain_s']:.3f} s ({c['chain_cpu_s']:.3f} s CPU), onnxruntime direct "
              f"{c['direct_s']:.3f} s: {c['chain_s'] / c['direct_s']:.3f}x; "
              f"{c['utterances']:.0f} utterances")  # fmt: skip
    if a.pair or a.chain:
        return
    if not a.no_speed:
        res = {} if a.race_only else speed(a.repeat)
        if res:
            direct = res["onnxruntime called directly"]
            single = res["SileroOnnx.score"]
            print("| scoring one 32 ms window | us | vs onnxruntime direct |")
            print("|---|---:|---:|")
            for k, v in res.items():
                print(f"| {k} | {v:.0f} | {v / direct:.2f}x |")
            batched = res["batched, per stream-window at N = 32"]
            live = res["vad operator, 32 ms chunks (live)"]
            print(f"\nbatched N = 32 vs single stream: {batched / single:.2f}x")
            print(f"JIT model / vad operator (live): {res['package JIT model'] / live:.2f}x")
        seg = segment_speed(a.minutes, a.rounds, a.same_out)
        secs, ref_s = seg["seconds"], seg["reference_s"]
        where = "the same output folder" if a.same_out else "a new output folder per run"
        print(
            f"\nsegment race on {secs / 60:.0f} min, best of {a.rounds} interleaved rounds, "
            f"{where}:"
        )
        print("| run | wall s | RTF | get_speech_timestamps / this | CPU s | ratio in CPU time |")
        print("|---|---:|---:|---:|---:|---:|")
        cpu = seg["cpu_s"]
        for label, key in (
            ("get_speech_timestamps (JIT, one thread)", "reference_s"),
            ("`rxaudio segment` (offline fast path)", "ours_s"),
            ("`rxaudio segment --streaming` (Rx operators)", "streaming_s"),
            ("`rxaudio segment FILE --out DIR` (whole command, start-up included)", "command_s"),
            ("sequence model alone, same windows", "inference_s"),
        ):
            v, c = seg[key], cpu[key]
            # NaN: a child process, whose CPU time is not ours to read
            in_cpu = "- | -" if c != c else f"{c:.3f} | {cpu['reference_s'] / c:.2f}x"
            print(f"| {label} | {v:.3f} | {v / secs:.5f} | {ref_s / v:.2f}x | {in_cpu} |")
        print(
            f"segments (fast, streaming, reference): {seg['segments']}; fast and streaming "
            f"outputs byte-identical: {seg['identical_outputs']}; the whole command's segments "
            f"the fast path's: {seg['command_same_segments']}; max boundary difference to "
            f"the reference {seg['max_boundary_diff_samples']:.0f} samples; fast path beyond "
            f"inference: {seg['ours_s'] - seg['inference_s']:.3f} s"
        )
        sys.stdout.flush()
    if not a.no_accuracy:
        print("\n| backend | F1 | precision | recall | missed s | false alarm s | FA/min "
              "| onset err s | offset err s | late WAV starts % |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, sc in accuracy():
            late = "-" if sc["late_starts_pct"] is None else f"{sc['late_starts_pct']:.1f}"
            print(
                f"| {label} | {sc['f1']:.3f} | {sc['precision']:.3f} | {sc['recall']:.3f} | "
                f"{sc['missed_s']:.1f} | {sc['false_alarm_s']:.1f} | "
                f"{sc['false_alarms_per_min']:.2f} | {sc['onset_error_s']:.3f} | "
                f"{sc['offset_error_s']:.3f} | {late} |"
            )


if __name__ == "__main__":
    main()
