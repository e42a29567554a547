"""Attacks: the registry's names and options, budgets, determinism, and a cross-check
of a3bench's PGD against torchattacks (a library no one here wrote)."""

from __future__ import annotations

import pytest
import torch

from a3bench.attacks.autoattack import AutoAttackComponent
from a3bench.attacks.pgd import FGSM, PGD
from a3bench.attacks.registry import build_attack, list_attacks, list_suites, resolve
from a3bench.errors import AttackError
from a3bench.threat import ThreatModel

LINF = ThreatModel("Linf", 0.1)
L2 = ThreatModel("L2", 1.5)


@pytest.fixture(scope="module")
def batch(fmnist_test):
    return fmnist_test.first(128).tensors()


# --------------------------------------------------------------------------- registry


def test_pgd_name_and_options():
    (a,) = build_attack("pgd-100:loss=dlr:restarts=5:step=2/255")
    assert isinstance(a, PGD)
    assert (a.steps, a.restarts, a.loss_name) == (100, 5, "dlr")
    assert a.step_size == pytest.approx(2 / 255)
    assert a.name == "pgd-100:loss=dlr:restarts=5:step=2/255"
    (b,) = build_attack("PGD-7")
    assert (b.steps, b.restarts, b.loss_name, b.name) == (7, 1, "ce", "pgd-7")
    (c,) = build_attack("pgd-20:loss=logit-scaled")
    assert c.loss_name == "logit-scaled"
    (f,) = build_attack("fgsm")
    assert isinstance(f, FGSM)


def test_autoattack_expands_to_components():
    comps = build_attack("autoattack")
    assert [c.name for c in comps] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert all(isinstance(c, AutoAttackComponent) and c.group == "autoattack" for c in comps)
    rand = build_attack("autoattack-rand")
    assert [c.name for c in rand] == ["apgd-ce-rand", "apgd-dlr-rand"]
    assert [a.name for a in build_attack("apgd-t")] == ["apgd-t"]


def test_suites():
    assert [a.name for a in resolve().attacks] == ["pgd-20"]  # default: quick
    assert [a.name for a in resolve("pgd").attacks] == ["pgd-10", "pgd-20", "pgd-50", "pgd-100"]
    plan = resolve("standard")
    assert plan.suite == "standard" and plan.names == ["autoattack"] and len(plan.attacks) == 4
    assert {"quick", "pgd", "standard"} <= set(list_suites())
    plan = resolve(attacks="fgsm, pgd-5")
    assert plan.suite is None and plan.names == ["fgsm", "pgd-5"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("pgd-x", "unknown attack"),
        ("cw-100", "valid: pgd-K"),
        ("pgd-10:loss=hinge", "unknown attack loss"),
        ("pgd-10:restarts=0", "restarts must be ≥ 1"),
        ("pgd-10:restarts=two", "must be an integer"),
        ("pgd-10:steps=3", "unknown option"),
        ("pgd-10:loss", "KEY=VALUE"),
        ("pgd-10:step=8/0", "divides by zero"),
        ("pgd-0", "≥ 1"),
    ],
)
def test_bad_attack_names(text, fragment):
    with pytest.raises(AttackError, match=fragment):
        resolve(attacks=text)


def test_bad_plans():
    with pytest.raises(AttackError, match="unknown suite"):
        resolve("nope")
    with pytest.raises(AttackError, match="not both"):
        resolve("quick", "pgd-10")
    with pytest.raises(AttackError, match="twice"):
        resolve(attacks="pgd-10,pgd-10")
    with pytest.raises(AttackError, match="twice"):
        resolve(attacks="autoattack,apgd-ce")
    assert "pgd-K" in list_attacks() and "autoattack" in list_attacks()


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("threat", [LINF, L2], ids=["Linf", "L2"])
@pytest.mark.parametrize("attack", [PGD(10), PGD(5, restarts=2, loss="dlr"), PGD(5, loss="cw"), FGSM()], ids=["pgd", "pgd-dlr-restarts", "pgd-cw", "fgsm"])
def test_within_budget(standard_model, batch, threat, attack):
    x, y = batch
    out = attack(standard_model, x, y, threat, seed=0)
    assert out.x_adv.shape == x.shape
    assert not threat.violations(out.x_adv, x).any()
    # the attack's own success claim holds on a fresh forward pass
    with torch.no_grad():
        fresh = standard_model(out.x_adv).argmax(1) != y
    assert torch.equal(fresh[out.success], torch.ones_like(fresh[out.success]))
    assert out.forward_passes > 0


def test_eps_zero_changes_nothing(standard_model, batch):
    x, y = batch
    out = PGD(10)(standard_model, x, y, LINF.with_eps(0.0), seed=0)
    assert torch.equal(out.x_adv, x)
    with torch.no_grad():
        assert torch.equal(out.success, standard_model(x).argmax(1) != y)


def test_same_seed_same_result_and_batch_independence(standard_model, batch):
    x, y = batch
    idx = torch.arange(x.shape[0])
    a = PGD(10)(standard_model, x, y, LINF, seed=3, indices=idx)
    b = PGD(10)(standard_model, x, y, LINF, seed=3, indices=idx)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
    # an example's outcome does not depend on which other examples share its batch
    part = PGD(10)(standard_model, x[40:80], y[40:80], LINF, seed=3, indices=idx[40:80])
    assert torch.equal(part.success, a.success[40:80])
    assert torch.allclose(part.x_adv, a.x_adv[40:80], atol=1e-6)


def test_more_iterations_are_not_weaker(standard_model, fmnist_test):
    x, y = fmnist_test.first(200).tensors()
    weak = PGD(2)(standard_model, x, y, LINF, seed=0).success.float().mean()
    strong = PGD(20)(standard_model, x, y, LINF, seed=0).success.float().mean()
    assert strong >= weak


# --------------------------------------------------------------------------- cross-check


def test_pgd_matches_torchattacks(standard_model, fmnist_test):
    """a3bench PGD-K within 1 point of torchattacks' PGD on the same model and examples."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = fmnist_test.first(400).tensors()
    eps, steps = 0.05, 20
    alpha = 2.5 * eps / steps
    torch.manual_seed(0)
    ta = torchattacks.PGD(standard_model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    x_ta = ta(x, y)
    with torch.no_grad():
        acc_ta = 100.0 * (standard_model(x_ta).argmax(1) == y).float().mean().item()
    out = PGD(steps, step_size=alpha)(standard_model, x, y, ThreatModel("Linf", eps), seed=0)
    acc_a3 = 100.0 * (~out.success).float().mean().item()
    assert 5.0 < acc_ta < 80.0, "the check needs a model that is partly robust at this eps"
    assert abs(acc_a3 - acc_ta) <= 1.0, (acc_a3, acc_ta)
