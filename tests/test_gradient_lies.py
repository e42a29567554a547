"""Gradients that lie without a3bench being told how (issue 10).

Every liar here is the same normally trained Fashion-MNIST network (``standard_model``),
rebuilt as ``encoder`` (two conv blocks) and ``head`` (two linear layers) so that its
forward pass is bit-for-bit the network's, with one custom ``autograd.Function`` whose
forward is the identity and whose backward lies: it returns zero, the wrong sign,
noise with the gradient's norm, a shattered gradient (its sign flipped in a
high-frequency pattern of the input) — or, for the consistency check only, the gradient
× 1e-3. The lie sits at the input, between ``encoder`` and ``head`` inside the model's
``forward`` (a functional call, not a module), or deep inside ``encoder.block2``.

Shown here: the consistency check flags each liar and no honest model; the localisation
names the place; graph-level BPDA brings each liar back to the network's own PGD number;
SPSA, Square and the distilled transfer see only forward passes, so their numbers on a
liar are the network's; every new attack stays within its pass budget, inside the
threat model, and gives the same numbers for the same seed. The comparisons of SPSA and
the distilled transfer with the truth need minutes: ``-m expensive``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from a3bench.attacks.base import AttackContext, AttackKind
from a3bench.attacks.bpda_graph import GraphBPDA
from a3bench.attacks.distill import DistillTransfer, distill
from a3bench.attacks.escalation import escalation
from a3bench.attacks.graph import forward_bridged, locate_lie
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import build_attack
from a3bench.attacks.spsa import SPSA
from a3bench.attacks.square import SquareQueries
from a3bench.eval.gradcheck import FLAG, check_gradients, gradient_flags
from a3bench.threat import ThreatModel

LINF = ThreatModel("Linf", 0.1)
L2 = ThreatModel("L2", 1.5)
KINDS = ("zero", "sign", "noise", "shattered")
PLACES = ("input", "between", "deep")
EXPECTED_KIND = {"zero": "zero", "sign": "sign", "noise": "noise", "shattered": "noise", "scaled": "magnitude"}


class _Lie(torch.autograd.Function):
    """Forward: the identity. Backward: the lie named by ``kind``."""

    @staticmethod
    def forward(ctx, x, kind, gen):
        ctx.kind, ctx.gen = kind, gen
        ctx.save_for_backward(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        shape = (-1, *([1] * (g.dim() - 1)))
        if ctx.kind == "zero":
            out = torch.zeros_like(g)
        elif ctx.kind == "sign":
            out = -g
        elif ctx.kind == "scaled":
            out = g * 1e-3
        elif ctx.kind == "noise":  # Gaussian noise with the true gradient's norm, per example
            noise = torch.randn(g.shape, generator=ctx.gen).to(g)
            out = noise * (g.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1).clamp_min(1e-30)).view(shape)
        elif ctx.kind == "shattered":  # sign flipped every 1/2000 of a unit of the input, phase per position
            phase = torch.arange(x[0].numel(), dtype=g.dtype, device=g.device).view(x.shape[1:]) * 2.399963
            out = g * torch.sign(torch.sin(2000.0 * x + phase))
        else:
            raise ValueError(ctx.kind)
        return out, None, None


class _Liar(nn.Module):
    """Holds the kind of lie and its noise generator; ``lie(x)`` applies it when ``place`` matches."""

    def setup_lie(self, kind: str | None, place: str | None, here: str) -> None:
        self.kind = kind if place == here else None
        self.gen = torch.Generator().manual_seed(0)

    def lie(self, x):
        return _Lie.apply(x, self.kind, self.gen) if self.kind else x


class Block(_Liar):
    def __init__(self, conv: nn.Conv2d, kind=None, place=None, here="") -> None:
        super().__init__()
        self.conv = conv
        self.setup_lie(kind, place, here)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.lie(self.conv(x))), 2)


class Encoder(nn.Module):
    def __init__(self, backbone, kind, place) -> None:
        super().__init__()
        self.block1 = Block(backbone.conv1)
        self.block2 = Block(backbone.conv2, kind, place, "deep")

    def forward(self, x):
        return self.block2(self.block1(x))


class Head(nn.Module):
    def __init__(self, backbone) -> None:
        super().__init__()
        self.fc, self.out = backbone.fc, backbone.head

    def forward(self, h):
        return self.out(F.relu(self.fc(h.flatten(1))))


class Liar(_Liar):
    """``network`` (an a3bench smallcnn Classifier) with one lying backward at ``place``."""

    def __init__(self, network: nn.Module, kind: str | None, place: str | None) -> None:
        super().__init__()
        self.register_buffer("mean", network.mean.clone())
        self.register_buffer("std", network.std.clone())
        self.encoder = Encoder(network.backbone, kind, place)
        self.head = Head(network.backbone)
        self.setup_lie(kind, place, "input")
        self.place = place
        self.between = kind if place == "between" else None

    def forward(self, x):
        x = self.lie(x)
        h = self.encoder((x - self.mean) / self.std)
        if self.between:
            h = _Lie.apply(h, self.between, self.gen)  # a functional call between two modules
        return self.head(h)


class _LyingPool(torch.autograd.Function):
    """A max-pool whose backward returns zero: a lie that changes the shape (no bridge fits)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return F.max_pool2d(x, 2)

    @staticmethod
    def backward(ctx, g):
        return g.new_zeros(ctx.shape)


