"""The audit of the attacks themselves (issue 11): binarization test (Zimmermann et al. 2022)
and indicators of attack failure (Pintor et al. 2022), a3bench/eval/audit.py.

Every test can fail: broken attacks (no optimisation step at all, a gradient of the wrong
sign) must fail the audit, correct ones must pass it, on a normally trained network."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackOutput
from a3bench.attacks.pgd import PGD, input_grad, pgd_loop
from a3bench.eval.audit import (
    PASS_THRESHOLD,
    AuditSettings,
    FeatureMap,
    attack_groups,
    audit,
    binarize,
    example_points,
    loss_indicators,
)
from a3bench.schema import read_audit, write_audit
from a3bench.errors import ModelSpecError
from a3bench.threat import ThreatModel, example_seeds

LINF = ThreatModel("Linf", 0.1)
L2 = ThreatModel("L2", 1.5)
N = 24


class WrongSign(PGD):
    """PGD descending the loss: a sign error, the classic broken attack."""

    def grad_fn(self, model):
        def grad(xa, ya):
            xg = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xg)
                g = input_grad(self.loss_fn(logits, ya).sum(), xg)
            return logits.detach(), -g

        return grad


class ZeroSteps(Attack):
    """No optimisation step: returns PGD's random start (a uniform point of the ball)."""

    name = "zero-steps"

    def run(self, model, x, y, threat, *, seed, indices):
        x_adv = threat.random_start(x, seeds=example_seeds(seed, indices))
        with torch.no_grad():
            success = model(x_adv).argmax(1) != y
        return AttackOutput(x_adv, success, forward_passes=len(x))


class Quantise(nn.Module):
    """8-bit input quantiser: the identity on Fashion-MNIST's grid, with a zero gradient."""

    def forward(self, x):
        return torch.round(x * 255) / 255


@pytest.fixture(scope="module")
def data(fmnist_test):
    return fmnist_test.first(N).tensors(torch.device("cpu"))


@pytest.fixture(scope="module")
def pgd_audit(standard_model, data):
    x, y = data
    return audit(standard_model, x, y, LINF, [PGD(10, name="pgd-10"), ZeroSteps(), WrongSign(10, name="wrong-sign")], seed=0)


def rates(result) -> dict[str, float | None]:
    return {b.attack: b.pass_rate for b in result.binarization}


def flag_names(result) -> set[str]:
    return {f.name for f in result.flags}


# --------------------------------------------------------------------------- the binary model


@pytest.mark.parametrize("threat", [LINF, L2], ids=["Linf", "L2"])
def test_every_point_is_in_budget_and_in_the_box(data, threat):
    x, _ = data
    settings = AuditSettings()
    for i, s in enumerate(example_seeds(0, range(4))):
        inner, bnd, ctl = example_points(x[i], threat, settings, s)
        pts = torch.cat([inner, bnd[None], ctl])
        assert not threat.violations(pts, x[i].expand_as(pts)).any()
        assert (pts >= 0).all() and (pts <= 1).all()
        # the boundary point is near the edge, the inner points fill the ball
        assert threat.distance(bnd[None], x[i][None]).item() >= 0.9 * settings.boundary_radius * threat.eps
        assert threat.distance(inner, x[i].expand_as(inner)).max().item() > 0.5 * threat.eps


def test_binary_model_puts_x_and_inner_points_in_class_0_and_the_boundary_point_in_class_1(standard_model, data):
    x, _ = data
    settings = AuditSettings()
    positions = torch.arange(len(x))
    features = FeatureMap(standard_model, x[:4])
    try:
        fit = binarize(features, x, LINF, positions=positions, seed=3, settings=settings)
        assert fit.testable.sum() >= len(x) // 2, "most examples must be testable on a plain CNN"
        seeds = example_seeds(3, positions, salt=7_001)
        for i in fit.testable.nonzero().flatten().tolist():
            inner, bnd, _ = example_points(x[i], LINF, settings, seeds[i])
            with torch.no_grad():
                pred = fit.model(torch.cat([x[i : i + 1], inner, bnd[None]])).argmax(1)  # routed to example i by distance
            assert (pred[:-1] == 0).all(), f"example {i}: x or an inner point is in class 1"
            assert pred[-1] == 1, f"example {i}: the boundary point is not in class 1"
    finally:
        features.close()
    assert not any(h for h in features._hooks), "the audit must leave no hook on the model"


