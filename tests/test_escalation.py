"""Escalation that knows what it spends (docs/diagnostics.md#escalation): its triggers are
significant at the run's n, it projects its cost before it runs, ``--max-passes`` caps it
visibly, and a resumed run judges it again under today's rule."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binom

from a3bench.attacks.escalation import escalation
from a3bench.attacks.registry import AttackPlan, build_attack
from a3bench.eval.runner import evaluate
from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX
from a3bench.schema import AttackRecord, AttackStatus, Verdict
from a3bench.stats import binomial_tail, significantly_above
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

LINF = ThreatModel("Linf", 0.1)


@pytest.mark.parametrize("k,n,p", [(0, 10, 0.1), (2, 500, 0.002), (5, 500, 0.002), (30, 10_000, 0.002), (64, 200, 0.002),
                                   (1, 1, 0.5), (7, 7, 0.3), (40, 60_000, 0.001)])
def test_the_binomial_tail_is_exact(k, n, p):
    assert math.isclose(binomial_tail(k, n, p), float(binom.sf(k - 1, n, p)), rel_tol=1e-9, abs_tol=1e-300)


def test_a_raw_count_over_the_threshold_is_not_yet_a_signal():
    assert not significantly_above(2, 500, 0.002)  # 0.4 % > 0.2 %, p = 0.26: the TRADES ViT's trigger
    assert significantly_above(5, 500, 0.002)
    assert not significantly_above(1, 500, 0.002) and not significantly_above(0, 0, 0.002)
    # the same share is a signal at a larger n
    assert not significantly_above(2, 500, 0.002) and significantly_above(40, 10_000, 0.002)


def _records(broken_by_square: int, n: int):
    attacks = build_attack("pgd-5") + build_attack("square-50")
    recs = [AttackRecord("pgd-5", 60.0, broken=10, n_attacked=n), AttackRecord("square-50", 59.0, broken=broken_by_square, n_attacked=n)]
    return attacks, recs


def test_black_box_beats_white_box_fires_only_when_significant():
    from a3bench.eval.diagnostics import reveal_flags

    attacks, recs = _records(2, 500)
    assert reveal_flags(attacks, recs, 500) == []
    attacks, recs = _records(6, 500)
    (flag,) = reveal_flags(attacks, recs, 500)
    assert flag.name == "black-box-beats-white-box" and "significantly" in flag.message


def test_the_plan_projects_its_cost_and_the_cap_leaves_attacks_out():
    import a3bench.attacks.escalation as esc

    full = escalation(["gradient-inconsistent"], robust=100, rate=5_000.0)
    assert full.attacks == list(esc.ATTACKS) and not full.left_out
    assert full.projected_forward_passes == sum(full.per_attack.values()) * 100 + full.fixed_forward_passes
    assert full.eta_seconds > 0 and "at most" in full.reason
    capped = escalation(["gradient-inconsistent"], robust=100, rate=5_000.0, max_passes=full.projected_forward_passes // 3)
    assert capped.attacks and capped.left_out and capped.attacks + capped.left_out == full.attacks
    assert capped.projected_forward_passes + capped.projected_backward_passes <= capped.max_passes
    assert "leaves out" in capped.reason
    assert escalation(["no-input-gradient"], robust=1).triggers == ["no-input-gradient"]


def _escalating(names: str) -> AttackPlan:
    attacks = [a for n in names.split(",") for a in build_attack(n)]
    return AttackPlan(names=names.split(","), attacks=attacks, suite="test", escalates=True)


@needs_fmnist
def test_a_capped_escalation_shows_in_the_record_and_the_verdict(monkeypatch, standard_model, fmnist_test):
    import a3bench.attacks.escalation as esc
    import a3bench.eval.diagnostics as diag

    monkeypatch.setattr(esc, "ATTACKS", ("square-20", "spsa-3"))
    monkeypatch.setattr(diag, "reveal_flags", lambda *a: [BLACK_BOX_BEATS_WHITE_BOX("stand-in", value=1.0)])
    res = evaluate(standard_model, fmnist_test, LINF, _escalating("fgsm"), n_examples=20, batch_size=20, probe=False, max_passes=25 * 20)
    esc_rec = res.record.diagnostics["escalation"]
    assert esc_rec["attacks"] == ["square-20"] and esc_rec["left_out"] == ["spsa-3"]
    assert [a.name for a in res.record.per_attack] == ["fgsm", "square-20"]
    assert any(f.name == "escalation-capped" for f in res.record.flags)
    assert res.record.verdict is not Verdict.RELIABLE


@needs_fmnist
def test_a_resumed_run_judges_its_escalation_again(monkeypatch, standard_model, fmnist_test, tmp_path):
    """A run escalated under a rule that counted raw examples; resumed under the significance
    rule, the trigger no longer fires: the escalation attacks that ran stay, the rest are not
    run, and the record says so (the TRADES ViT of issue 19)."""
    import a3bench.attacks.escalation as esc
    import a3bench.eval.diagnostics as diag

    monkeypatch.setattr(esc, "ATTACKS", ("square-20", "spsa-3"))
    real = diag.reveal_flags
    monkeypatch.setattr(diag, "reveal_flags", lambda *a: [BLACK_BOX_BEATS_WHITE_BOX("the old rule", value=0.4)])
    out = tmp_path / "r.json"

    def stop_after_square(ev):
        if ev.stage == "attack-end" and ev.attack == "square-20":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(standard_model, fmnist_test, LINF, _escalating("fgsm"), n_examples=20, batch_size=20, probe=False, out=out,
                 keep_state=True, progress=stop_after_square)
    monkeypatch.setattr(diag, "reveal_flags", real)
    res = evaluate(standard_model, fmnist_test, LINF, _escalating("fgsm"), n_examples=20, batch_size=20, probe=False, out=out,
                   resume=True)
    assert [a.name for a in res.record.per_attack] == ["fgsm", "square-20"]
    assert all(a.status is AttackStatus.RAN for a in res.record.per_attack)
    withdrawn = res.record.diagnostics["escalation"]["withdrawn"]
    assert "no longer fires" in withdrawn and "spsa-3 not run" in withdrawn and "square-20 had already run" in withdrawn
    assert any(n.startswith("escalation withdrawn") for n in res.record.notes)


@needs_fmnist
def test_a_long_attack_saves_inside_a_batch_and_resumes_with_the_same_outcomes(monkeypatch, standard_model, fmnist_test, tmp_path):
    """Long runs save often: an attack whose budget per example is large runs in units of a
    few examples (the state saved after each), whatever --batch-size is; killed after its
    first unit and resumed, it gives the outcomes of an uninterrupted run."""
    import a3bench.eval.cascade as cascade

    monkeypatch.setattr(cascade, "UNIT_PASSES", 6 * 12)  # spsa-2:samples=4 spends 2·(4+1)+1 = 11 passes per example
    kw = dict(n_examples=24, batch_size=24, probe=False)
    whole = evaluate(standard_model, fmnist_test, LINF, "fgsm,spsa-2:samples=4", **kw)
    out = tmp_path / "r.json"
    seen = []

    def stop_after_first_unit(ev):
        if ev.stage == "batch" and ev.attack.startswith("spsa"):
            seen.append(ev.done)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(standard_model, fmnist_test, LINF, "fgsm,spsa-2:samples=4", out=out, progress=stop_after_first_unit, **kw)
    from a3bench.schema import read_state

    state = read_state(out.with_name("r.state.json"))
    assert state.current["unit"] == 6 and state.current["batches_done"] == 1 and seen == [6]
    resumed = evaluate(standard_model, fmnist_test, LINF, "fgsm,spsa-2:samples=4", out=out, resume=True, **kw)
    assert resumed.outcomes.broken_by == whole.outcomes.broken_by and resumed.outcomes.adv_pred == whole.outcomes.adv_pred


def _lie():
    from a3bench.flags import GRADIENT_INCONSISTENT

    return [GRADIENT_INCONSISTENT("the gradient lies")]


@pytest.mark.parametrize("case,expect", [
    ("no-escalation", "nothing got past them yet"),
    ("agree", "agree on the worst case"),
    ("capped", "not every attack past them ran"),
    ("still-breaking", "may be lower still"),
])
def test_an_unreliable_verdict_says_what_makes_the_number_reportable(case, expect):
    from a3bench.eval.diagnostics import verdict

    per = [AttackRecord("apgd-ce", 50.0, broken=5), AttackRecord("bpda-graph", 40.0, broken=10),
           AttackRecord("square-20000:restarts=2", 40.0 if case != "still-breaking" else 39.0, broken=0 if case != "still-breaking" else 3)]
    esc = None if case == "no-escalation" else {"attacks": ["bpda-graph", "square-20000:restarts=2"], "triggers": ["gradient-inconsistent"]}
    if case == "capped":
        esc = {**esc, "attacks": ["bpda-graph"], "left_out": ["square-20000:restarts=2"]}
        per = per[:2]
    v, reason = verdict(_lie(), None, per, esc)
    assert v is Verdict.UNRELIABLE and reason.startswith("gradient-inconsistent") and expect in reason, reason
