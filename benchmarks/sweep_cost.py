"""What the eps cascade saves, measured in one run on the same model and examples.

    python benchmarks/sweep_cost.py [--model smallcnn.pgdat_fmnist] [--eps 0.05:0.4:8]
                                    [--attack pgd-20] [-n 500] [--threads 1]

Three ways to get robust accuracy at 8 eps values:
- cascade: ``sweep-eps`` (each eps attacks only what survived the previous one);
- one eps: a single ``a3bench attack`` run at one eps = a clean pass + the attack on every
  clean-correct example. Reported for the most expensive eps of the grid ("max") and on
  average over the grid ("mean");
- naive: 8 such runs, one per eps (= ``sweep-eps --no-cascade`` plus 7 more clean passes);
- min-norm: ``sweep-eps --min-norm`` (one untargeted FAB run finds each example's smallest
  breaking perturbation and so prices the whole grid), against FAB run as an ordinary
  attack at one eps (pyautoattack's ``FABAttack_PT.perturb``, same settings). ``--no-fab``
  skips these rows.

Cost is counted in forward + backward passes over single examples (deterministic: the
same on any machine) and in seconds (noisy on a shared machine). Target (issue 5):
cascade ≤ 2.5 × one eps.

The model: the bundled PGD-AT model if the zoo has it (``$A3BENCH_ZOO``, ./model_zoo,
else ./runs/zoo when it holds it), else a small CNN trained here for 300 steps.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch


def _model(name: str):
    from a3bench.models import load_model
    from a3bench.models.zoo import zoo_path

    runs_zoo = Path(__file__).resolve().parents[1] / "runs" / "zoo"
    if zoo_path(name) is None and (runs_zoo / name / "model.pt").is_file():
        os.environ["A3BENCH_ZOO"] = str(runs_zoo)
    if zoo_path(name) is not None:
        return load_model(name), name
    from a3bench.data import load_dataset
    from a3bench.models import create_model
    from a3bench.models.spec import LoadedModel

    print(f"{name} not in the zoo: training a standard small CNN (300 steps) instead")
    train = load_dataset("fmnist", "train")
    model = create_model("smallcnn", num_classes=10, mean=train.info.mean, std=train.info.std)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    step = 0
    for x, y in train.first(20000).batches(128, shuffle=True, seed=0):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step == 300:
            break
    return LoadedModel(model.eval(), name="smallcnn-standard", source="module", dataset="fmnist"), "smallcnn-standard (trained here)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smallcnn.pgdat_fmnist")
    ap.add_argument("--eps", default="0.05:0.4:8", help="the grid (default: 8 nonzero eps, none free)")
    ap.add_argument("--attack", default="pgd-20")
    ap.add_argument("-n", "--n-examples", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-fab", action="store_true", help="skip the minimum-norm rows")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from a3bench.data import load_dataset
    from a3bench.eval.sweep import eps_labels, sweep_eps
    from a3bench.threat import parse_eps_list

    loaded, label = _model(args.model)
    data = load_dataset("fmnist", "test")
    eps = parse_eps_list(args.eps)
    kw = dict(n_examples=args.n_examples, seed=args.seed, batch_size=args.batch_size, device="cpu")

    t0 = time.perf_counter()
    casc = sweep_eps(loaded, data, "Linf", eps, args.attack, cascade=True, **kw)
    t_casc = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = sweep_eps(loaded, data, "Linf", eps, args.attack, cascade=False, **kw)
    t_naive_sweep = time.perf_counter() - t0

    n = casc.n_examples
    passes = lambda c: c["forward_passes"] + c["backward_passes"]  # noqa: E731
    # One eps = its own run: a clean pass (n forward) + the attack on every clean-correct example,
    # which is exactly the naive sweep's work at that eps (same examples, same per-example seeds).
    one = [n + passes(c) for c in naive.compute["per_eps"]]
    one_s = [t_naive_sweep * c["seconds"] / max(sum(d["seconds"] for d in naive.compute["per_eps"]), 1e-9) for c in naive.compute["per_eps"]]
    cascade_p = casc.compute["forward_passes"] + casc.compute["backward_passes"]
    naive_p = sum(one)
    k_max = max(range(len(one)), key=one.__getitem__)
    mean_p, mean_s = naive_p / len(one), sum(one_s) / len(one_s)

    print(f"model {label} · fmnist Linf · {args.attack} · n={n} · seed {args.seed} · {torch.get_num_threads()} thread(s)")
    print(f"eps grid: {', '.join(eps_labels(casc.eps))}")
    print(f"cascade curve: {casc.curves[args.attack]}")
    print(f"naive curve:   {naive.curves[args.attack]}")
    print(f"one eps, passes per eps: {one}")
    print(f"{'':24}{'fwd+bwd passes':>16}{'seconds':>10}{'÷ max one eps':>16}{'÷ mean one eps':>16}")
    rows = [
        (f"one eps (max, {eps_labels(casc.eps)[k_max]})", one[k_max], one_s[k_max]),
        ("one eps (mean)", mean_p, mean_s),
        (f"cascade ({len(eps)} eps)", cascade_p, t_casc),
        (f"naive ({len(eps)} runs)", naive_p, sum(one_s)),
    ]
    for name, p, s in rows:
        print(f"{name:24}{p:>16.0f}{s:>10.1f}{p / one[k_max]:>15.2f}×{p / mean_p:>15.2f}×   (seconds: {s / one_s[k_max]:.2f}× / {s / mean_s:.2f}×)")
    print(f"cascade saves {100 * (1 - cascade_p / naive_p):.0f} % of the naive passes; target cascade ≤ 2.5× one eps (max): "
          f"{'met' if cascade_p <= 2.5 * one[k_max] else 'NOT met'} ({cascade_p / one[k_max]:.2f}×)")
    if not args.no_fab:
        _min_norm_rows(loaded, data, eps, kw, one[k_max], mean_p)


def _min_norm_rows(loaded, data, eps, kw, one_max: float, one_mean: float) -> None:
    """The minimum-norm sweep against one FAB run at one eps, measured side by side."""
    from a3bench._compat import import_autoattack
    from a3bench.attacks.autoattack import PassCounter
    from a3bench.eval.sweep import MIN_NORM, sweep_eps

    t0 = time.perf_counter()
    mn = sweep_eps(loaded, data, "Linf", eps, [], min_norm=True, **kw)
    t_mn = time.perf_counter() - t0
    mn_p = mn.compute["forward_passes"] + mn.compute["backward_passes"]
    # FAB as an ordinary attack at one eps (the middle of the grid): the same single run, judged at one eps
    model = loaded.model.eval()
    x, y = data.first(kw["n_examples"]).tensors("cpu")
    counter = PassCounter(model)
    mid = eps[len(eps) // 2]
    fab = import_autoattack().fab_pt.FABAttack_PT(counter, norm="Linf", n_restarts=1, n_iter=100, eps=mid, seed=kw["seed"], device="cpu")
    t0 = time.perf_counter()
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        for s in range(0, int(correct.sum()), kw["batch_size"]):
            xc, yc = x[correct][s : s + kw["batch_size"]], y[correct][s : s + kw["batch_size"]]
            torch.random.manual_seed(kw["seed"])
            fab.perturb(xc, yc)
    t_one = time.perf_counter() - t0
    one_p = len(y) + sum(counter.reset())
    print(f"min-norm curve ({MIN_NORM}): {mn.curves[MIN_NORM]}")
    print(f"{'':24}{'fwd+bwd passes':>16}{'seconds':>10}{'÷ FAB one eps':>16}{'÷ PGD one eps':>16}")
    for name, p, s in ((f"FAB one eps ({mid:g})", one_p, t_one), (f"min-norm ({len(eps)} eps)", mn_p, t_mn)):
        print(f"{name:24}{p:>16.0f}{s:>10.1f}{p / one_p:>15.2f}×{p / one_max:>15.2f}×   (seconds: {s / t_one:.2f}× FAB one eps)")
    print(f"min-norm: {len(eps)} eps for {mn_p / one_p:.2f}× one FAB eps (target ≤ 2.5×: "
          f"{'met' if mn_p <= 2.5 * one_p else 'NOT met'}); but one FAB eps costs {one_p / one_max:.1f}× one PGD eps (max)")


if __name__ == "__main__":
    main()
