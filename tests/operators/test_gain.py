"""``gain``: marbles in virtual time and bad options."""

from __future__ import annotations

import numpy as np
import pytest

from rxaudio.errors import ConfigError, StreamError
from rxaudio.operators import gain
from rxaudio.testing import frame, run_marbles


def test_gain_marbles() -> None:
    out = run_marbles(
        "-a-b-|", {"a": frame(0, 4, value=0.5), "b": frame(4, 4, value=0.25)}, gain(6.0)
    )
    assert out.marbles() == "-x-x-|"
    assert [f.start for f in out.values] == [0, 4]
    assert np.allclose(out.values[0].samples, 0.5 * 10 ** (6 / 20))
    assert np.allclose(out.values[1].samples, 0.25 * 10 ** (6 / 20))


def test_gain_error_dispose_resubscribe() -> None:
    boom = RuntimeError("boom")
    assert run_marbles("-a-#", {"a": frame()}, gain(1), error=boom).error is boom
    out = run_marbles("-a-a-a-|", {"a": frame()}, gain(1), dispose_at=3)
    assert len(out.values) == 1 and not out.completed
    op = gain(-6)
    assert len(run_marbles("-a-|", {"a": frame()}, op).values) == len(
        run_marbles("-a-|", {"a": frame()}, op).values
    )
    bad = run_marbles("-a-|", {"a": "not audio"}, gain(1))
    assert isinstance(bad.error, StreamError) and bad.error.operator == "gain"


@pytest.mark.parametrize("db", [float("nan"), float("inf"), 200.0, "6"])
def test_gain_bad_db(db: object) -> None:
    with pytest.raises(ConfigError, match="db"):
        gain(db)  # type: ignore[arg-type]
