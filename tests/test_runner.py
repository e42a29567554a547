"""The worst-case runner: invariants, re-checks, records, resume, atomic writes, and
a3bench's ``autoattack`` against pyautoattack's AutoAttack run directly."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackOutput
from a3bench.attacks.pgd import PGD
from a3bench.errors import BudgetViolation, ModelSpecError, ResultError
from a3bench.eval import diagnostics
from a3bench.eval.runner import evaluate
from a3bench.schema import AttackRecord, read_record, state_path
from a3bench.threat import ThreatModel

LINF = ThreatModel("Linf", 0.1)


def numbers(record) -> dict:
    """What must not change between runs with the same seed (times and provenance may)."""
    per = [(a.name, a.robust_acc, a.broken, a.n_attacked, a.forward_passes, a.backward_passes, a.status) for a in record.per_attack]
    return {"clean": record.clean_acc, "robust": record.robust_acc, "ci": record.robust_acc_ci, "per": per,
            "flags": [f.name for f in record.flags], "aa": record.autoattack_acc}


def check_invariants(res, threat):
    r, o = res.record, res.outcomes
    n = r.n_examples
    assert r.robust_acc <= r.clean_acc
    accs = [a.robust_acc for a in r.per_attack if a.status == "ran"]
    assert all(b <= a for a, b in zip([r.clean_acc] + accs, accs)), "cumulative accuracy must not rise along the cascade"
    assert r.robust_acc == pytest.approx(100.0 * sum(o.robust) / n)
    assert r.clean_acc == pytest.approx(100.0 * sum(o.clean_correct) / n)
    lo, hi = r.robust_acc_ci
    assert lo <= r.robust_acc <= hi
    assert sum(a.broken for a in r.per_attack) == sum(o.clean_correct) - sum(o.robust)
    for b, d, p, label in zip(o.broken_by, o.adv_distance, o.adv_pred, o.labels):
        if b not in (None, "clean"):
            assert d <= threat.eps + 1e-6 and p != label


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("threat", [LINF, ThreatModel("L2", 1.5)], ids=["Linf", "L2"])
def test_invariants_standard_model(standard_model, fmnist_test, threat):
    res = evaluate(standard_model, fmnist_test, threat, "fgsm,pgd-10", n_examples=200, batch_size=64)
    check_invariants(res, threat)
    assert res.record.robust_acc < res.record.clean_acc  # a standard model is not robust
    assert res.record.norm == threat.norm.value and res.record.eps == threat.eps


def test_eps_zero_robust_equals_clean(standard_model, fmnist_test):
    res = evaluate(standard_model, fmnist_test, LINF.with_eps(0.0), "fgsm,pgd-10", n_examples=200, batch_size=64)
    assert res.record.robust_acc == res.record.clean_acc
    assert all(a.broken == 0 for a in res.record.per_attack)


def test_more_iterations_never_raise_worst_case(standard_model, fmnist_test):
    few = evaluate(standard_model, fmnist_test, LINF, "pgd-2", n_examples=200, batch_size=64).record
    many = evaluate(standard_model, fmnist_test, LINF, "pgd-2,pgd-20", n_examples=200, batch_size=64).record
    alone = evaluate(standard_model, fmnist_test, LINF, "pgd-20", n_examples=200, batch_size=64).record
    assert many.robust_acc <= few.robust_acc
    assert many.robust_acc <= alone.robust_acc


def test_same_seed_same_numbers(standard_model, fmnist_test):
    a = evaluate(standard_model, fmnist_test, LINF, "pgd-5:restarts=2", n_examples=150, batch_size=64, seed=7)
    b = evaluate(standard_model, fmnist_test, LINF, "pgd-5:restarts=2", n_examples=150, batch_size=64, seed=7)
    assert numbers(a.record) == numbers(b.record)
    assert a.outcomes == b.outcomes


@pytest.mark.parametrize("fixture", ["robust_model", "a3_model"])
def test_bundled_models(request, fixture, fmnist_test):
    model = request.getfixturevalue(fixture)
    for threat in (LINF, ThreatModel("L2", 1.0)):
        res = evaluate(model, fmnist_test, threat, "pgd-5", n_examples=100, batch_size=100)
        check_invariants(res, threat)
    zero = evaluate(model, fmnist_test, LINF.with_eps(0.0), "pgd-5", n_examples=100, batch_size=100)
    assert zero.record.robust_acc == zero.record.clean_acc
    a3 = zero.record.a3
    if fixture == "a3_model":
        assert a3 is not None and a3["n_layers"] > 0


# --------------------------------------------------------------------------- re-checks


class _OutOfBudget(Attack):
    name = "out-of-budget"

    def run(self, model, x, y, threat, *, seed, indices):
        return AttackOutput((x + 2 * threat.eps).clamp(0, 1), torch.ones(x.shape[0], dtype=torch.bool))


class _Liar(Attack):
    """Claims success but returns the clean input: must not count."""

    name = "liar"

    def run(self, model, x, y, threat, *, seed, indices):
        return AttackOutput(x.clone(), torch.ones(x.shape[0], dtype=torch.bool), forward_passes=x.shape[0])


class _NotForThisModel(Attack):
    name = "a3-only"

    def applies_to(self, ctx):
        return "the model has no A3 layers"

    def run(self, model, x, y, threat, *, seed, indices):  # pragma: no cover - never called
        raise AssertionError


def test_budget_violation_fails_loudly(standard_model, fmnist_test, tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(BudgetViolation, match="outside"):
        evaluate(standard_model, fmnist_test, LINF, [_OutOfBudget()], n_examples=20, out=out)
    assert not out.exists()
    lax = evaluate(standard_model, fmnist_test, LINF, [_OutOfBudget()], n_examples=20, strict=False).record
    assert "budget-violation" in [f.name for f in lax.flags] and lax.verdict == "unreliable"
    assert lax.robust_acc == lax.clean_acc  # violating examples count as robust


def test_unconfirmed_success_does_not_count(standard_model, fmnist_test):
    second = _Liar()
    second.name = "liar-2"
    rec = evaluate(standard_model, fmnist_test, LINF, [_Liar(), second], n_examples=30).record
    assert rec.robust_acc == rec.clean_acc
    unconfirmed = [f for f in rec.flags if f.name == "unconfirmed-successes"]
    assert len(unconfirmed) == 1  # one flag for the run, however many attacks it concerns
    assert unconfirmed[0].value == sum(a.n_attacked for a in rec.per_attack)


def test_skipped_attack_is_noted(standard_model, fmnist_test):
    rec = evaluate(standard_model, fmnist_test, LINF, [_NotForThisModel(), PGD(3)], n_examples=30).record
    skipped = rec.per_attack[0]
    assert skipped.status == "skipped" and "no A3" in skipped.note and skipped.robust_acc == rec.clean_acc
    assert rec.per_attack[1].status == "ran"


class _BreaksThenFails(PGD):
    """PGD on its first batch, then an error (an attack that cannot handle part of a model)."""

    def __init__(self) -> None:
        super().__init__(5, name="fragile")
        self.calls = 0

    def run(self, model, x, y, threat, *, seed, indices):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("element 0 of tensors does not require grad\nsecond line")
        return super().run(model, x, y, threat, seed=seed, indices=indices)


def test_failing_attack_is_recorded_flagged_and_the_run_goes_on(standard_model, fmnist_test, tmp_path):
    out = tmp_path / "r.json"
    res = evaluate(standard_model, fmnist_test, LINF, [_BreaksThenFails(), PGD(5)], n_examples=60, batch_size=20, out=out)
    rec = res.record
    fragile, pgd = rec.per_attack
    assert fragile.status == "failed" and "after 1 of 3 batch(es)" in fragile.note
    assert "RuntimeError: element 0" in fragile.note and "second line" not in fragile.note
    assert fragile.broken > 0  # what it broke on its first batch stands
    assert pgd.status == "ran" and pgd.n_attacked == fragile.n_attacked - fragile.broken
    flag = [f for f in rec.flags if f.name == "attack-failed"]
    assert len(flag) == 1 and "fragile" in flag[0].message and rec.verdict != "reliable"
    assert read_record(out).per_attack[0].status == "failed" and not state_path(out).exists()
    # every example it broke was in its one finished batch (the first 20 still robust)
    first_batch = [k for k, ok in enumerate(res.outcomes.clean_correct) if ok][:20]
    by_fragile = [k for k, b in enumerate(res.outcomes.broken_by) if b == "fragile"]
    assert len(by_fragile) == fragile.broken and set(by_fragile) <= set(first_batch)


def test_fingerprint_handles_scalars_and_changes_with_weights():
    from a3bench.eval.judge import model_fingerprint

    m = nn.Linear(3, 2)
    m.register_parameter("strength", nn.Parameter(torch.tensor(0.5)))  # 0-dim, like A3's λ
    m.register_buffer("flag", torch.tensor([True, False]))
    before = model_fingerprint(m)
    assert before == model_fingerprint(m)
    with torch.no_grad():
        m.strength += 1
    assert model_fingerprint(m) != before


def test_dataset_mismatch(standard_model):
    from a3bench.data import load_dataset

    with pytest.raises(ModelSpecError, match="shape"):
        evaluate(standard_model, load_dataset("synthetic:3x32x32", "test"), LINF, "pgd-2", n_examples=8)


# --------------------------------------------------------------------------- diagnostics


class _Softmax(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


class _Noisy(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x + 0.05 * torch.randn_like(x))


class _Quantized(nn.Module):
    """Input quantisation: a step function, so input gradients are exactly zero."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