class PoolLiar(Liar):
    def __init__(self, network):
        super().__init__(network, None, None)

    def forward(self, x):
        b1 = self.encoder.block1
        h = _LyingPool.apply(F.relu(b1.conv((x - self.mean) / self.std)))
        return self.head(self.encoder.block2(h))


def _frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@pytest.fixture(scope="module")
def network(standard_model):
    return _frozen(standard_model)


@pytest.fixture(scope="module")
def data(fmnist_test):
    return fmnist_test.first(64).tensors()


@pytest.fixture(scope="module")
def pgd_truth(network, data):
    """The undefended network's PGD-20 robust accuracy on the 64 examples."""
    x, y = data
    return _robust(network, PGD(20), x, y)[0]


def liar(network, kind, place) -> nn.Module:
    return _frozen(Liar(network, kind, place))


def _robust(model, attack, x, y, threat=LINF, seed=0):
    out = attack(model, x, y, threat, seed=seed, indices=torch.arange(len(x)))
    assert not threat.violations(out.x_adv, x).any()
    with torch.no_grad():
        kept = (model(x).argmax(1) == y) & (model(out.x_adv).argmax(1) == y)
    return 100.0 * float(kept.float().mean()), out


# --------------------------------------------------------------------------- the liars are liars


def test_liars_compute_the_network_and_lie_about_its_gradient(network, data):
    x, y = data
    for kind in KINDS:
        for place in PLACES:
            model = liar(network, kind, place)
            with torch.no_grad():
                assert torch.equal(model(x), network(x)), (kind, place)  # forward: bit for bit
    honest = liar(network, None, None)
    xg = x[:8].clone().requires_grad_(True)
    g_true = torch.autograd.grad(F.cross_entropy(network(xg), y[:8]), xg)[0]
    g_honest = torch.autograd.grad(F.cross_entropy(honest(xg), y[:8]), xg)[0]
    g_sign = torch.autograd.grad(F.cross_entropy(liar(network, "sign", "deep")(xg), y[:8]), xg)[0]
    assert torch.allclose(g_honest, g_true, atol=1e-6)
    assert torch.allclose(g_sign, -g_true, atol=1e-5)  # the deep lie reaches the input


# --------------------------------------------------------------------------- the consistency check


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS + ("scaled",))
def test_consistency_check_flags_each_liar(network, data, kind, place):
    x, y = data
    check = check_gradients(liar(network, kind, place), x[:32], y[:32], LINF, seed=0)
    assert check.n_checked == 32 and check.fraction >= 0.75, (check.fraction, check.kinds)
    assert check.kind == EXPECTED_KIND[kind], check.kinds
    (flag,) = gradient_flags(check)
    assert flag.name == FLAG and flag.severity == "error" and flag.value == pytest.approx(100 * check.fraction)
    assert f"{check.n_inconsistent} of 32" in flag.message
    if kind != "scaled" and place == "between":  # the record says where, too
        loc = locate_lie(liar(network, kind, place), x[:16], threat=LINF)
        (located,) = gradient_flags(check, location=loc)
        assert located.message.endswith("where: " + loc.message)


