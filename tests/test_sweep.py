"""``a3bench sweep-eps``: invariants of the eps curves on real small models, the cascade
against naive per-eps runs, the flags, the output files, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from a3bench.attacks.base import Attack, AttackOutput
from a3bench.attacks.pgd import PGD
from a3bench.cli import app
from a3bench.errors import AttackError, BudgetViolation
from a3bench.eval.sweep import MIN_NORM, WORST_CASE, save_sweep, sweep_attack_names, sweep_eps, sweep_flags
from a3bench.schema import read_sweep

N = 100


def monotone(values) -> bool:
    return all(b <= a for a, b in zip(values, values[1:]))


def flag_names(result) -> list[str]:
    return [f.name for f in result.flags]


@pytest.fixture(scope="module")
def standard_sweep(standard_model, fmnist_test):
    return sweep_eps(standard_model, fmnist_test, "Linf", [0, 0.02, 0.05, 0.1, 0.5], "pgd-10", n_examples=N, batch_size=50)


def test_invariants_standard_model(standard_sweep):
    r = standard_sweep
    curve = r.curves["pgd-10"]
    assert list(r.curves) == ["pgd-10"] and r.worst_case == curve  # one attack: no separate worst-case line
    assert monotone(curve)
    assert curve[0] == r.clean_acc > 50  # eps = 0: robust = clean, and no attack ran
    assert r.compute["per_eps"][0]["attacked"] == {"pgd-10": 0} and r.compute["per_eps"][0]["forward_passes"] == 0
    assert curve[-1] <= 1.0, "a standard model must be broken at eps 0.5"
    # (the fixture's weights depend on which tests ran before it: a loose bound)
    assert curve[3] < curve[0] / 2, "a standard model loses most of its accuracy by eps 0.1"
    assert "no-saturation" not in flag_names(r) and "not-monotone" not in flag_names(r)
    # per-example first breaking eps agrees with the curve
    for k, e in enumerate(r.eps):
        robust = sum(b is None or b > e for b in r.per_example.broken_at["pgd-10"])
        assert 100.0 * robust / N == pytest.approx(curve[k])
    assert r.per_example.indices == list(range(N))


def test_cascade_attacks_only_survivors(standard_sweep):
    attacked = [c["attacked"]["pgd-10"] for c in standard_sweep.compute["per_eps"]]
    robust_counts = [round(v * N / 100) for v in standard_sweep.curves["pgd-10"]]
    assert attacked[1] == robust_counts[0]  # first nonzero eps: every clean-correct example
    assert attacked[2:] == robust_counts[1:-1]  # then only what survived the previous eps


def _cascade_vs_naive(model, data, eps, attacks):
    kw = dict(n_examples=N, batch_size=50, seed=3)
    casc = sweep_eps(model, data, "Linf", eps, attacks, cascade=True, **kw)
    naive = sweep_eps(model, data, "Linf", eps, attacks, cascade=False, **kw)
    # The cascade's robust set at eps_k is the naive one at eps_k intersected with the
    # cascade's at eps_{k-1}: each example gets the same per-example random start at a given
    # eps in both modes, so cascade ≤ naive holds pointwise. Equality is not guaranteed:
    # PGD may break an example at a small eps and fail at a larger one (a different step
    # size, a different random start scale); naive counts it robust there, the cascade
    # correctly does not. That is also the only way a naive curve can rise with eps.
    for name in casc.curves:
        for c, nv in zip(casc.curves[name], naive.curves[name]):
            assert c <= nv + 1e-9
            assert nv - c <= 3.0, f"{name}: cascade {casc.curves[name]} vs naive {naive.curves[name]}"
        assert monotone(casc.curves[name])
    assert "not-monotone" not in flag_names(casc)
    cost = lambda r: r.compute["forward_passes"] + r.compute["backward_passes"]  # noqa: E731
    assert cost(casc) < cost(naive)
    return casc, naive


def test_cascade_matches_naive_standard(standard_model, fmnist_test):
    _cascade_vs_naive(standard_model, fmnist_test, [0, 0.01, 0.02, 0.05], "pgd-5")


def test_cascade_matches_naive_robust(robust_model, fmnist_test):
    casc, _ = _cascade_vs_naive(robust_model, fmnist_test, [0, 0.1, 0.2, 0.3], "pgd-5")
    curve = casc.curves["pgd-5"]
    assert curve[1] > 40.0 and curve[-1] < curve[1], "PGD-AT at its training eps is robust, less so beyond"


def test_worst_case_a3_model(a3_model, fmnist_test):
    r = sweep_eps(a3_model, fmnist_test, "Linf", [0, 0.1, 0.2], "fgsm,pgd-5", n_examples=50, batch_size=50)
    assert list(r.curves) == ["fgsm", "pgd-5", WORST_CASE]
    for k in range(len(r.eps)):
        assert r.curves[WORST_CASE][k] <= min(r.curves["fgsm"][k], r.curves["pgd-5"][k])
    assert all(monotone(v) for v in r.curves.values())


def test_same_seed_same_numbers(standard_model, fmnist_test):
    run = lambda seed: sweep_eps(standard_model, fmnist_test, "Linf", [0.02, 0.04], "pgd-3", n_examples=40, batch_size=16, seed=seed)  # noqa: E731
    a, b = run(5), run(5)
    assert a.curves == b.curves and a.per_example.broken_at == b.per_example.broken_at
    assert [(c["forward_passes"], c["backward_passes"]) for c in a.compute["per_eps"]] == \
           [(c["forward_passes"], c["backward_passes"]) for c in b.compute["per_eps"]]


class _Binarize(nn.Module):
    """Rounds its input to {0, 1} before the model: zero gradients everywhere (gradient
    masking), and random noise of Linf 0.5 rarely flips a pixel. PGD cannot break it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x))


