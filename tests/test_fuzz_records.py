"""Fuzz ``report`` and ``check`` with records of random types and values (issue 14): they
never end in a traceback, and a record with a non-number where a number belongs never
passes the CI gate."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.schema import AttackRecord, Flag, ResultRecord

runner = CliRunner()

BASE = ResultRecord(
    name="m", dataset="fmnist", eps=0.1, clean_acc=80.0, robust_acc=60.0, norm="Linf", eps_text="0.1", n_examples=100, seed=0,
    attacks=["pgd-20"], per_attack=[AttackRecord("pgd-20", 60.0, broken=20, n_attacked=80)], robust_acc_ci=[50.2, 69.1],
    flags=[Flag("zero-gradients", "warning", "m", 1.0)], verdict="suspicious", compute={"seconds": 1.0, "forward_passes": 10},
).to_dict()

# Where a number belongs: the paths of every numeric field of a record.
NUMERIC = [("clean_acc",), ("robust_acc",), ("eps",), ("n_examples",), ("seed",), ("robust_acc_ci", 0), ("robust_acc_ci", 1),
           ("per_attack", 0, "robust_acc"), ("per_attack", 0, "broken"), ("per_attack", 0, "seconds"), ("flags", 0, "value")]
# Of those, the ones a record may leave empty (None): a flag without a value, a skipped attack.
OPTIONAL = {("flags", 0, "value"), ("per_attack", 0, "robust_acc")}
ANY_FIELD = [(k,) for k in BASE] + [("per_attack", 0, k) for k in BASE["per_attack"][0]] + [("flags", 0, k) for k in BASE["flags"][0]]

not_a_number = st.one_of(
    st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")), st.text(max_size=8), st.none(), st.booleans(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30), st.floats(allow_nan=True), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)


def _set(record: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(record)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _write(folder: Path, name: str, record: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    # NaN and infinity as JSON's non-standard literals: what a careless writer produces
    path.write_text(json.dumps(record, allow_nan=True, default=str))
    return path


def _no_traceback(result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(path=st.sampled_from(NUMERIC), value=not_a_number, where=st.sampled_from(["current", "baseline"]))
def test_check_never_passes_a_non_number(tmp_path_factory, path, value, where):
    d = tmp_path_factory.mktemp("fuzz")
    bad = _set(BASE, path, value)
    cur = _write(d / "cur", "m", bad if where == "current" else BASE)
    base = _write(d / "base", "m", bad if where == "baseline" else BASE)
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return  # (not generated: every value here is a non-number)
    if value is None and path in OPTIONAL:
        return  # a valid record: no traceback is all there is to check
    assert result.exit_code == 2, (path, value, result.output)
    assert result.output.strip().startswith("error:") and len(result.output.strip().splitlines()) == 1


@FUZZ
@given(path=st.sampled_from(ANY_FIELD), value=anything)
def test_report_and_check_never_traceback(tmp_path_factory, path, value):
    d = tmp_path_factory.mktemp("fuzz")
    rec = _set(BASE, path, value)
    cur = _write(d / "results" / "fmnist" / "Linf", "m", rec)
    result = runner.invoke(app, ["report", str(d / "results"), "--out", str(d / "LB.md")])
    _no_traceback(result)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.output.strip().startswith("error:")
    base = _write(d / "base", "m", BASE)
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    assert result.exit_code in (0, 1, 2), result.output


@pytest.mark.parametrize("text", ["", "[]", "{", "null", '"a"', "1e999", "NaN", '{"schema_version": 1}'])
def test_check_on_garbage_files(tmp_path, text):
    cur = tmp_path / "cur.json"
    cur.write_text(text)
    base = _write(tmp_path / "base", "m", BASE)
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    assert result.exit_code == 2 and result.output.startswith("error:")