def test_inputs_are_matched_to_their_own_example_even_with_duplicates(data):
    x, _ = data
    xs = torch.cat([x[:3], x[:1]])  # example 3 duplicates example 0: their balls overlap
    groups = attack_groups(xs, LINF, batch_size=256)
    where = {i: g for g, idx in enumerate(groups) for i in idx.tolist()}
    assert where[0] != where[3] and sorted(where) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- the test discriminates


def test_correct_pgd_passes_on_a_standard_model(pgd_audit):
    assert pgd_audit.n_testable >= N // 2
    assert rates(pgd_audit)["pgd-10"] >= PASS_THRESHOLD
    assert pgd_audit.control.pass_rate < 50.0, "a random point of the ball must rarely be class 1"


@pytest.mark.parametrize("broken", ["zero-steps", "wrong-sign"])
def test_a_broken_attack_fails_the_binarization_test(pgd_audit, standard_model, data, broken):
    assert rates(pgd_audit)[broken] < PASS_THRESHOLD
    assert rates(pgd_audit)[broken] < rates(pgd_audit)["pgd-10"] - 30
    # audited alone, the broken attack raises the flag
    x, y = data
    attack = ZeroSteps() if broken == "zero-steps" else WrongSign(10, name="wrong-sign")
    alone = audit(standard_model, x, y, LINF, [attack], seed=0, indicators=False)
    assert "binarization-test-failed" in flag_names(alone)


def test_the_suite_passes_when_any_attack_passes(pgd_audit):
    s = pgd_audit.suite
    assert s.pass_rate == rates(pgd_audit)["pgd-10"]  # the broken ones add nothing here
    assert "binarization-test-failed" not in flag_names(pgd_audit)


def test_same_seed_same_pass_rate(standard_model, data):
    x, y = data
    runs = [audit(standard_model, x[:12], y[:12], LINF, [PGD(3, name="pgd-3"), ZeroSteps()], seed=5, indicators=False) for _ in range(2)]
    assert [b.passed for b in runs[0].binarization] == [b.passed for b in runs[1].binarization]
    assert runs[0].testable == runs[1].testable and runs[0].control.passed == runs[1].control.passed


def test_a_masked_gradient_fails_pgd_and_not_bpda(standard_model, data):
    """A zero-gradient quantiser in front of the network: PGD cannot move, BPDA can."""
    from a3bench.attacks.registry import build_attack

    x, y = data
    liar = nn.Sequential(Quantise(), standard_model).eval()
    res = audit(liar, x[:12], y[:12], LINF, [PGD(10, name="pgd-10")] + build_attack("bpda:steps=10"), seed=0, indicators=False)
    pgd, bpda = res.binarization
    assert pgd.pass_rate < PASS_THRESHOLD
    assert bpda.status == "ran" and bpda.pass_rate >= PASS_THRESHOLD


def test_transfer_attacks_are_skipped_with_a_reason(standard_model, data):
    from a3bench.attacks.adaptive import TransferPGD

    x, y = data
    res = audit(standard_model, x[:4], y[:4], LINF, [TransferPGD("unused")], seed=0, indicators=False)
    assert res.binarization[0].status == "skipped" and "transfer" in res.binarization[0].note
    assert res.suite is None and res.flags == []


# --------------------------------------------------------------------------- features


def test_features_are_the_input_of_the_final_linear_layer(standard_model, data):
    x, _ = data
    fm = FeatureMap(standard_model, x[:4])
    try:
        with torch.no_grad():
            assert torch.equal(fm(x[:4]), standard_model.features(x[:4]))
        assert "backbone.head" in fm.description and not fm.randomized
    finally:
        fm.close()