@pytest.mark.parametrize("wrap, flag, verdict, deciding", [
    (_Softmax, "softmax-outputs", "unreliable", "softmax-outputs"),
    (_Noisy, "randomized-outputs", "suspicious", "randomized-outputs"),
    # a zero gradient is also a gradient that contradicts finite differences: an error
    (_Quantized, "zero-gradients", "unreliable", "gradient-inconsistent"),
])
def test_sanity_flags(standard_model, fmnist_test, wrap, flag, verdict, deciding):
    rec = evaluate(wrap(standard_model), fmnist_test, LINF, "fgsm", n_examples=64).record
    assert flag in [f.name for f in rec.flags]
    assert rec.verdict == verdict and deciding in rec.verdict_reason
    # a randomised model gets an EOT attack without being asked; others do not
    assert (any(a.name.startswith("eot-pgd") for a in rec.per_attack)) == (flag == "randomized-outputs")
    # a plan of named attacks is never escalated: only the adaptive and full suites spend more
    assert rec.diagnostics.get("escalation") is None


def test_honest_adversarially_trained_model_fires_no_flag(robust_model, fmnist_test):
    """No flag on an honest model; but PGD-20 alone is weaker than AutoAttack, so the verdict
    says so instead of ``reliable`` (issue 22: reliable needs AutoAttack; test_strength.py)."""
    rec = evaluate(robust_model, fmnist_test, LINF, "pgd-20", n_examples=200).record
    assert rec.flags == [] and rec.verdict == "not-evaluated-fully" and not rec.strength.complete