@pytest.mark.parametrize("threat", [LINF, L2, ThreatModel("Linf", 8 / 255)], ids=["linf0.1", "l2-1.5", "linf8/255"])
def test_consistency_check_is_quiet_on_honest_models(network, robust_model, fmnist_test, threat):
    """ReLU and max-pool kinks (ties on the flat black background of clean images) make
    finite differences disagree with an honest gradient by up to ~30 %: not a lie."""
    x, y = fmnist_test.first(128).tensors()
    for model in (network, _frozen(robust_model), liar(network, None, None)):
        for points in ("alternate", "clean"):
            check = check_gradients(model, x, y, threat, seed=0, points=points)
            assert check.n_inconsistent == 0, (points, check.kinds, [e for e in check.examples if not e.consistent][:3])
            assert gradient_flags(check) == []


def test_consistency_check_is_quiet_on_the_bundled_a3_model(a3_model, fmnist_test):
    x, y = fmnist_test.first(64).tensors()
    check = check_gradients(_frozen(a3_model), x, y, LINF, seed=0)
    assert check.n_inconsistent == 0 and gradient_flags(check) == []


def test_consistency_check_cost_is_a_tenth_of_pgd20(robust_model, fmnist_test):
    """In passes (seconds are in the benchmark, the machine is shared): one forward+backward
    and one forward per honest example — 3 passes against the 40 that PGD-20 spends on an
    example it does not break (7.5 %); with a3bench's early stop, PGD-20 spent ~30 per
    example on the PGD-AT model's first 64 (~10 %, docs/performance.md)."""
    x, y = fmnist_test.first(64).tensors()
    model = _frozen(robust_model)
    check = check_gradients(model, x, y, LINF, seed=0, randomized=False)
    assert check.n_inconsistent == 0
    assert (check.forward_passes, check.backward_passes) == (2 * 64, 64)
    pgd = PGD(20)(model, x, y, LINF, seed=0, indices=torch.arange(64))
    robust = ~pgd.success
    assert robust.any()
    per_example = (check.forward_passes + check.backward_passes) / 64
    assert per_example <= 0.10 * 40  # PGD-20 on each example it does not break: 20 forward + 20 backward
    assert per_example <= 0.12 * (pgd.forward_passes + pgd.backward_passes) / 64  # with early stop


def test_consistency_check_is_deterministic_and_batch_independent(network, data):
    x, y = data
    model = liar(network, "sign", "between")
    a = check_gradients(model, x[:16], y[:16], LINF, seed=3, indices=torch.arange(16))
    b = check_gradients(model, x[:16], y[:16], LINF, seed=3, indices=torch.arange(16), batch_size=5)
    c = check_gradients(model, x[8:16], y[8:16], LINF, seed=3, indices=torch.arange(8, 16))
    assert a.examples == check_gradients(model, x[:16], y[:16], LINF, seed=3, indices=torch.arange(16)).examples
    verdicts = lambda check: [(e.index, e.point, e.consistent, e.kind) for e in check.examples]  # noqa: E731
    # another batching changes float32 rounding in the convolutions, not the verdicts
    assert verdicts(a) == verdicts(b) and verdicts(a)[8:] == verdicts(c)
    assert [e.ratio for e in a.examples[8:]] == pytest.approx([e.ratio for e in c.examples], rel=1e-3)
    assert {e.point for e in a.examples} == {"clean", "perturbed"}


def test_consistency_check_skips_a_randomised_model(network, data):
    class Noise(nn.Module):
        def forward(self, x):
            return x + 0.05 * torch.randn_like(x)

    x, y = data
    check = check_gradients(nn.Sequential(Noise(), network).eval(), x[:16], y[:16], LINF)
    assert check.skipped and check.n_checked == 0 and gradient_flags(check) == []


def test_consistency_check_catches_a_quantiser_at_the_threat_models_scale(network, data):
    """A zero gradient where the loss changes within eps/2: kind ``zero``."""

    class Quantise(nn.Module):
        def forward(self, x):
            return torch.round(x * 31) / 31

    x, y = data
    check = check_gradients(nn.Sequential(Quantise(), network).eval(), x[:32], y[:32], LINF)
    assert check.kind == "zero" and check.fraction >= 0.75


# --------------------------------------------------------------------------- localisation