def test_no_saturation_flag_fires_on_masked_gradients(standard_model, fmnist_test):
    r = sweep_eps(_Binarize(standard_model), fmnist_test, "Linf", [0, 0.5], "pgd-5", n_examples=N, batch_size=50)
    assert r.curves["pgd-5"][-1] > 5.0
    assert "no-saturation" in flag_names(r)
    flag = next(f for f in r.flags if f.name == "no-saturation")
    assert flag.value == pytest.approx(r.worst_case[-1])


def test_flag_rules():
    # not-monotone: any rise along a curve
    flags = sweep_flags("Linf", [0, 0.1, 0.2], {"pgd-20": [80.0, 30.0, 35.0]}, [80.0, 30.0, 35.0])
    assert [f.name for f in flags] == ["not-monotone"] and flags[0].value == pytest.approx(5.0)
    # no-saturation needs a large largest eps: 0.5 Linf, 5.0 L2 (on [0,1] pixels)
    assert sweep_flags("Linf", [0, 0.01], {"a": [80.0, 70.0]}, [80.0, 70.0]) == []  # tiny max eps: not judged
    assert [f.name for f in sweep_flags("Linf", [0, 0.01], {"a": [80.0, 70.0]}, [80.0, 70.0], saturation_eps=0.01)] == ["no-saturation"]
    assert [f.name for f in sweep_flags("Linf", [0, 0.5], {"a": [80.0, 6.0]}, [80.0, 6.0])] == ["no-saturation"]
    assert sweep_flags("Linf", [0, 0.5], {"a": [80.0, 5.0]}, [80.0, 5.0]) == []
    assert sweep_flags("L2", [0, 2.0], {"a": [80.0, 50.0]}, [80.0, 50.0]) == []
    assert [f.name for f in sweep_flags("L2", [0, 5.0], {"a": [80.0, 50.0]}, [80.0, 50.0])] == ["no-saturation"]


def test_attack_names():
    assert sweep_attack_names() == ["pgd-20"]
    assert sweep_attack_names("fgsm", "10,20,100") == ["fgsm", "pgd-10", "pgd-20", "pgd-100"]
    assert sweep_attack_names("pgd-20", "20") == ["pgd-20"]
    with pytest.raises(AttackError):
        sweep_attack_names(None, "ten")
    with pytest.raises(AttackError):
        sweep_attack_names(None, "0")


class _Escapes(Attack):
    name = "escapes"

    def run(self, model, x, y, threat, *, seed, indices):
        return AttackOutput((x + 2 * threat.eps).clamp(0, 1), torch.ones(x.shape[0], dtype=torch.bool))


class _Liar(Attack):
    """Claims success without changing anything: the re-check must not believe it."""

    name = "liar"

    def run(self, model, x, y, threat, *, seed, indices):
        return AttackOutput(x.clone(), torch.ones(x.shape[0], dtype=torch.bool))


