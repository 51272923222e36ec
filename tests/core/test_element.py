"""Elements declare the caps they accept and produce."""

from __future__ import annotations

from rxaudio.operators import reframe
from rxaudio.pipeline import Caps


def test_operators_declare_their_caps() -> None:
    from rxaudio.operators import Element, channels, level, resample

    r = reframe(512)
    assert isinstance(r, Element) and r.produces == Caps(frame_size=512)
    assert resample(8000).produces == Caps(sample_rate=8000)
    assert channels(2).produces == Caps(channels=2)
    assert level().produces.kind == "level"
    assert "reframe" in repr(r)


class _Told:
    """A stage told why it ends (``close``) instead of flushed."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def push(self, item: int) -> list[int]:
        return [item * 10]

    def close(self, reason: str) -> list[str]:
        self.log.append(reason)
        return [reason]


def test_one_stage_protocol_close_with_a_reason_or_flush() -> None:
    import reactivex as rx
    from reactivex import operators as ops

    from rxaudio.core.element import stage_element, stage_operator

    log: list[str] = []
    told = stage_element("told", lambda: _Told(log))
    assert rx.of(1, 2).pipe(told, ops.to_list()).run() == [10, 20, "end_of_stream"]
    out: list[object] = []
    boom = RuntimeError("upstream")
    rx.concat(rx.of(1), rx.throw(boom)).pipe(told).subscribe(out.append, out.append)
    assert out == [10, "error", boom] and log == ["end_of_stream", "error"]

    class Flushed:
        def push(self, item: int) -> list[int]:
            return []

        def flush(self) -> list[str]:
            return ["flushed"]

    flushed = stage_operator("flushed", Flushed)
    assert rx.of(1).pipe(flushed, ops.to_list()).run() == ["flushed"]
    out.clear()  # a flushed stage is not told of an upstream error: the error passes on alone
    rx.concat(rx.of(1), rx.throw(boom)).pipe(flushed).subscribe(out.append, out.append)
    assert out == [boom]
