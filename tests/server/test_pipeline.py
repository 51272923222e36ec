"""rxaudio.server.pipeline without a socket: the chain's options checked by the operators'
rules, spectrogram rows quantised to bytes."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from rxaudio.errors import ConfigError
from rxaudio.server.pipeline import ChainOptions, check_settings


def test_chain_options_validated_with_the_operators_rules() -> None:
    with pytest.raises(ConfigError, match="backend"):
        ChainOptions(backend="nope")
    with pytest.raises(ConfigError, match="max_ms"):
        ChainOptions(settings={"max_ms": 500.0})
    with pytest.raises(ConfigError, match="neg_threshold"):
        check_settings({"threshold": 0.3, "neg_threshold": 0.5})
    check_settings({"threshold": 0.6, "min_silence_ms": 400.0, "pre_roll_ms": 0.0})


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
def test_spectrogram_rows_quantise_as_np_clip_does() -> None:

    from rxaudio.server.pipeline import SPEC_CEIL_DB, SPEC_FLOOR_DB, _u8_rows

    def reference(values: np.ndarray) -> str:  # the straightforward form, one pass per step
        scaled = (values - SPEC_FLOOR_DB) * (255.0 / (SPEC_CEIL_DB - SPEC_FLOOR_DB))
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        q = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return base64.b64encode(q.tobytes()).decode("ascii")

    rng = np.random.default_rng(12)
    rows = (rng.standard_normal((7, 64)) * 60).astype(np.float32)  # beyond both ends too
    rows[0, :4] = [-60.0, 40.0, -60.2, 40.2]
    assert _u8_rows(rows) == reference(rows)
    for bad in (np.nan, np.inf, -np.inf):
        worse = rows.copy()
        worse[3, 5] = bad
        assert _u8_rows(worse) == reference(worse)
