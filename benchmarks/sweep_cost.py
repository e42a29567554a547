"""What the eps cascade saves, measured in one run on the same model and examples.

    python benchmarks/sweep_cost.py [--model smallcnn.pgdat_fmnist] [--eps 0.05:0.4:8]
                                    [--attack pgd-20] [-n 500] [--threads 1]

Three ways to get robust accuracy at 8 eps values:
- cascade: ``sweep-eps`` (each eps attacks only what survived the previous one);
- one eps: a single ``a3bench attack`` run at one eps = a clean pass + the attack on every
  clean-correct example. Reported for the most expensive eps of the grid ("max") and on
  average over the grid ("mean");
- naive: 8 such runs, one per eps (= ``sweep-eps --no-cascade`` plus 7 more clean passes).

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


if __name__ == "__main__":
    main()
