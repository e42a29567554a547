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


# --------------------------------------------------------------------------- issue 24: ranges, outcomes, audits, resume state

# Where a record's numbers must lie for check and report to read it (schema.py): [low, high].
RANGES = {("clean_acc",): (0, 100), ("robust_acc",): (0, 100), ("eps",): (0, math.inf), ("n_examples",): (0, math.inf),
          ("seed",): (0, math.inf), ("autoattack_acc",): (0, 100), ("robust_acc_ci", 0): (0, 100), ("robust_acc_ci", 1): (0, 100),
          ("per_attack", 0, "robust_acc"): (0, 100), ("per_attack", 0, "broken"): (0, math.inf),
          ("per_attack", 0, "n_attacked"): (0, math.inf), ("per_attack", 0, "seconds"): (0, math.inf)}
numbers = st.one_of(st.integers(min_value=-10**6, max_value=10**6), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
                    st.sampled_from([-1, 0, 100, 100.5, 150, 250, -7, 1e300, -1e300]))


def _consistent(folder: Path, name: str = "m") -> Path:
    """A record with its outcomes, written together (they agree: 40 % robust of 10, 80 % clean)."""
    from a3bench.results import write_run
    from a3bench.schema import Outcomes
    from a3bench.stats import wilson_interval

    robust, clean = [True] * 4 + [False] * 6, [True] * 8 + [False] * 2
    outcomes = Outcomes(robust=robust, indices=list(range(10)), labels=[0] * 10, clean_pred=[0 if c else 1 for c in clean],
                        clean_correct=clean, broken_by=[None if r else ("pgd-20" if c else "clean") for r, c in zip(robust, clean)])
    record = ResultRecord.from_dict({**BASE, "n_examples": 10, "clean_acc": 80.0, "robust_acc": 40.0, "flags": [], "verdict": "reliable",
                                     "per_attack": [AttackRecord("pgd-20", 40.0, broken=4, n_attacked=8).__dict__ | {"status": "ran", "kind": "white-box"}],
                                     "robust_acc_ci": [round(v, 4) for v in wilson_interval(4, 10)]})
    return write_run(folder / f"{name}.json", record, outcomes)


@FUZZ
@given(path=st.sampled_from(sorted(RANGES)), value=numbers)
def test_check_and_report_read_only_numbers_in_their_ranges(tmp_path_factory, path, value):
    d = tmp_path_factory.mktemp("fuzz")
    cur = _consistent(d / "cur")
    base = _consistent(d / "base")
    data = json.loads(cur.read_text())
    cur.write_text(json.dumps(_set(data, path, value)))
    low, high = RANGES[path]
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    report = runner.invoke(app, ["report", str(cur), "--out", str(d / "LB.md")])
    _no_traceback(report)
    if not low <= value <= high:  # out of range: never read, by either
        assert result.exit_code == 2 and result.output.startswith("error:"), (path, value, result.output)
        assert report.exit_code == 2 and report.output.startswith("error:"), (path, value, report.output)
    else:
        assert result.exit_code in (0, 1, 2) and report.exit_code in (0, 2)


@FUZZ
@given(path=st.sampled_from(["robust", "clean_correct", "broken_by", "indices", "labels", "clean_pred", "correct_share"]), value=anything)
def test_check_never_passes_outcomes_that_disagree_with_the_record(tmp_path_factory, path, value):
    from a3bench.schema import outcome_problems, read_outcomes, read_record

    d = tmp_path_factory.mktemp("fuzz")
    cur, base = _consistent(d / "cur"), _consistent(d / "base")
    opath = cur.with_name("m.outcomes.json")
    opath.write_text(json.dumps({**json.loads(opath.read_text()), path: value}, allow_nan=True, default=str))
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    if result.exit_code != 2:  # accepted: then what it compared agrees with the record
        assert outcome_problems(read_record(cur), read_outcomes(opath)) == []


@FUZZ
@given(value=anything)
def test_a_junk_audit_field_is_refused_or_well_formed(tmp_path_factory, value):
    from a3bench.schema import AuditSummary, _from_dict

    d = tmp_path_factory.mktemp("fuzz")
    cur, base = _consistent(d / "cur"), _consistent(d / "base")
    cur.write_text(json.dumps({**json.loads(cur.read_text()), "audit": value}, allow_nan=True, default=str))
    result = runner.invoke(app, ["check", str(cur), "--baseline", str(base)])
    _no_traceback(result)
    report = runner.invoke(app, ["report", str(cur), "--out", str(d / "LB.md")])
    _no_traceback(report)
    if result.exit_code != 2:
        assert value is None or isinstance(_from_dict(AuditSummary, value, "audit"), AuditSummary)
        assert report.exit_code == 0, report.output


def _state() -> dict:
    """A resume state as the runner saves it mid-attack: 6 examples, one attack finished."""
    from a3bench.schema import ResumeState

    running = AttackRecord("pgd-20", None, n_attacked=3).__dict__ | {"status": "ran", "kind": "white-box"}
    return ResumeState(
        identity={"model": "x", "n_examples": 6, "batch_size": 2, "attacks": [{"name": "fgsm"}, {"name": "pgd-20"}]},
        clean_pred=[0, 1, 2, 3, 4, 5], broken_by=[None, "clean", "fgsm", None, None, "clean"],
        adv_pred=[None, None, 3, None, None, None], adv_distance=[None, None, 0.1, None, None, None],
        finished=[AttackRecord("fgsm", 50.0, broken=1, n_attacked=4)],
        current={"index": 1, "todo": [0, 3, 4], "batches_done": 1, "record": running, "unconfirmed": 0}, rising=[0, 4],
    ).to_dict()


STATE_PATHS = [(k,) for k in _state()] + [("current", k) for k in _state()["current"]] + [("finished", 0, k) for k in _state()["finished"][0]] \
    + [("identity", "attacks"), ("identity", "batch_size"), ("current", "record", "broken"), ("current", "todo", 0), ("rising", 0)]


@FUZZ
@given(path=st.sampled_from(STATE_PATHS), value=anything)
def test_an_edited_resume_state_reads_as_the_runner_needs_it_or_not_at_all(path, value):
    """The runner indexes its lists with ``todo``, ``rising`` and ``current.index``, builds an
    AttackRecord from ``current.record`` and slices ``identity.attacks``: a state that reads
    must make all of that work."""
    from a3bench.errors import ResultError
    from a3bench.schema import ResumeState

    try:
        state = ResumeState.from_dict(_set(_state(), path, value))
    except ResultError:
        return
    n = len(state.clean_pred)
    assert len(state.broken_by) == len(state.adv_pred) == len(state.adv_distance) == n
    assert all(0 <= k < n for k in state.rising)
    attacks = state.identity.get("attacks", [])
    assert isinstance(attacks, list) and all(isinstance(a, dict) for a in attacks)
    assert all(a.robust_acc is not None for a in state.finished if a.status == "ran")
    if state.current is not None:
        cur = state.current
        assert cur["index"] == len(state.finished) and all(0 <= k < n for k in cur["todo"]) and cur["batches_done"] >= 0
        AttackRecord(**cur["record"])  # what the runner builds when the attack ends
        assert all(isinstance(cur["record"][k], (int, float)) for k in ("broken", "forward_passes", "backward_passes", "seconds"))
