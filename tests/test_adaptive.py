"""Adaptive attacks: each one defeats the masking it is built for, where plain PGD fails,
stays within budget, and is skipped (not an error) where it does not apply."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from a3bench.attacks.adaptive import BPDA, A3Scale, BPDAA3, EOTPGD, ModeTransfer, PreSoftmax, TransferPGD, zero_gradient_modules
from a3bench.attacks.base import AttackContext
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import build_attack, resolve
from a3bench.eval.runner import evaluate
from a3bench.models import A3, A3Config, a3_layers, create_model
from a3bench.threat import ThreatModel

LINF = ThreatModel("Linf", 0.1)
N = 128


class HostileA3(A3):
    """Attenuation made deliberately gradient-hostile: the deployed mode's output carries
    no gradient (a detach), other modes and the straight-through backward are untouched."""

    def forward(self, a, mode=None):
        out = super().forward(a, mode)
        if (mode or self.mode).value == "attenuate" and not self.straight_through:
            return out.detach() + 0 * a  # a graph, but a zero gradient
        return out


def _hostile_copy(a3_model: nn.Module) -> nn.Module:
    import copy

    model = copy.deepcopy(a3_model)
    for layer in a3_layers(model):
        layer.__class__ = HostileA3
    return model.eval()


@pytest.fixture(scope="module")
def small_a3(fmnist_train):
    """A normally trained small CNN with A3 layers (fast; not robust)."""
    from tests.conftest import train_small

    torch.manual_seed(0)
    info = fmnist_train.info
    model = create_model("smallcnn", mean=info.mean, std=info.std, a3=A3Config())
    return train_small(model, fmnist_train.first(20000), steps=200, seed=1)


def _robust(model, attack, x, y, threat=LINF):
    for p in model.parameters():
        p.requires_grad_(False)
    out = attack(model, x, y, threat, seed=0, indices=torch.arange(len(x)))
    assert not threat.violations(out.x_adv, x).any()
    with torch.no_grad():
        confirmed = model(out.x_adv).argmax(1) != y
    return 100.0 * float((~confirmed & (model(x).argmax(1) == y)).float().mean())


def test_gradient_hostile_a3_is_broken_by_bpda_and_mode_transfer(small_a3, fmnist_test):
    x, y = fmnist_test.first(N).tensors()
    honest = _robust(small_a3, PGD(20), x, y)
    hostile = _hostile_copy(small_a3)
    with torch.no_grad():
        assert torch.equal(hostile(x), small_a3(x))  # same predictions: only gradients differ
    masked = _robust(hostile, PGD(20), x, y)
    bpda = _robust(hostile, BPDAA3(20), x, y)
    transfer = _robust(hostile, ModeTransfer(20), x, y)
    assert masked > honest + 30  # plain PGD is fooled by the missing gradient
    assert bpda <= honest + 5 and transfer <= honest + 10


def test_hostile_a3_full_cascade_names_the_breaker(small_a3, fmnist_test):
    hostile = _hostile_copy(small_a3)
    res = evaluate(hostile, fmnist_test, LINF, "pgd-20,bpda-a3:steps=20,mode-transfer:steps=20", n_examples=N, batch_size=N)
    per = {a.name: a for a in res.record.per_attack}
    assert per["bpda-a3:steps=20"].broken + per["mode-transfer:steps=20"].broken > 3 * max(per["pgd-20"].broken, 1)
    assert "zero-gradients" in {f.name for f in res.record.flags}


def test_a3_attacks_skip_models_without_a3(standard_model, fmnist_test):
    res = evaluate(standard_model, fmnist_test, LINF, "pgd-5,bpda-a3,mode-transfer,a3-scale,pre-softmax", n_examples=64, batch_size=64)
    status = {a.name: (a.status, a.note) for a in res.record.per_attack}
    for name in ("bpda-a3", "mode-transfer", "a3-scale"):
        assert status[name] == ("skipped", "the model has no A3 layers")
    assert status["pre-softmax"][0] == "skipped"
    assert status["pgd-5"][0] == "ran"


def test_a3_scale_search_stays_in_range_and_restores(small_a3, fmnist_test):
    x, y = fmnist_test.first(64).tensors()
    attack = A3Scale(steps=5)
    before = [float(layer.strength) for layer in a3_layers(small_a3)]
    scales = attack.find_scales(small_a3, x, seed=0)
    assert scales.shape == (len(before),) and ((scales >= A3Scale.LOW) & (scales <= 1)).all()
    assert all(layer.strength_scale == 1.0 for layer in a3_layers(small_a3))
    assert [float(layer.strength) for layer in a3_layers(small_a3)] == before
    assert torch.equal(attack.find_scales(small_a3, x, seed=0), scales)  # seeded search
    _robust(small_a3, attack, x, y)  # within budget, re-checked


def test_a3_scale_survives_a_gradient_hostile_a3(small_a3, fmnist_test):
    """No gradient w.r.t. the strengths (masked attenuation): the search falls back to seeded
    random draws (keeping the farthest) instead of failing, and the attack still runs."""
    x, y = fmnist_test.first(64).tensors()
    hostile = _hostile_copy(small_a3)
    attack = A3Scale(steps=5)
    scales = attack.find_scales(hostile, x, seed=0)
    assert ((scales >= A3Scale.LOW) & (scales <= 1)).all()
    assert torch.equal(attack.find_scales(hostile, x, seed=0), scales)
    assert not torch.equal(attack.find_scales(hostile, x, seed=1), scales)
    _robust(hostile, attack, x, y)


class Quantise(nn.Module):
    """An input quantiser: rounds to ``levels`` grey levels; its gradient is exactly zero."""

    def __init__(self, levels: int = 32) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


def test_bpda_finds_and_bridges_a_zero_gradient_quantiser(standard_model, fmnist_test):
    x, y = fmnist_test.first(N).tensors()
    liar = nn.Sequential(Quantise(), standard_model).eval()
    assert zero_gradient_modules(liar, x[:16]) == ["0"]
    assert zero_gradient_modules(standard_model, x[:16]) == []  # an honest network has none
    ctx = lambda m: AttackContext(model=m, threat=LINF, probe=x[:16])  # noqa: E731
    assert BPDA(20).applies_to(ctx(liar)) is None
    assert "nothing for BPDA" in BPDA(20).applies_to(ctx(standard_model))
    honest = _robust(standard_model, PGD(20), x, y)
    masked = _robust(liar, PGD(20), x, y)
    bridged = _robust(liar, BPDA(20), x, y)
    assert masked > honest + 30  # zero gradient: PGD does not move
    assert bridged <= honest + 5  # BPDA: as good as attacking the network without the quantiser
    with torch.no_grad():  # the hooks are gone: the deployed forward is unchanged
        assert torch.equal(liar(x), nn.Sequential(Quantise(), standard_model)(x))
    g = x[:4].clone().requires_grad_(True)
    liar(g).sum().backward()
    assert not g.grad.any()


class _Saturated(nn.Sequential):
    pass


def test_pre_softmax_breaks_saturated_probabilities(standard_model, fmnist_test):
    class Scale(nn.Module):
        def forward(self, z):
            return z * 1000.0

    liar = _Saturated(standard_model, Scale(), nn.Softmax(dim=1)).eval()
    x, y = fmnist_test.first(N).tensors()
    honest = _robust(standard_model, PGD(20), x, y)
    assert _robust(liar, PGD(20), x, y) > honest + 20
    assert _robust(liar, PreSoftmax(20), x, y) <= honest + 3


def test_eot_beats_plain_pgd_on_noisy_model(standard_model, fmnist_test):
    class Noise(nn.Module):
        def forward(self, x):
            return (x + 0.3 * torch.randn_like(x)).clamp(0, 1)

    torch.manual_seed(0)
    noisy = nn.Sequential(Noise(), standard_model).eval()
    x, y = fmnist_test.first(N).tensors()
    torch.manual_seed(0)
    plain = _robust(noisy, PGD(10), x, y)
    torch.manual_seed(0)
    eot = _robust(noisy, EOTPGD(10, samples=8), x, y)
    assert eot <= plain


def test_transfer_from_itself_and_registry(robust_model, fmnist_test):
    attack = build_attack("transfer:smallcnn.pgdat_fmnist")[0]
    assert isinstance(attack, TransferPGD)
    attack.setup(AttackContext(model=robust_model, threat=LINF, dataset="fmnist"))
    x, y = fmnist_test.first(64).tensors()
    same = _robust(robust_model, attack, x, y)
    direct = _robust(robust_model, PGD(50), x, y)
    assert abs(same - direct) <= 5  # the surrogate is the target itself
    # passes: one surrogate and one judge forward per step, counted once
    attack.surrogate = robust_model
    ids = torch.arange(len(x))
    t, p = attack(robust_model, x, y, LINF, seed=0, indices=ids), PGD(50)(robust_model, x, y, LINF, seed=0, indices=ids)
    assert torch.equal(t.x_adv, p.x_adv) and t.forward_passes == 2 * p.forward_passes and t.backward_passes == p.backward_passes


def test_adaptive_and_full_suites():
    adaptive = [a.name for a in resolve("adaptive").attacks]
    full = [a.name for a in resolve("full").attacks]
    assert {"mode-transfer", "bpda-a3", "bpda", "a3-scale", "pre-softmax", "square"} <= set(adaptive)
    assert full[:4] == ["apgd-ce", "apgd-t", "fab-t", "square"]  # AutoAttack first: its number stays its own
    assert set(adaptive) <= set(full)


def _rec(name, broken, group=None, status="ran", kind="white-box"):
    from a3bench.schema import AttackRecord

    return AttackRecord(name, None, broken=broken, group=group, status=status, kind=kind)


def test_transfer_and_adaptive_flags_from_the_cascade():
    from a3bench.attacks.registry import build_attack
    from a3bench.eval import diagnostics as d

    attacks = build_attack("autoattack") + build_attack("mode-transfer") + build_attack("bpda-a3")
    per = [_rec("apgd-ce", 40, "autoattack"), _rec("apgd-t", 2, "autoattack"), _rec("fab-t", 0, "autoattack"),
           _rec("square", 0, "autoattack", kind="black-box"), _rec("mode-transfer", 9, kind="transfer"), _rec("bpda-a3", 1)]
    assert [f.name for f in d.reveal_flags(attacks, per, 100)] == ["transfer-beats-white-box"]
    adaptive = d.adaptive_flags(per, 100)
    assert [f.name for f in adaptive] == ["adaptive-beats-autoattack"] and adaptive[0].value == 10.0
    quiet_attacks = build_attack("apgd-ce") + build_attack("mode-transfer") + build_attack("bpda-a3")
    quiet = [_rec("apgd-ce", 40, "autoattack"), _rec("mode-transfer", 1, kind="transfer"), _rec("bpda-a3", 0)]
    assert d.reveal_flags(quiet_attacks, quiet, 100) == [] and d.adaptive_flags(quiet, 100) == []
    # AutoAttack not first: no AutoAttack number to compare with
    assert d.adaptive_flags([_rec("pgd-20", 30), _rec("apgd-ce", 5, "autoattack"), _rec("bpda-a3", 9)], 100) == []
    assert d.verdict(adaptive)[0] == "unreliable"
