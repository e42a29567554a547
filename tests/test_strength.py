"""Evaluation strength (issue 22 item 1, issue 24 item 5): ``reliable`` is reachable only by
an evaluation at least as strong as AutoAttack (standard; rand for a randomised model),
read from the record's own ``per_attack``; a weaker one is ``not-evaluated-fully``, and a
run in which no attack ran is never reliable."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.errors import ResultError
from a3bench.eval.diagnostics import verdict
from a3bench.eval.strength import AUTOATTACK_GROUPS, shortfall, shown_verdict, strength_of
from a3bench.flags import RANDOMIZED_OUTPUTS, UNCONFIRMED_SUCCESSES, BLACK_BOX_BEATS_WHITE_BOX
from a3bench.schema import AttackRecord, ResultRecord, Verdict, read_record, write_record

REPO = Path(__file__).resolve().parents[1]
RAN, SKIPPED, FAILED = "ran", "skipped", "failed"


def group(name: str, statuses: list[str]) -> list[AttackRecord]:
    return [AttackRecord(f"{name}-{i}", 50.0, status=s, group=name) for i, s in enumerate(statuses)]


STANDARD = lambda *s: group("autoattack", list(s) or [RAN] * 4)  # noqa: E731
RAND = lambda *s: group("autoattack-rand", list(s) or [RAN] * 2)  # noqa: E731
PGD = [AttackRecord("pgd-20", 50.0)]
ADAPTIVE = [AttackRecord("bpda", 45.0)]

# (per_attack, randomised, complete)
CASES = [
    (STANDARD(), False, True),
    (STANDARD() + ADAPTIVE, False, True),
    (PGD + STANDARD(), False, True),  # AutoAttack after another attack still ran in full on what was left
    (STANDARD(RAN, RAN, FAILED, RAN), False, False),
    (STANDARD(RAN, SKIPPED, RAN, RAN), False, False),
    (STANDARD(RAN, RAN, RAN), False, False),  # a component missing
    (RAND(), True, True),
    (RAND() + ADAPTIVE, True, True),
    (RAND(), False, False),  # the rand version is weaker than standard on a deterministic model
    (STANDARD(), True, False),  # a randomised model needs the version for randomised defenses
    (RAND(RAN, FAILED), True, False),
    (PGD, False, False),
    (ADAPTIVE + PGD, False, False),
    ([AttackRecord("bpda-graph", 80.0, status=SKIPPED)], False, False),  # nothing ran
    ([], False, False),
]


@pytest.mark.parametrize("per_attack, randomised, complete", CASES)
def test_strength_reads_per_attack(per_attack, randomised, complete):
    s = strength_of(per_attack, "full", randomised=randomised)
    assert s.complete is complete and s.randomised is randomised
    assert s.attacks == [r.name for r in per_attack if r.status == RAN]
    assert (shortfall(s) is None) is complete
    if not s.attacks:
        assert "no attack ran" in shortfall(s)


FLAG_SETS = [[], [UNCONFIRMED_SUCCESSES("m")], [BLACK_BOX_BEATS_WHITE_BOX("m")], [UNCONFIRMED_SUCCESSES("m"), BLACK_BOX_BEATS_WHITE_BOX("m")]]


@pytest.mark.parametrize("case, flags", list(itertools.product(CASES, FLAG_SETS)))
def test_reliable_only_for_a_complete_evaluation(case, flags):
    """The invariant of the issue, over every strength and flag set: reliable ⇒ complete and no
    flag; an error is unreliable and a warning suspicious whatever the strength; a clean but
    weak evaluation is not-evaluated-fully."""
    per_attack, randomised, complete = case
    v, reason = verdict(flags, strength_of(per_attack, None, randomised=randomised))
    if any(f.severity == "error" for f in flags):
        assert v is Verdict.UNRELIABLE
    elif flags:
        assert v is Verdict.SUSPICIOUS
    else:
        assert v is (Verdict.RELIABLE if complete else Verdict.NOT_EVALUATED_FULLY)
    if v is Verdict.RELIABLE:
        assert complete and not flags
    if v is Verdict.NOT_EVALUATED_FULLY:
        assert "weaker than AutoAttack" in reason and "--suite standard or full" in reason


def test_verdict_ranks_order_not_evaluated_fully_between_reliable_and_suspicious():
    assert [v.value for v in sorted(Verdict, key=lambda v: v.rank)] == ["reliable", "not-evaluated-fully", "suspicious", "unreliable"]


def test_every_autoattack_group_is_a_version():
    """Strength knows every composite AutoAttack is recorded under (the registry's groups)."""
    from a3bench.attacks.registry import build_attack

    for name, (version, n_components) in AUTOATTACK_GROUPS.items():
        attacks = build_attack(name)
        assert len(attacks) == n_components and {a.group for a in attacks} == {name}
        assert {a.config()["version"] for a in attacks} == {version}


def record(per_attack, **kw) -> ResultRecord:
    return ResultRecord(name="m", dataset="fmnist", eps=0.1, clean_acc=90.0, robust_acc=50.0, n_examples=10, per_attack=per_attack, **kw)


def test_record_carries_its_strength_and_refuses_a_claim_its_attacks_do_not_show(tmp_path):
    rec = record(PGD, suite="quick")
    p = tmp_path / "r.json"
    write_record(p, rec)
    stored = json.loads(p.read_text())["strength"]
    assert stored == {"suite": "quick", "attacks": ["pgd-20"], "autoattack": None, "randomised": False, "complete": False}
    assert read_record(p).strength.complete is False
    lie = json.loads(p.read_text())
    lie["strength"] = {**stored, "complete": True, "autoattack": "standard"}
    p.write_text(json.dumps(lie))
    with pytest.raises(ResultError, match="strength .* does not agree with per_attack"):
        read_record(p)
    # Old records have no strength stored: it is derived, so they still load.
    del lie["strength"]
    p.write_text(json.dumps(lie))
    assert read_record(p).strength.attacks == ["pgd-20"]
    # A randomised model (judged by the majority of draws) needs the rand version.
    assert record(RAND(), compute={"randomised": {"draws": 10}}).strength.complete
    assert record(RAND(), flags=[RANDOMIZED_OUTPUTS("m")]).strength.complete
    assert not record(RAND()).strength.complete


def test_an_old_reliable_record_of_a_weak_evaluation_is_never_shown_reliable(tmp_path):
    """Records written before the rule said reliable for PGD-20 alone (the CI baseline did):
    reports show not-evaluated-fully, never green."""
    old = record(PGD, verdict="reliable", verdict_reason="no diagnostic fired")
    assert shown_verdict(old)[0] == "not-evaluated-fully" and "weaker than AutoAttack" in shown_verdict(old)[1]
    full = record(STANDARD(), verdict="reliable")
    assert shown_verdict(full) == ("reliable", "")
    assert shown_verdict(record(PGD, verdict="unreliable", verdict_reason="x")) == ("unreliable", "x")


@pytest.mark.parametrize("record_file", sorted(p.name for p in (REPO / "results").rglob("*.json")
                                               if not p.name.endswith((".outcomes.json", ".audit.json", ".sweep.json", ".state.json"))))
def test_committed_records_have_a_strength_that_matches_their_verdict(record_file):
    path = next((REPO / "results").rglob(record_file))
    rec = read_record(path)
    assert rec.strength is not None
    if rec.verdict == "reliable":
        assert rec.strength.complete, f"{record_file} says reliable but {shortfall(rec.strength)}"


def test_a_run_in_which_no_attack_ran_is_never_reliable(tmp_path):
    """Issue 24 item 5: bpda-graph is skipped on an honest model; the worst case is then the
    clean accuracy and the verdict must say the model was not evaluated."""
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["attack", "--model", "smallcnn.pgdat_fmnist", "--attacks", "bpda-graph", "-n", "32", "--batch-size", "32",
                                   "--device", "cpu", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    rec = read_record(out)
    assert [a.status for a in rec.per_attack] == ["skipped"] and rec.robust_acc == rec.clean_acc
    assert rec.verdict == "not-evaluated-fully" and "no attack ran" in rec.verdict_reason
    assert "verdict: " in res.output and "reliable" not in res.output.replace("not-evaluated-fully", "").replace("unreliable", "")
