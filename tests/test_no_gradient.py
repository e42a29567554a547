"""Models without an input gradient, and graphs that change between passes (issue 25):
a cut graph is a finding, not an error; every step of every attack is under one failure
policy; the lie location handles points that do not require grad and graphs whose shapes
change. docs/diagnostics.md#no-input-gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from a3bench.attacks.graph import forward_bridged, locate_lie
from a3bench.attacks.registry import attack_examples, build_attack
from a3bench.eval.runner import evaluate
from a3bench.schema import AttackStatus, Verdict
from a3bench.threat import ThreatModel
from tests.conftest import needs_fmnist

pytestmark = needs_fmnist
LINF = ThreatModel("Linf", 0.1)
THRESHOLDS = (0.2, 0.4, 0.6)


class Bits(nn.Module):
    """An encoding built from comparisons: no autograd path from x to its output."""

    def forward(self, x):
        return torch.cat([(x > t).float() for t in THRESHOLDS], dim=1)


class Detach(nn.Module):
    def forward(self, x):
        return x.detach()


def _bits_model(train, steps: int = 150) -> nn.Module:
    """``nn.Sequential(Bits(), Flatten(), Linear)``, trained here on thresholded pixels
    (a logistic regression: seconds), ~75 % clean on Fashion-MNIST."""
    torch.manual_seed(0)
    head = nn.Linear(len(THRESHOLDS) * 28 * 28, 10)
    x, y = train.first(3000).tensors()
    z = Bits()(x).flatten(1)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(head(z), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return nn.Sequential(Bits(), nn.Flatten(), head).eval()


@pytest.fixture(scope="module")
def bits_model(fmnist_train):
    return _bits_model(fmnist_train)


@pytest.fixture(scope="module")
def batch(fmnist_test):
    return fmnist_test.first(8).tensors()


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def test_the_bits_model_has_no_input_gradient_and_a_real_accuracy(bits_model, fmnist_test):
    x, y = fmnist_test.first(200).tensors()
    xg = x.clone().requires_grad_(True)
    out = _frozen(bits_model)(xg)
    assert not out.requires_grad
    assert (out.argmax(1) == y).float().mean() > 0.6


@pytest.mark.parametrize("make", ["bits", "detach"])
def test_the_lie_location_finds_and_bridges_the_cut(make, bits_model, standard_model, batch):
    model = _frozen(bits_model if make == "bits" else nn.Sequential(Detach(), standard_model).eval())
    x, _ = batch
    loc = locate_lie(model, x, threat=LINF)
    assert loc.found and "is cut" in loc.message
    assert ("gt" if make == "bits" else "detach") in loc.message
    assert loc.bridgeable, "the cut keeps the shape: a straight-through bridge fits"
    xg = x.clone().requires_grad_(True)
    bridged = forward_bridged(model, xg, loc.bridgeable)
    with torch.no_grad():
        assert torch.equal(bridged.detach(), model(x)), "a bridge changes gradients, never values"
    grad = torch.autograd.grad(bridged.logsumexp(1).sum(), xg)[0]
    assert grad.abs().sum() > 0


def test_a_cut_that_changes_shape_is_found_but_not_bridged(standard_model, batch):
    class OneHot(nn.Module):  # a cut whose far side has another shape: no bridge fits
        def forward(self, x):
            levels = (x * 3.999).long().flatten(1)  # the cut: an integer cast
            return nn.functional.one_hot(levels, 4).float().flatten(1)

    torch.manual_seed(0)
    model = _frozen(nn.Sequential(OneHot(), nn.Linear(28 * 28 * 4, 10)).eval())
    loc = locate_lie(model, batch[0], threat=LINF)
    assert loc.found and not loc.bridgeable and "no straight-through bridge fits" in loc.message


def test_a_graph_whose_shapes_change_is_skipped_with_a_reason(standard_model, batch):
    class Jitter(nn.Module):
        """Randomised crop-and-resize whose intermediate size changes from pass to pass."""

        def forward(self, x):
            size = int(torch.randint(20, 28, (1,)))
            z = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            return nn.functional.interpolate(z, size=(28, 28), mode="bilinear", align_corners=False)

    model = _frozen(nn.Sequential(Jitter(), standard_model).eval())
    torch.manual_seed(0)
    loc = locate_lie(model, batch[0], threat=LINF)
    assert not loc.found and "changes from one pass to the next" in loc.message
    (attack,) = build_attack("bpda-graph:steps=2")
    from a3bench.attacks.base import AttackContext

    reason = attack.applies_to(AttackContext(model=model, threat=LINF, seed=0, probe=batch[0]))
    assert reason is not None and "changes from one pass to the next" in reason


def test_a_cut_graph_is_a_finding_gradient_attacks_skip_and_the_rest_carry(bits_model, fmnist_test):
    res = evaluate(bits_model, fmnist_test, LINF, "pgd-10,apgd-ce,square-200,bpda-graph:steps=10", n_examples=40, batch_size=40)
    rec = res.record
    flags = {f.name: f for f in rec.flags}
    assert "no-input-gradient" in flags and "the gradient is cut" in flags["no-input-gradient"].message
    by = {a.name: a for a in rec.per_attack}
    for name in ("pgd-10", "apgd-ce"):
        assert by[name].status is AttackStatus.SKIPPED and "no-input-gradient" in by[name].note
    assert by["square-200"].status is AttackStatus.RAN and by["square-200"].broken > 0
    assert by["bpda-graph:steps=10"].status is AttackStatus.RAN
    assert rec.verdict is Verdict.UNRELIABLE
    assert rec.robust_acc <= rec.clean_acc


def _raising(where: str, attack):
    def boom(*a, **k):
        raise RuntimeError(f"boom in {where}")

    setattr(attack, where, boom)
    return attack


@pytest.fixture(scope="module")
def attack_models(standard_model, a3_model, bits_model):
    """A model each registered attack applies to (as in test_attack_invariants), the model
    without an input gradient among them."""
    from tests.test_attack_invariants import _Quantise, _small_crossmax, _small_vit, _Softmax

    return [standard_model, a3_model, _Softmax(standard_model), nn.Sequential(_Quantise(), standard_model), _small_crossmax(),
            _small_vit(), bits_model]


@pytest.mark.parametrize("where", ["applies_to", "setup", "run"])
@pytest.mark.parametrize("display", list(attack_examples()))
def test_every_attack_that_raises_anywhere_is_recorded_failed_and_the_run_goes_on(display, where, attack_models, fmnist_test, batch, tmp_path):
    """The failure policy covers every step of every registered attack: asked whether it
    applies, set up, run. The run reaches a record with a verdict, never a traceback."""
    from a3bench.attacks.base import AttackContext

    example = attack_examples()[display].replace("{model}", "smallcnn.pgdat_fmnist")
    model = next((m for m in attack_models
                  if all(a.applies_to(AttackContext(model=m, threat=LINF, seed=0, num_classes=10, dataset="fmnist", probe=batch[0])) is None
                         for a in build_attack(example))), None)
    assert model is not None, f"{display}: no test model is one it applies to"
    attacks = [_raising(where, a) for a in build_attack(example)]
    res = evaluate(model, fmnist_test, LINF, [*attacks, *build_attack("square-5")], n_examples=6, batch_size=6, probe=False,
                   adapt_plan=False)
    recs = {r.name: r for r in res.record.per_attack}
    for a in attacks:
        rec = recs[a.name]
        if where != "applies_to" and rec.status is AttackStatus.SKIPPED:
            assert "no-input-gradient" in rec.note  # the model without a gradient: skipped before it is set up
            continue
        assert rec.status is AttackStatus.FAILED and "boom" in rec.note, (rec.status, rec.note)
    assert recs["square-5"].status is AttackStatus.RAN, "the attacks after the failed one still run"
    assert res.record.verdict is not Verdict.RELIABLE


def test_an_escalation_attack_that_cannot_be_built_is_recorded_failed(monkeypatch, bits_model, fmnist_test):
    import a3bench.attacks.escalation as esc

    monkeypatch.setattr(esc, "ATTACKS", ("square-50", "no-such-attack-9"))
    res = evaluate(bits_model, fmnist_test, LINF, suite="full", n_examples=6, batch_size=6, probe=False)
    recs = {r.name: r for r in res.record.per_attack}
    assert recs["no-such-attack-9"].status is AttackStatus.FAILED and "could not be built" in recs["no-such-attack-9"].note
    assert recs["square-50"].status is AttackStatus.RAN
    assert res.record.verdict is Verdict.UNRELIABLE


@pytest.mark.expensive
def test_the_full_suite_reaches_a_verdict_on_a_model_without_input_gradient(bits_model, fmnist_test, tmp_path):
    """Issue 25's command, on a few examples: `--suite full` to the end, escalation included."""
    import sys
    from subprocess import run

    path = tmp_path / "bits.pt"
    torch.save(bits_model, path)  # the factory below reloads this exact module (trusted: written here)
    factory = tmp_path / "factory.py"
    factory.write_text(f"import torch\nfrom tests.test_no_gradient import Bits\n\ndef make():\n"
                       f"    return torch.load({str(path)!r}, weights_only=False)\n")
    out = tmp_path / "r.json"
    done = run([sys.executable, "-m", "a3bench", "attack", "--model", f"{factory}:make", "--dataset", "fmnist", "--eps", "0.1",
                "--suite", "full", "-n", "20", "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=3000,
               cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    rec = json.loads(out.read_text())
    assert rec["verdict"] == "unreliable" and any(f["name"] == "no-input-gradient" for f in rec["flags"])
    assert rec["diagnostics"]["escalation"]["triggers"] == ["no-input-gradient"]
    names = [a["name"] for a in rec["per_attack"]]
    assert "transfer:distill" in names and "spsa-100" in names
