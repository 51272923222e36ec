"""ServerConfig declared once: flags, ranges, help, checks, hello limits and docs from it."""

from __future__ import annotations

import argparse
import ast
import inspect
import math
from pathlib import Path
from typing import Any

import pytest

from rxaudio.apps import _serve
from rxaudio.errors import ConfigError
from rxaudio.server import ServerConfig
from rxaudio.server.config import (
    OPTIONS_BEGIN,
    OPTIONS_END,
    WORKER_MARKS,
    Limit,
    config_props,
    hello_limits,
    limit_flags,
    with_options,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "apps" / "serve.md"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    _serve.add_arguments(p)
    return p


def test_the_docs_option_table_is_generated_from_the_declaration() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert OPTIONS_BEGIN in doc and OPTIONS_END in doc
    assert with_options(doc) == doc, "run: python -m rxaudio.server.config"


def test_every_flag_default_range_and_help_comes_from_the_declaration() -> None:
    actions = {a.dest: a for a in _parser()._actions}
    flagged = {n: (p, f) for n, (p, f) in config_props().items() if f is not None}
    assert len(flagged) > 20
    for name, (prop, flag) in flagged.items():
        action = actions[name]
        assert action.option_strings == [flag.name]
        if flag.action in ("store_true", "negate"):
            assert action.default is False
            continue
        if flag.action == "append":
            assert action.default == []
            continue
        assert action.default == prop.default, flag.name
        if prop.range is not None or prop.choices is not None:
            assert prop.describe() in (action.help or "").replace("%%", "%"), flag.name
    # the command's defaults build the declared configuration (scaled flags scaled back)
    args = _parser().parse_args([])
    built = _serve.config_from_args(args)
    for name, (_, flag) in flagged.items():
        if flag.name == "--out":
            continue  # the command writes under out/serve; the library default writes nothing
        want = ServerConfig.__dataclass_fields__[name].default
        if name == "redis_results":
            continue  # derived from the stream when Redis is on
        assert getattr(built, name) == want or math.isclose(getattr(built, name), want), name


def _numbers(fn: Any) -> set[float]:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(fn)))
    return {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, int | float)
        and not isinstance(n.value, bool)
    }


def test_no_default_or_bound_is_restated_where_the_flags_are_built() -> None:
    declared: set[float] = set()
    for prop, flag in config_props().values():
        if isinstance(prop.default, int | float) and not isinstance(prop.default, bool):
            declared.add(prop.default)
        if prop.range is not None:
            declared |= {b for b in (prop.range.lo, prop.range.hi) if b is not None}
        if flag is not None and flag.scale != 1:
            declared.add(flag.scale)
    declared.add(len(WORKER_MARKS))
    declared -= {0, 1}  # counting from 0 or 1 restates nothing
    for fn in (
        _serve.add_arguments,
        _serve.add_config_flags,
        _serve.config_from_args,
        _serve._processes,
    ):
        assert not _numbers(fn) & declared, (fn.__name__, _numbers(fn) & declared)


def _outside(prop: Any) -> Any:
    if prop.choices is not None:
        return "no-such-choice"
    rng = prop.range
    if rng.lo is not None:
        return rng.lo if rng.lo_open else (rng.lo - 1 if prop.type is int else rng.lo - 0.001)
    return rng.hi + 1


def test_every_check_says_the_flag_and_its_range_in_one_form(tmp_path: Path) -> None:
    checked = [(n, p, f) for n, (p, f) in config_props().items() if p.range or p.choices]
    assert {n for n, *_ in checked} >= {"grace_s", "batch_wait_s", "max_out_bytes", "loop"}
    for name, prop, flag in checked:
        value = _outside(prop)
        if flag is not None and flag.scale != 1:
            value = value / flag.scale
        with pytest.raises(ConfigError) as err:
            ServerConfig(out_dir=str(tmp_path), **{name: value})
        message = str(err.value)
        assert message.startswith(f"serve: {prop.name} must be {prop.describe()}, got "), message
        assert "\n" not in message
    # a scaled flag says its own unit: --batch-wait-ms, not seconds
    with pytest.raises(ConfigError, match=r"--batch-wait-ms must be .* in \[0, 100\] ms, got 500"):
        ServerConfig(batch_wait_s=0.5)


def test_processes_is_bounded_by_the_worker_marks() -> None:
    assert _serve._processes(str(len(WORKER_MARKS))) == len(WORKER_MARKS)
    with pytest.raises(argparse.ArgumentTypeError, match=f"from 1 to {len(WORKER_MARKS)}"):
        _serve._processes(str(len(WORKER_MARKS) + 1))


def test_hello_limits_and_limit_names_come_from_the_fields() -> None:
    config = ServerConfig(control_rate=7.0, max_session_bytes=8192)
    limits = hello_limits(config)
    assert limits == {
        "start_timeout_s": 60.0,
        "control_rate": 7.0,
        "control_burst": 100.0,
        "sessions_per_minute": 60,
        "max_session_bytes": 8192,
    }
    flags = limit_flags()
    assert set(flags) == set(Limit)  # every limit is some field's, each named once
    assert flags[Limit.GRACE_SESSIONS] == "--max-grace-sessions"
    from rxaudio.server.metrics import LIMITS

    assert LIMITS == tuple(Limit)