WHERE = {
    "input": ("the model's input", "`sub` in the model's forward"),
    "between": ("the output of `encoder`", "the input of `head`"),
    "deep": ("the output of `encoder.block2.conv`", "`relu` in `encoder.block2`"),
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS)
def test_localisation_names_the_place(network, data, kind, place):
    x, _ = data
    loc = locate_lie(liar(network, kind, place), x[:16], threat=LINF)
    assert loc.found and len(loc.gaps) == 1, loc.message
    gap = loc.gaps[0]
    before, after = WHERE[place]
    assert before in gap.before and after in gap.after, gap
    assert gap.kind == ("vanishes" if kind == "zero" else "stops matching")
    assert gap.through[0] == "_LieBackward" and gap.shape_preserving
    assert loc.message == gap.sentence and gap.sentence.startswith("the gradient ")
    assert loc.to_dict()["gaps"][0]["sentence"] == gap.sentence


def test_localisation_finds_nothing_in_honest_models(network, robust_model, data):
    x, _ = data
    for model in (network, _frozen(robust_model), liar(network, None, None)):
        loc = locate_lie(model, x[:16], threat=LINF)
        assert not loc.found and loc.gaps == [] and "no lie located" in loc.message
        assert loc.points and all(p.checked for p in loc.points)


def test_localisation_finds_two_lies_and_a_shape_changing_one(network, data):
    x, _ = data
    two = liar(network, "sign", "between")
    two.encoder.block1.kind = "zero"  # a second lie, upstream
    loc = locate_lie(two, x[:16], threat=LINF)
    assert [g.kind for g in loc.gaps] == ["stops matching", "vanishes"]
    assert "`encoder.block1`" in loc.gaps[1].after
    pool = locate_lie(_frozen(PoolLiar(network)), x[:16], threat=LINF)
    assert pool.found and not pool.bridgeable and "differ in shape" in pool.message
    assert "_LyingPoolBackward" in pool.gaps[0].through