def test_features_of_an_ensemble_concatenate_every_head(standard_model, data):
    class Mean(nn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.a, self.b = a, b

        def forward(self, x):
            return (self.a(x) + self.b(x)) / 2

    x, _ = data
    fm = FeatureMap(Mean(standard_model, standard_model), x[:4])
    try:
        assert fm.dim == 2 * standard_model.backbone.head.in_features and "2 final linear" in fm.description
    finally:
        fm.close()


def test_a_randomised_model_is_detected_and_a_model_without_linear_layer_refused(standard_model, data):
    class Noise(nn.Module):
        def forward(self, x):
            return x + 0.05 * torch.randn_like(x)

    x, _ = data
    fm = FeatureMap(nn.Sequential(Noise(), standard_model), x[:4])
    fm.close()
    assert fm.randomized
    with pytest.raises(ModelSpecError):
        FeatureMap(nn.Sequential(nn.Flatten(), nn.Identity()), x[:4])


def test_a_randomised_model_is_audited_with_averaged_features(standard_model, data):
    from a3bench.attacks.registry import build_attack

    class Noise(nn.Module):
        def forward(self, x):
            return x + 0.02 * torch.randn_like(x)

    x, y = data
    torch.manual_seed(0)
    res = audit(nn.Sequential(Noise(), standard_model).eval(), x[:6], y[:6], LINF, build_attack("eot-pgd-5:n=2"), seed=0,
                settings=AuditSettings(draws=3))
    assert res.randomized and res.binarization[0].status == "ran" and res.indicators[0].status == "ran"
    assert res.n_testable > 0 and res.binarization[0].pass_rate is not None


def test_dlr_attacks_run_on_the_binary_model(standard_model, data):
    """The binary model pads two logits that never win, so DLR (3rd/4th logit) attacks run."""
    from a3bench.attacks.registry import build_attack

    x, y = data
    res = audit(standard_model, x[:4], y[:4], LINF, build_attack("apgd-dlr"), seed=0, indicators=False)
    assert res.binarization[0].status == "ran", res.binarization[0].note


# --------------------------------------------------------------------------- indicators


def test_pgd_loop_traces_the_loss_only_when_asked(standard_model, data):
    x, y = data
    x0 = LINF.random_start(x[:8], seeds=example_seeds(0, range(8)))
    plain = pgd_loop(standard_model, x[:8], y[:8], LINF, x0, steps=5, step_size=0.02)
    assert plain.loss_trace is None
    traced = pgd_loop(standard_model, x[:8], y[:8], LINF, x0, steps=5, step_size=0.02, trace=True)
    assert traced.loss_trace.shape == (6, 8)
    with torch.no_grad():
        start = nn.functional.cross_entropy(standard_model(x0), y[:8], reduction="none")
    assert torch.allclose(traced.loss_trace[0], start, atol=1e-5)
    assert torch.equal(traced.success, plain.success) and torch.equal(traced.x_adv, plain.x_adv)
    # an example leaves at its first success: its trace ends there, the others run to the end
    for j in range(8):
        filled = ~torch.isnan(traced.loss_trace[:, j])
        last = int(filled.nonzero().max())
        assert filled[: last + 1].all() and not filled[last + 1 :].any()
        assert last == 5 or traced.success[j]


def test_loss_indicators_on_hand_made_traces():
    nan = float("nan")
    trace = torch.tensor([
        [1.0, 1.0, 1.0, 1.0],
        [0.5, 1.5, 1.2, 1.1],
        [0.4, 1.6, 1.4, 1.1],
        [0.3, nan, 1.6, 1.1],
        [0.2, nan, 1.8, 1.1],
        [0.1, nan, 2.0, 1.1],
    ])
    success = torch.tensor([True, True, False, False])
    silent, nonconv = loss_indicators(trace, success)
    # 0: succeeded with the loss only falling (silent); 1: an ordinary success
    assert silent.tolist() == [True, False, False, False]
    # 2: failed while still rising at the end; 3: failed on a plateau
    assert nonconv.tolist() == [False, False, True, False]
    short_silent, short_nonconv = loss_indicators(trace[:3], success)
    assert short_nonconv is None  # too few iterations to judge convergence


def test_a_wrong_sign_attack_triggers_unconstrained_failure_a_correct_one_no_indicator(pgd_audit):
    ind = {i.attack: i for i in pgd_audit.indicators}
    good, bad = ind["pgd-10"], ind["wrong-sign"]
    assert good.n_attacked > 0
    assert good.count("unconstrained_failure") == 0 and good.count("silent_success") == 0
    # at an unbounded eps the random start is a noise image, which breaks most examples by
    # itself; the wrong sign then pushes the rest deeper into their class: some stay unbroken
    assert bad.count("unconstrained_failure") >= 1
    assert "unconstrained-attack-failure" in flag_names(pgd_audit)
    assert "wrong-sign" in next(f.message for f in pgd_audit.flags if f.name == "unconstrained-attack-failure")
    assert "pgd-10" not in next(f.message for f in pgd_audit.flags if f.name == "unconstrained-attack-failure")


def test_indicators_without_a_loss_trace_are_not_available(pgd_audit):
    ind = {i.attack: i for i in pgd_audit.indicators}["zero-steps"]
    assert ind.silent_success is None and ind.non_converging is None
    assert ind.count("silent_success") is None


def test_too_few_iterations_leave_the_loss_rising(standard_model, data):
    """PGD with a tiny step for 10 iterations on a robust-ish start: the loss still climbs."""
    x, y = data
    res = audit(standard_model, x, y, LINF, [PGD(10, step_size=1e-4, name="pgd-10-tiny")], seed=0, binarization=False)
    ind = res.indicators[0]
    assert ind.count("non_converging") > 0
    assert "non-converging-loss" in flag_names(res)


# --------------------------------------------------------------------------- files


def test_audit_file_round_trips(pgd_audit, tmp_path):
    path = tmp_path / "m.audit.json"
    write_audit(path, pgd_audit)
    data = json.loads(path.read_text())
    assert data["kind"] == "audit" and data["schema_version"] == 1
    back = read_audit(path)
    assert back.to_dict() == pgd_audit.to_dict()
    assert back.summary()["pass_rate"] == pgd_audit.suite.pass_rate


# --------------------------------------------------------------------------- CLI


def test_cli_writes_the_audit_and_prints_the_table(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from a3bench.cli import app

    out = tmp_path / "std.audit.json"
    res = CliRunner().invoke(app, ["audit", "--model", str(checkpoint), "--attacks", "pgd-5", "-n", "8", "--n-inner", "15",
                                   "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "pgd-5" in res.output and "suite" in res.output and "audit ->" in res.output
    back = read_audit(out)
    assert back.n_examples == 8 and back.settings.n_inner == 15 and back.eps == 0.1 and back.dataset == "fmnist"


@pytest.mark.parametrize("args, fragment", [
    (["--eps", "-1"], "eps"),
    (["--eps", "0"], "nothing to audit"),
    (["--attacks", "nope"], "unknown attack"),
    (["--n-inner", "0"], "--n-inner"),
    (["--n-examples", "-3"], "--n-examples"),
    (["--norm", "L7"], "unknown norm"),
])
def test_cli_bad_input_is_one_error_line(checkpoint, args, fragment):
    from typer.testing import CliRunner

    from a3bench.cli import app

    res = CliRunner().invoke(app, ["audit", "--model", str(checkpoint), *args])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], res.output


@pytest.mark.parametrize("d", [40, 300])
def test_the_readout_solved_in_the_points_space_is_the_same_readout(monkeypatch, d):
    """More features than points (always: 33 points) take the (M+1)×(M+1) Newton step instead
    of the d×d Hessian: the same readout. The d×d reference is solved with one thread, where
    torch's batched LU is reliable (with two it returned garbage on 301×301 systems)."""
    import a3bench.eval.audit as audit_module
    from a3bench.schema import AuditSettings

    gen = torch.Generator().manual_seed(d)
    z0, z1 = torch.randn(4, 31, d, generator=gen), torch.randn(4, d, generator=gen) + 0.5
    dual = audit_module.fit_readouts(z0, z1, AuditSettings())
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        primal = audit_module.fit_readouts(z0, z1, AuditSettings(), primal=True)
    finally:
        torch.set_num_threads(threads)
    assert bool(primal[2].all()) and torch.equal(primal[2], dual[2])
    assert torch.allclose(primal[0], dual[0], rtol=1e-4, atol=1e-6) and torch.allclose(primal[1], dual[1], rtol=1e-4, atol=1e-5)
