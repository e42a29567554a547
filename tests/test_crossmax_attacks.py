"""Randomised models are judged by one rule, and the adaptive attacks on CrossMax find what
plain PGD misses (issue 12), on real Fashion-MNIST models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from a3bench.eval.runner import evaluate
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
LINF = ThreatModel("Linf", 0.1)


class _Flipper(nn.Module):
    """The standard model, but each forward pass replaces each example's prediction by a
    uniformly random class with probability ``q``: its predictions flip at random."""

    def __init__(self, model: nn.Module, q: float) -> None:
        super().__init__()
        self.model, self.q = model, q

    def forward(self, x):
        logits = self.model(x)
        flip = torch.rand(len(x), device=x.device) < self.q
        noise = torch.zeros_like(logits).scatter_(1, torch.randint(0, logits.shape[1], (len(x), 1), device=x.device), 100.0)
        return torch.where(flip[:, None], noise, logits)


def test_randomised_model_is_judged_by_the_majority_of_draws(standard_model, fmnist_test):
    base = evaluate(standard_model, fmnist_test, LINF.with_eps(0.0), "fgsm", n_examples=200).record
    q = 0.2
    a = evaluate(_Flipper(standard_model, q), fmnist_test, LINF.with_eps(0.0), "fgsm", n_examples=200, draws=40, seed=3)
    rec = a.record
    assert "randomized-outputs" in [f.name for f in rec.flags]
    # one draw would call ~q of the correct examples wrong; the majority of 40 draws does not
    assert abs(rec.clean_acc - base.clean_acc) <= 2.0, (rec.clean_acc, base.clean_acc)
    expected = rec.compute["randomised"]["expected_robust_acc"]
    share_correct = (1 - q) + q / 10  # a flip lands on the right class one time in ten
    # the expected accuracy takes each example's worst point (here: the clean point, judged
    # twice: the lower of two 40-draw estimates, ~3.5 points below), within 5 points at 40 draws
    assert 0 <= base.clean_acc * share_correct - expected <= 5.0, (expected, base.clean_acc * share_correct)
    assert rec.robust_acc == rec.clean_acc  # eps 0: nothing to attack
    b = evaluate(_Flipper(standard_model, q), fmnist_test, LINF.with_eps(0.0), "fgsm", n_examples=200, draws=40, seed=3)
    assert a.outcomes == b.outcomes  # the draws are seeded: same seed, same verdicts


def test_randomised_model_gets_autoattack_rand_and_eot(standard_model, fmnist_test):
    rec = evaluate(_Flipper(standard_model, 0.1), fmnist_test, LINF, "pgd-2", n_examples=16, batch_size=16, draws=5).record
    names = [a.name for a in rec.per_attack]
    assert names[0] == "pgd-2" and any(n.startswith("eot-pgd") for n in names)
    assert any("eot-pgd" in note for note in rec.notes)


@pytest.fixture(scope="module")
def crossmax_model():
    from a3bench.models import load_model
    from a3bench.models.zoo import zoo_path

    if zoo_path("smallcnn_deep.crossmax_fmnist") is None:
        pytest.skip("bundled CrossMax model not present")
    return load_model("smallcnn_deep.crossmax_fmnist")


def test_crossmax_mean_breaks_more_than_direct_pgd(crossmax_model, fmnist_test):
    kw = dict(n_examples=60, batch_size=60, probe=False, draws=10)
    direct = evaluate(crossmax_model, fmnist_test, LINF, "eot-pgd-20:n=4", **kw).record
    adaptive = evaluate(crossmax_model, fmnist_test, LINF, "crossmax-mean:steps=20:n=4", **kw).record
    assert adaptive.clean_acc == direct.clean_acc
    assert adaptive.robust_acc < direct.robust_acc - 10.0, (adaptive.robust_acc, direct.robust_acc)


def test_crossmax_attacks_are_in_the_suites_and_skip_other_models(standard_model, fmnist_test):
    from a3bench.attacks.registry import list_suites

    full = list_suites()["full"][0]
    for name in ("crossmax-mean", "fixed-randomness", "predictor-transfer"):
        assert name in full and name in list_suites()["adaptive"][0]
    rec = evaluate(standard_model, fmnist_test, LINF, "crossmax-mean,fixed-randomness,predictor-transfer", n_examples=8).record
    assert [a.status for a in rec.per_attack] == ["skipped"] * 3
    assert all("not a CrossMax" in a.note for a in rec.per_attack)


def test_sweep_judges_a_randomised_model_by_the_same_rule(standard_model, fmnist_test):
    from a3bench.eval.sweep import sweep_eps

    base = sweep_eps(standard_model, fmnist_test, "Linf", [0.0], "fgsm", n_examples=200, device="cpu")
    noisy = sweep_eps(_Flipper(standard_model, 0.2), fmnist_test, "Linf", [0.0], "fgsm", n_examples=200, device="cpu", draws=15)
    assert "randomized-outputs" in [f.name for f in noisy.flags]
    assert abs(noisy.clean_acc - base.clean_acc) <= 2.0  # one draw would lose ~a fifth of the correct examples
