from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rxaudio.core.check import all_finite


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
def test_all_finite_finds_every_kind_of_bad_sample() -> None:
    x = np.zeros((512, 1), dtype=np.float32)
    assert all_finite(x)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[100, 0] = bad
        assert not all_finite(y)
    y = x.copy()
    y[1, 0], y[2, 0] = np.inf, -np.inf  # their squares do not cancel
    assert not all_finite(y)


def test_all_finite_never_overflows_and_takes_any_shape() -> None:
    import warnings

    x = np.full((512, 2), 3e38, dtype=np.float32)  # finite; their squares would overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        assert all_finite(x)
        assert all_finite(x[::2, ::-1])  # a strided view: checked on a copy, same answer
        assert all_finite(np.ones(10_000, dtype=np.float32))  # longer than the zeros kept
    assert all_finite(np.ones((3, 3)))  # float64: numpy's own check
    assert not all_finite(np.array([1.0, np.nan]))


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 64), st.integers(1, 3)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_all_finite_equals_numpy(x: np.ndarray) -> None:
    assert all_finite(x) == bool(np.isfinite(x).all())