def test_recheck(standard_model, fmnist_test):
    with pytest.raises(BudgetViolation):
        sweep_eps(standard_model, fmnist_test, "Linf", [0.05], [_Escapes()], n_examples=8)
    r = sweep_eps(standard_model, fmnist_test, "Linf", [0, 0.05], [_Liar()], n_examples=20)
    assert r.curves["liar"] == [r.clean_acc, r.clean_acc]


class _Fails(Attack):
    name = "fails"

    def run(self, model, x, y, threat, *, seed, indices):
        raise RuntimeError("cannot handle this model\nmore detail")


def test_failing_attack_is_recorded_and_flagged(standard_model, fmnist_test):
    """As in `attack`: the failure is noted, flagged, and the other curves go on."""
    r = sweep_eps(standard_model, fmnist_test, "Linf", [0, 0.05, 0.1], [_Fails(), PGD(3)], n_examples=8)
    assert "RuntimeError: cannot handle this model" in r.failed["fails"] and "more detail" not in r.failed["fails"]
    assert "attack-failed" in flag_names(r)
    assert r.curves["fails"] == [r.clean_acc] * 3  # it broke nothing before failing
    assert r.curves["pgd-3"][-1] < r.clean_acc  # the other curve ran


def test_save_roundtrip(standard_sweep, tmp_path):
    path = save_sweep(standard_sweep, tmp_path)
    assert path.name == f"{standard_sweep.model}.sweep.json"
    sweep = read_sweep(path)  # the contract a3bench report reads
    assert sweep.eps == standard_sweep.eps and sweep.curves == standard_sweep.curves
    assert sweep.plot is not None and (path.parent / sweep.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = path.with_name(path.name.replace(".json", ".md")).read_text()
    assert "| eps" in md and "pgd-10" in md
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["cascade"] is True and data["n_examples"] == N
    assert len(data["per_example"]["broken_at"]["pgd-10"]) == N


# --------------------------------------------------------------------------- minimum-norm FAB


@pytest.fixture(scope="module")
def min_norm_sweep(standard_model, fmnist_test):
    return sweep_eps(standard_model, fmnist_test, "Linf", [0, 0.02, 0.05, 0.1, 0.3], "pgd-20", n_examples=48, batch_size=48,
                     min_norm=True)


def test_min_norm_curve_from_distances(min_norm_sweep):
    r = min_norm_sweep
    assert list(r.curves) == ["pgd-20", MIN_NORM, WORST_CASE]
    fab, dist = r.curves[MIN_NORM], r.per_example.min_norm
    assert fab[0] == r.clean_acc and monotone(fab)
    assert len(dist) == 48 and all(d is None for d, ok in zip(dist, r.per_example.clean_correct) if not ok)
    for k, e in enumerate(r.eps):  # the curve is read off the distances: robust ⇔ no adversarial example within eps
        robust = sum(ok and (d is None or d > e) for d, ok in zip(dist, r.per_example.clean_correct))
        assert 100.0 * robust / 48 == pytest.approx(fab[k], abs=1e-3)
    for d, b in zip(dist, r.per_example.broken_at[MIN_NORM]):  # first grid eps at or above the distance
        if d is not None:
            assert b == min(e for e in r.eps if e >= d) if d <= r.eps[-1] else b is None
    # the one FAB run is counted once, not per eps, and worst case is the minimum of both curves
    assert r.compute["min_norm"]["attacked"] == round(r.clean_acc * 48 / 100) and r.compute["min_norm"]["backward_passes"] > 0
    assert all(w <= min(p, f) + 1e-9 for w, p, f in zip(r.worst_case, r.curves["pgd-20"], fab))
    # FAB is a strong attack on an undefended network: within 10 points of PGD-20 everywhere
    assert all(abs(p - f) <= 10 for p, f in zip(r.curves["pgd-20"], fab)), (r.curves["pgd-20"], fab)
    assert fab[-1] <= 2.0, "FAB must break (nearly) every example of a standard model at eps 0.3"


def test_min_norm_examples_are_real(standard_model, fmnist_test):
    """Every distance FAB reports belongs to an image in [0,1] that the model misclassifies."""
    from a3bench.attacks.autoattack import fab_min_norm
    from a3bench.threat import ThreatModel

    x, y = fmnist_test.first(16).tensors("cpu")
    model = standard_model.eval()
    out = fab_min_norm(model, x, y, "Linf", eps=0.3, seed=0)
    assert out.success.sum() >= 8
    adv = out.x_adv[out.success]
    assert adv.min() >= 0 and adv.max() <= 1
    assert (model(adv).argmax(1) != y[out.success]).all()
    d = ThreatModel("Linf", 1.0).distance(adv, x[out.success])
    correct = (model(x).argmax(1) == y)[out.success]
    assert (d[~correct] == 0).all()  # a clean mistake needs no perturbation
    assert (d[correct] > 0).all() and (d[correct] < 0.3).all()  # minimum-norm: far smaller than the box allows
    again = fab_min_norm(model, x, y, "Linf", eps=0.3, seed=0)
    assert torch.equal(again.x_adv, out.x_adv)  # same seed, same numbers


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_writes_json_md_png(checkpoint, tmp_path):
    res = runner.invoke(app, ["sweep-eps", "--model", str(checkpoint), "--eps", "0:0.1:3", "--steps", "2,3", "-n", "30",
                              "--batch-size", "30", "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    stem = "std_fmnist"
    data = json.loads((tmp_path / f"{stem}.sweep.json").read_text())
    assert data["eps"] == [0.0, 0.05, 0.1] and list(data["curves"]) == ["pgd-2", "pgd-3", WORST_CASE]
    assert data["plot"] == f"{stem}.sweep.png" and (tmp_path / data["plot"]).stat().st_size > 1000
    assert (tmp_path / f"{stem}.sweep.md").is_file()
    assert "worst-case" in res.output and "sweep ->" in res.output


def test_cli_default_path_keeps_a_different_sweep(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["sweep-eps", "--model", str(checkpoint), "--steps", "2", "-n", "20", "--device", "cpu", "--quiet"]
    assert runner.invoke(app, [*base, "--eps", "0:0.1:3"]).exit_code == 0
    published = tmp_path / "results" / "fmnist" / "Linf" / "std_fmnist.sweep.json"
    before = published.read_text()
    res = runner.invoke(app, [*base, "--eps", "0:0.2:3"])
    assert res.exit_code == 0, res.output
    assert published.read_text() == before and "kept" in res.output
    assert json.loads((tmp_path / "runs" / "fmnist" / "Linf" / "std_fmnist.sweep.json").read_text())["eps"] == [0.0, 0.1, 0.2]
    res = runner.invoke(app, [*base, "--eps", "0:0.1:3"])  # the same sweep again: replaced in place
    assert res.exit_code == 0 and "kept" not in res.output
    before = published.read_text()
    res = runner.invoke(app, [*base, "--eps", "0:0.1:3", "--steps", "2,3"])  # other curves: kept
    assert res.exit_code == 0 and "curves" in res.output and published.read_text() == before


def test_cli_min_norm_alone(checkpoint, tmp_path):
    res = runner.invoke(app, ["sweep-eps", "--model", str(checkpoint), "--eps", "0:0.2:5", "--min-norm", "-n", "16",
                              "--batch-size", "16", "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "std_fmnist.sweep.json").read_text())
    assert list(data["curves"]) == [MIN_NORM] and len(data["per_example"]["min_norm"]) == 16
    assert data["compute"]["per_eps"][1]["attacked"] == {}  # no per-eps attack ran: one FAB run priced the grid
    assert "fab-min-norm" in res.output and "one FAB run" in (tmp_path / "std_fmnist.sweep.md").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--eps", "0.1", "--min-norm", "--min-norm-restarts", "0"], "restarts"),
        (["--eps", "0:x:3"], "not a number"),
        (["--eps", "0.3:0.1:3"], "STOP ≥ START"),
        (["--eps", "0.1", "--attacks", "pgd-x"], "unknown attack"),
        (["--eps", "0.1", "--steps", "ten"], "--steps"),
        (["--eps", "0.1", "--norm", "L3"], "unknown norm"),
        (["--eps", "0.1", "--batch-size", "0"], "batch-size"),
    ],
)
def test_cli_bad_input(checkpoint, args, fragment):
    res = runner.invoke(app, ["sweep-eps", "--model", str(checkpoint), "-n", "8", "--quiet", *args])
    assert res.exit_code == 2, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err