def test_too_few_iterations_are_flagged_not_converged(standard_model, fmnist_test):
    probe = evaluate(standard_model, fmnist_test, LINF, "pgd-1:step=0.025", n_examples=128).record
    assert "not-converged" in [f.name for f in probe.flags] and probe.verdict == "suspicious"
    pair = evaluate(standard_model, fmnist_test, LINF, "pgd-1:step=0.025,pgd-2:step=0.025", n_examples=128).record
    assert any(f.name == "not-converged" and "pgd-2" in f.message for f in pair.flags)


def test_black_box_beats_white_box_flag():
    """The flag comes from what the attacks declare (kind, reveals), never from their names."""
    from a3bench.attacks.registry import build_attack
    from a3bench.schema import AttackKind

    (apgd,), (square,) = build_attack("apgd-ce"), build_attack("square")
    assert square.kind is AttackKind.BLACK_BOX and square.reveals.name == "black-box-beats-white-box"
    recs = [AttackRecord("apgd-ce", 50.0, broken=40, n_attacked=90), AttackRecord("renamed", 45.0, broken=5, n_attacked=50, kind="black-box")]
    (flag,) = diagnostics.reveal_flags([apgd, square], recs, 100)
    assert flag.name == "black-box-beats-white-box" and flag.severity == "error" and "renamed" in flag.message
    assert diagnostics.reveal_flags([square], recs[1:], 100) == []  # square alone: nothing to compare
    assert diagnostics.reveal_flags([apgd, square], [recs[0], AttackRecord("square", 50.0, broken=0)], 100) == []
    v, reason = diagnostics.verdict([flag])
    assert v == "unreliable" and reason.startswith("black-box-beats-white-box")


