"""Turn stream items into JSON-ready dicts (the JSONL sink's default serializer)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def _value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        if v.size <= 64 and v.ndim <= 1:
            return [_value(x) for x in v.tolist()]
        return {"shape": list(v.shape), "dtype": str(v.dtype)}
    if isinstance(v, np.generic):
        return _value(v.item())
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return to_record(v)
    return v


def to_record(item: Any) -> dict[str, Any]:
    """A JSON-ready dict for an item (NaN/inf become ``None``).

    Frames and events give their one dict form, ``to_dict()`` (``docs/events.md``), as does any
    object with such a method; other dataclasses give their fields (large arrays are summarised
    by shape and dtype) plus ``type`` and, when they have one, ``time`` in seconds; dicts pass
    through.
    """
    to_dict = getattr(item, "to_dict", None)
    if callable(to_dict):
        return {str(k): _value(v) for k, v in dict(to_dict()).items()}
    if isinstance(item, dict):
        return {str(k): _value(v) for k, v in item.items()}
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        rec: dict[str, Any] = {"type": type(item).__name__}
        for f in dataclasses.fields(item):
            rec[f.name] = _value(getattr(item, f.name))
        t = getattr(item, "time", None)
        if isinstance(t, float | int) and "time" not in rec:
            rec["time"] = float(t)
        return rec
    raise TypeError(
        f"cannot serialise {type(item).__name__} to JSON; give it a to_dict() method or map it "
        "to a dict first"
    )
