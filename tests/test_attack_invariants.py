"""Every registered attack, through the cheap instance it registers (``example``): its
adversarial examples stay in the threat model and [0,1], what it claims to have broken is
misclassified by the model, and the same seed gives the same output. A new attack is
checked here for free; one no test model can run is a failure, not a skip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from a3bench.attacks.base import AttackContext
from a3bench.attacks.registry import attack_examples, build_attack, list_attacks
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
THREATS = [ThreatModel("Linf", 0.1), ThreatModel("L2", 1.0)]


class _Softmax(nn.Module):
    """Returns probabilities: what pre-softmax is for."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.softmax = model, nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.model(x))


class _Quantise(nn.Module):
    def forward(self, x):
        return torch.round(x * 8) / 8


def _small_crossmax():
    """An untrained CrossMax self-ensemble on smallcnn (2 heads + the classifier), its input
    randomness frozen so that success claims can be checked with one forward pass."""
    from a3bench.models import create_model
    from a3bench.models.crossmax import MultiResolution

    torch.manual_seed(0)
    model = create_model("crossmax", options={"backbone": "smallcnn", "k": 2}).eval()
    for m in model.modules():
        if isinstance(m, MultiResolution):
            m.fixed_seed = 0
    return model


def _small_vit():
    """An untrained ViT on 28×28 inputs (attention layers: what attn-scale and aas need)."""
    from a3bench.models import create_model

    torch.manual_seed(0)
    return create_model("vit_small_p4", in_channels=1, input_size=28, options={"dim": 32, "depth": 2, "heads": 2, "mlp_dim": 64}).eval()


@pytest.fixture(scope="module")
def test_models(standard_model, a3_model):
    """Models an attack may need: plain, with A3, returning probabilities, with a zero-gradient
    input quantiser, a CrossMax self-ensemble, a ViT."""
    return [standard_model, a3_model, _Softmax(standard_model), nn.Sequential(_Quantise(), standard_model), _small_crossmax(), _small_vit()]


@pytest.fixture(scope="module")
def batch(fmnist_test):
    return fmnist_test.first(6).tensors()


def _pick(attack, models, threat, x):
    for model in models:
        ctx = AttackContext(model=model.eval(), threat=threat, seed=0, batch_size=8, num_classes=10, dataset="fmnist", probe=x)
        if attack.applies_to(ctx) is None:
            return model, ctx
    pytest.fail(f"{attack.name}: no test model is one it applies to; add one to test_models")


def _registered_twin(attack):
    """The registered single attack that ``attack`` (a composite's component) is identical
    to: same class, same configuration. None when the component exists only in the composite."""
    from a3bench.errors import AttackError

    if attack.name not in list_attacks():
        return None
    try:
        (twin,) = build_attack(attack.name)
    except (AttackError, ValueError):
        return None
    same = type(twin) is type(attack) and twin.config() == attack.config()
    return twin if same else None


@pytest.mark.parametrize("display", list(list_attacks()))
@pytest.mark.parametrize("threat", THREATS, ids=["Linf", "L2"])
def test_every_attack_in_budget_honest_and_seeded(display, threat, test_models, batch, checkpoint):
    x, y = batch
    example = attack_examples()[display].format(model=checkpoint)
    built = build_attack(example)
    for attack in built:
        if len(built) > 1:
            # A composite ("autoattack") labels its components with its name (the record's
            # group); a component identical to a registered attack is run and checked in that
            # attack's own case, so here it is its identity that is checked, not its run again.
            assert attack.group == display, f"{attack.name} of {display} carries group {attack.group!r}"
            if _registered_twin(attack) is not None:
                continue
        _check_invariants(attack, threat, test_models, x, y)


def test_composites_are_made_of_what_they_say():
    """autoattack is exactly the registered apgd-ce, apgd-t, fab-t and square, in that order
    (so their own cases above check it); autoattack-rand's components exist only in it (so
    its case runs them)."""
    standard = build_attack("autoattack")
    assert [a.name for a in standard] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert all(_registered_twin(a) is not None for a in standard)
    rand = build_attack("autoattack-rand")
    assert rand and all(_registered_twin(a) is None for a in rand)
    assert all(a.config()["version"] == "rand" for a in rand)


def _check_invariants(attack, threat, test_models, x, y):
    model, ctx = _pick(attack, test_models, threat, x)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        attack.setup(ctx)
        out = attack(model, x, y, threat, seed=0, indices=torch.arange(len(x)))
        again = attack(model, x, y, threat, seed=0, indices=torch.arange(len(x)))
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    assert out.x_adv.shape == x.shape and out.success.shape == (len(x),)
    assert not threat.violations(out.x_adv, x).any(), f"{attack.name} left the threat model"
    with torch.no_grad():
        wrong = model.eval()(out.x_adv).argmax(1) != y
    assert bool((out.success.bool() <= wrong).all()), f"{attack.name} claims successes the model does not confirm"
    assert out.forward_passes > 0
    assert torch.equal(out.x_adv, again.x_adv) and torch.equal(out.success, again.success), f"{attack.name}: same seed, other output"