# --------------------------------------------------------------------------- record, resume, atomic writes


def test_record_and_outcomes_written(standard_model, fmnist_test, tmp_path):
    out = tmp_path / "fmnist" / "Linf" / "m.json"
    res = evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-5", n_examples=60, out=out, spec="test:model")
    rec = read_record(out)
    assert numbers(rec) == numbers(res.record)
    for key in ("clean_acc", "robust_acc", "per_attack", "n_examples", "eps", "norm", "flags", "compute", "provenance", "verdict"):
        assert key in rec.to_dict()
    assert isinstance(rec.clean_acc, float) and rec.n_examples == 60 and rec.model["spec"] == "test:model"
    assert {"torch", "a3bench", "git_sha", "device", "command", "time_utc"} <= set(rec.provenance)
    outcomes = json.loads((out.parent / "m.outcomes.json").read_text())
    assert rec.outcomes_file == "m.outcomes.json"
    assert outcomes["broken_by"] == res.outcomes.broken_by and len(outcomes["indices"]) == 60
    assert not state_path(out).exists()  # removed once the run completed
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".") or "tmp" in p.name] == []


class _Interrupt:
    """A progress callback that simulates a kill (Ctrl-C) at a chosen moment."""

    def __init__(self, stage: str, after: int) -> None:
        self.stage, self.after, self.seen = stage, after, 0

    def __call__(self, ev) -> None:
        if ev.stage == self.stage:
            self.seen += 1
            if self.seen >= self.after:
                raise KeyboardInterrupt


@pytest.mark.parametrize("kill_at", [("attack-end", 1), ("batch", 2)], ids=["between-attacks", "mid-attack"])
def test_kill_and_resume(standard_model, fmnist_test, tmp_path, kill_at):
    attacks, kw = "fgsm,pgd-5:restarts=2,pgd-10", dict(n_examples=120, batch_size=32, seed=1)
    full = evaluate(standard_model, fmnist_test, LINF, attacks, **kw)
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        evaluate(standard_model, fmnist_test, LINF, attacks, out=out, progress=_Interrupt(*kill_at), **kw)
    assert not out.exists() and state_path(out).exists()
    started = []
    resumed = evaluate(standard_model, fmnist_test, LINF, attacks, out=out, resume=True,
                       progress=lambda ev: started.append((ev.attack, ev.done)) if ev.stage == "attack-start" else None, **kw)
    if kill_at[0] == "attack-end":
        assert "fgsm" not in [name for name, _ in started]  # finished attacks are not redone
    else:
        assert started[0] == ("fgsm", 64)  # nor finished batches
    assert numbers(resumed.record) == numbers(full.record)
    assert resumed.outcomes == full.outcomes
    assert numbers(read_record(out)) == numbers(full.record)


def test_resume_refuses_other_settings(standard_model, fmnist_test, tmp_path):
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):  # killed inside pgd-3: fgsm finished, pgd-3 started
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", n_examples=40, batch_size=16, out=out, progress=_Interrupt("batch", 4))
    with pytest.raises(ResultError, match="seed"):
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", n_examples=40, batch_size=16, out=out, resume=True, seed=5)
    with pytest.raises(ResultError, match="attacks"):  # an attack that had started cannot change
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-4", n_examples=40, batch_size=16, out=out, resume=True)
    with pytest.raises(ResultError, match="eps"):
        evaluate(standard_model, fmnist_test, LINF.with_eps(0.2), "fgsm,pgd-3", n_examples=40, batch_size=16, out=out, resume=True)
    with pytest.raises(ResultError, match="batch_size"):
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", n_examples=40, batch_size=8, out=out, resume=True)