def test_localisation_sees_past_functions_that_only_look_at_a_tensor():
    """BatchNorm and interpolate call ``input.dim()``/``size()`` first: a tensor is a point
    where it enters a computation, not where its shape is read."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Linear(8 * 14 * 14, 10)

        def forward(self, x):
            h = _Lie.apply(self.conv(x), "sign", None)
            return self.fc(F.relu(F.interpolate(self.bn(h), scale_factor=0.5)).flatten(1))

    torch.manual_seed(0)
    model = _frozen(Net())
    x = torch.rand(8, 1, 28, 28)
    loc = locate_lie(model, x, threat=LINF)
    assert loc.message == "the gradient stops matching between the output of `conv` and the input of `bn` (through `_LieBackward`)"
    acc_gap = forward_bridged(model, x.requires_grad_(True), loc.gaps)
    (g,) = torch.autograd.grad(acc_gap.sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    honest = lambda t: model.fc(F.relu(F.interpolate(model.bn(model.conv(t)), scale_factor=0.5)).flatten(1))  # noqa: E731
    (g_true,) = torch.autograd.grad(honest(x2).sum(), x2)
    assert torch.allclose(g, g_true, atol=1e-5)


def test_bridged_forward_is_exact_and_its_gradient_honest(network, data):
    x, y = data
    model = liar(network, "sign", "deep")
    loc = locate_lie(model, x[:16], threat=LINF)
    xg = x[:8].clone().requires_grad_(True)
    out = forward_bridged(model, xg, loc.gaps)
    with torch.no_grad():
        assert torch.equal(out, model(x[:8]))
    g = torch.autograd.grad(F.cross_entropy(out, y[:8]), xg)[0]
    xt = x[:8].clone().requires_grad_(True)
    g_true = torch.autograd.grad(F.cross_entropy(network(xt), y[:8]), xt)[0]
    assert torch.allclose(g, g_true, atol=1e-6)


# --------------------------------------------------------------------------- graph BPDA


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("kind", KINDS)
def test_graph_bpda_brings_each_liar_back_to_the_truth(network, data, pgd_truth, kind, place):
    x, y = data
    truth = pgd_truth
    model = liar(network, kind, place)
    fooled, _ = _robust(model, PGD(20), x, y)
    attack = build_attack("bpda-graph:steps=20")[0]
    assert attack.applies_to(AttackContext(model=model, threat=LINF, probe=x[:16])) is None
    bridged_acc, out = _robust(model, attack, x, y)
    assert fooled >= truth + 10, (fooled, truth)  # the lie fools plain PGD ...
    assert bridged_acc <= truth + 3, (bridged_acc, truth, attack.location.message)  # ... not the bridge
    f, b, _ = attack.max_passes()
    loc = attack.location
    assert out.forward_passes <= f * len(x) + loc.forward_passes and out.backward_passes <= b * len(x) + loc.backward_passes


def test_graph_bpda_is_skipped_with_a_note(network, data):
    x, _ = data
    attack = GraphBPDA(10)
    assert "no lie located" in attack.applies_to(AttackContext(model=network, threat=LINF, probe=x[:16]))
    note = attack.applies_to(AttackContext(model=_frozen(PoolLiar(network)), threat=LINF, probe=x[:16]))
    assert "differ in shape" in note


def test_graph_bpda_without_probe_locates_on_the_first_batch(network, data, pgd_truth):
    x, y = data
    model = liar(network, "zero", "between")
    attack = GraphBPDA(20)
    assert attack.applies_to(AttackContext(model=model, threat=LINF)) is None
    acc, _ = _robust(model, attack, x, y)
    assert attack.location.found and acc <= pgd_truth + 3


# --------------------------------------------------------------------------- black-box and transfer attacks


def test_spsa_budget_box_seed_and_batch_independence(network, data):
    x, y = data
    model = liar(network, "sign", "input")
    attack = build_attack("spsa-4:samples=16")[0]
    assert attack.kind is AttackKind.BLACK_BOX and attack.reveals.name == "black-box-beats-white-box"
    out = attack(model, x[:8], y[:8], LINF, seed=1, indices=torch.arange(8))
    assert not LINF.violations(out.x_adv, x[:8]).any() and out.backward_passes == 0
    assert 0 < out.forward_passes <= attack.max_passes()[0] * 8
    again = attack(model, x[:8], y[:8], LINF, seed=1, indices=torch.arange(8))
    part = attack(model, x[4:8], y[4:8], LINF, seed=1, indices=torch.arange(4, 8))
    assert torch.equal(out.x_adv, again.x_adv) and torch.equal(out.x_adv[4:], part.x_adv)
    other = attack(model, x[:8], y[:8], LINF, seed=2, indices=torch.arange(8))
    assert not torch.equal(out.x_adv, other.x_adv)
    # forward passes only: on a liar exactly what it does on the honest network
    assert torch.equal(attack(network, x[:8], y[:8], LINF, seed=1, indices=torch.arange(8)).x_adv, out.x_adv)
    l2 = attack(model, x[:8], y[:8], L2, seed=1, indices=torch.arange(8))
    assert not L2.violations(l2.x_adv, x[:8]).any()


def test_spsa_breaks_what_the_lie_hides(network, data):
    """A few SPSA steps already beat PGD-20 on a zero-gradient liar (PGD does not move)."""
    x, y = data
    model = liar(network, "zero", "deep")
    fooled, _ = _robust(model, PGD(20), x[:24], y[:24])
    spsa, _ = _robust(model, SPSA(8, samples=32, lr=0.02), x[:24], y[:24])
    assert spsa <= fooled - 20, (spsa, fooled)


def test_square_queries_budget_and_box(network, data):
    x, y = data
    attack = build_attack("square-40:restarts=2")[0]
    assert isinstance(attack, SquareQueries) and attack.kind is AttackKind.BLACK_BOX
    out = attack(liar(network, "noise", "between"), x[:8], y[:8], LINF, seed=0, indices=torch.arange(8))
    assert not LINF.violations(out.x_adv, x[:8]).any()
    assert 0 < out.forward_passes <= attack.max_passes()[0] * 8 and out.backward_passes == 0


def test_distillation_budget_determinism_and_attack(network, fmnist_train, data):
    x, y = data
    model = liar(network, "sign", "between")
    s1, b1 = distill(model, fmnist_train, LINF, train_steps=20, batch=64, seed=0)
    s2, b2 = distill(model, fmnist_train, LINF, train_steps=20, batch=64, seed=0)
    s3, _ = distill(model, fmnist_train, LINF, train_steps=20, batch=64, seed=1)
    w = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(w(s1), w(s2)) and not torch.equal(w(s1), w(s3))
    assert b1.steps == 20 and b1.stopped_by == "steps" and b1.labels == "soft" and 0 <= b1.agreement <= 1
    assert b1.target_forward_passes == 20 * 64 + 512 and b1.surrogate_backward_passes == 20 * 64
    _, cut = distill(model, fmnist_train, LINF, train_steps=20, batch=64, seconds=1e-9)
    assert cut.stopped_by == "seconds" and cut.steps < 20
    attack = build_attack("transfer:distill:train_steps=20:batch=64:steps=10")[0]
    assert isinstance(attack, DistillTransfer) and attack.kind is AttackKind.TRANSFER
    ctx = AttackContext(model=model, threat=LINF, dataset="fmnist", seed=0)
    assert attack.applies_to(ctx) is None
    attack.setup(ctx)
    out = attack(model, x[:16], y[:16], LINF, seed=0, indices=torch.arange(16))
    assert not LINF.violations(out.x_adv, x[:16]).any()
    f, b, fixed = attack.max_passes()
    assert out.forward_passes <= f * 16 + fixed and out.backward_passes <= b * 16 + fixed
    assert out.forward_passes >= attack.budget.target_forward_passes  # the distillation is counted
    assert AttackContext(model=model, threat=LINF).dataset is None
    assert "no dataset" in attack.applies_to(AttackContext(model=model, threat=LINF))


def test_registry_names_and_options():
    assert build_attack("spsa-100")[0].config() == {"steps": 100, "samples": 128, "delta": 0.01, "lr": 0.01, "random_start": True}
    d = build_attack("transfer:distill:labels=hard:arch=smallcnn")[0]
    assert d.labels == "hard" and d.arch == "smallcnn" and d.name == "transfer:distill:labels=hard:arch=smallcnn"
    from a3bench.errors import AttackError

    for bad in ("spsa-10:samples=1", "spsa-10:lr=0", "transfer:distill:labels=fuzzy", "transfer:distill:arch=nope",
                "transfer:distill:colour=red", "square-100:queries=3"):
        with pytest.raises(AttackError):
            build_attack(bad)


def test_escalation_plan():
    assert escalation(["zero-gradients", "not-converged"]) is None
    plan = escalation([{"name": "gradient-inconsistent"}, {"name": "black-box-beats-white-box"}])
    assert plan.attacks == ["bpda-graph", "bpda-graph:base=apgd-ce:restarts=3", "bpda-graph:base=apgd-dlr:restarts=3",
                            "bpda-graph:base=apgd-t", "transfer:distill", "spsa-100", "square-20000:restarts=2"]
    assert plan.triggers == ["gradient-inconsistent", "black-box-beats-white-box"]
    assert "gradient-inconsistent and black-box-beats-white-box fired" in plan.reason and "\n" not in plan.reason
    assert plan.forward_passes_per_example == sum(plan.per_attack.values())
    assert plan.fixed_forward_passes > 0  # the distillation
    fewer = escalation(["black-box-beats-white-box"], already=["bpda-graph", "spsa-100"])
    assert fewer.attacks == [a for a in plan.attacks if a not in ("bpda-graph", "spsa-100")]
    for name in plan.attacks:
        assert build_attack(name)[0].kind in (AttackKind.WHITE_BOX, AttackKind.BLACK_BOX, AttackKind.TRANSFER)


# --------------------------------------------------------------------------- the truth, slowly


@pytest.fixture(scope="module")
def truth(network, fmnist_test):
    """The undefended network's worst case of PGD-100 and PGD-100 (CW loss) on 100 examples."""
    x, y = fmnist_test.first(100).tensors()
    pgd, _ = _robust(network, PGD(100), x, y)
    cw, _ = _robust(network, PGD(100, loss="cw"), x, y)
    return x, y, min(pgd, cw)


@pytest.mark.expensive
def test_spsa_comes_within_a_few_points_of_the_truth(network, truth):
    """SPSA sees forward passes only, so its number on any liar is its number on the
    network (shown above, bit for bit); here it is compared with the truth."""
    x, y, true_acc = truth
    acc, out = _robust(liar(network, "shattered", "deep"), SPSA(100), x, y)
    assert acc <= true_acc + 8, (acc, true_acc)
    assert out.forward_passes <= SPSA(100).max_passes()[0] * len(x)


@pytest.mark.expensive
def test_distilled_transfer_comes_within_a_few_points_of_the_truth(network, truth):
    x, y, true_acc = truth
    model = liar(network, "noise", "input")
    attack = DistillTransfer(100, restarts=3)
    attack.setup(AttackContext(model=model, threat=LINF, dataset="fmnist", seed=0))
    acc, _ = _robust(model, attack, x, y)
    assert acc <= true_acc + 8, (acc, true_acc, attack.budget)


# graph BPDA on every kind × place: test_graph_bpda_brings_each_liar_back_to_the_truth (default run);
# the --suite full proofs on representative liars: tests/test_lying_models.py (expensive).
