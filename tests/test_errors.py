"""Errors carry their context: the operator and the sample index."""

from __future__ import annotations

from rxaudio.errors import StreamError
from rxaudio.operators import reframe
from rxaudio.testing import frame, run_marbles


def test_stream_error_names_operator_and_index() -> None:
    out = run_marbles("-a-b-|", {"a": frame(0, 4), "b": frame(2, 4)}, reframe(4))
    err = out.error
    assert isinstance(err, StreamError)
    assert err.operator == "reframe" and err.sample_index == 2
    assert str(err).startswith("reframe at sample 2:")