def test_resume_extends_a_run_with_more_attacks(standard_model, fmnist_test, tmp_path):
    """Attacks after the finished ones may be added: the cascade up to them is unchanged."""
    out, kw = tmp_path / "r.json", dict(n_examples=60, batch_size=32, seed=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", out=out, progress=_Interrupt("attack-end", 1), **kw)
    extended = evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3,pgd-6", out=out, resume=True, **kw)
    fresh = evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3,pgd-6", **kw)
    assert numbers(extended.record) == numbers(fresh.record) and extended.outcomes == fresh.outcomes
    # a finished evaluation kept with keep_state grows the same way
    kept = tmp_path / "kept.json"
    first = evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", out=kept, keep_state=True, **kw)
    assert state_path(kept).exists() and read_record(kept).attacks == ["fgsm", "pgd-3"]
    seen = []
    grown = evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3,pgd-6", out=kept, resume=True,
                     progress=lambda ev: seen.append(ev.attack) if ev.stage == "attack-start" else None, **kw)
    assert seen == ["pgd-6"] and numbers(grown.record) == numbers(fresh.record) and not state_path(kept).exists()
    assert first.outcomes.robust != grown.outcomes.robust or first.record.robust_acc == grown.record.robust_acc


def test_interrupted_run_leaves_previous_record(standard_model, fmnist_test, tmp_path):
    out = tmp_path / "r.json"
    evaluate(standard_model, fmnist_test, LINF, "fgsm", n_examples=40, out=out)
    before, adv_before = out.read_bytes(), out.with_name("r.adv.pt").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        evaluate(standard_model, fmnist_test, LINF, "fgsm,pgd-3", n_examples=40, out=out, seed=2, progress=_Interrupt("batch", 1))
    assert out.read_bytes() == before and out.with_name("r.adv.pt").read_bytes() == adv_before
    json.loads(state_path(out).read_text())  # the state file is whole, too
    # the running evaluation's points (fgsm's) sit beside its state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.adv.pt", "r.adv.state.pt", "r.json", "r.outcomes.json", "r.state.json"]


# --------------------------------------------------------------------------- AutoAttack cross-check


def test_autoattack_equals_pyautoattack(standard_model, fmnist_test):
    """Same examples, same seed, same batch size: the same per-example outcome as AutoAttack itself."""
    from a3bench._compat import import_autoattack

    n, eps, bs = 32, 0.15, 16
    threat = ThreatModel("Linf", eps)
    res = evaluate(standard_model, fmnist_test, threat, "autoattack", n_examples=n, batch_size=bs, seed=0)
    x, y = fmnist_test.first(n).tensors()
    adversary = import_autoattack().AutoAttack(standard_model, norm="Linf", eps=eps, seed=0, version="standard")
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=bs)
    with torch.no_grad():
        robust_direct = (standard_model(x_adv).argmax(1) == y).tolist()
    assert res.outcomes.robust == robust_direct
    rec = res.record
    assert rec.autoattack_acc == rec.robust_acc == pytest.approx(100.0 * sum(robust_direct) / n)
    assert [a.name for a in rec.per_attack] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert all(a.group == "autoattack" for a in rec.per_attack)
    assert 0 < rec.robust_acc < rec.clean_acc


def test_autoattack_rand_on_randomised_model(standard_model, fmnist_test):
    """The rand version runs (EOT over 20 draws); randomness is then expected: a warning, not an error."""
    rec = evaluate(_Noisy(standard_model), fmnist_test, ThreatModel("Linf", 0.15), "autoattack-rand", n_examples=8, batch_size=8).record
    assert [a.name for a in rec.per_attack] == ["apgd-ce-rand", "apgd-dlr-rand"]
    assert rec.autoattack_acc == rec.robust_acc <= rec.clean_acc
    (flag,) = [f for f in rec.flags if f.name == "randomized-outputs"]
    assert flag.severity == "warning" and rec.verdict != "unreliable"
