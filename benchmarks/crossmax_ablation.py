"""Zhang et al.'s ablation of the CrossMax defense (arXiv 2411.14834 v2, CIFAR-100, PGD-20:
as-is 61.6 %, randomness fixed 32.5 %, fixed + mean instead of CrossMax 1.2 %), reproduced on
the bundled Fashion-MNIST CrossMax model: which part of the defense masks the gradient?

    python benchmarks/crossmax_ablation.py [--model smallcnn_deep.crossmax_fmnist] [--n 500]
                                           [--attacks pgd-20,pgd-100] [--out benchmarks/crossmax/ablation.json]

Each row attacks and judges the *same* variant of the model, on the same examples, with
each attack of ``--attacks`` run on its own (not as a cascade, and exactly that attack:
no EOT or autoattack-rand is added for the randomised as-is model):

  as-is            the deployed model: fresh input randomness at every pass (judged by the
                   majority of 10 fresh draws)
  fixed            the input randomness frozen (one fixed draw): a deterministic model
  fixed + mean     frozen, and the mean of the predictors' logits instead of CrossMax
  backbone alone   frozen, the backbone's own classifier without the heads (the undefended network)

Prints a markdown table (robust accuracy % [95 % CI]) and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smallcnn_deep.crossmax_fmnist")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--attacks", default="pgd-20,pgd-100")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/crossmax/ablation.json")
    args = ap.parse_args()

    from a3bench.data import load_dataset
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.models.crossmax import aggregation, fixed_randomness, single_predictor
    from a3bench.threat import ThreatModel

    loaded = load_model(args.model)
    model, data = loaded.model, load_dataset(loaded.dataset or "fmnist", "test")
    threat = ThreatModel("Linf", args.eps)
    rows = {
        "as-is": lambda: contextlib.nullcontext(),
        "fixed randomness": lambda: fixed_randomness(model, 0),
        "fixed randomness + mean instead of CrossMax": lambda: _both(fixed_randomness(model, 0), aggregation(model, "mean")),
        "backbone alone (fixed randomness)": lambda: _both(fixed_randomness(model, 0), single_predictor(model, "backbone")),
    }
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    table: dict[str, dict] = {}
    for label, variant in rows.items():
        table[label] = {}
        for attack in attacks:
            with variant():
                rec = evaluate(loaded, data, threat, attack, n_examples=args.n, batch_size=args.batch_size, seed=args.seed,
                               probe=False, adapt_plan=False).record
            cell = {"clean": rec.clean_acc, "robust": rec.robust_acc, "ci": rec.robust_acc_ci,
                    "attacks": [a.name for a in rec.per_attack], "flags": [f.name for f in rec.flags]}
            table[label][attack] = cell
            print(f"{label:45s} {attack:10s} clean {rec.clean_acc:6.2f}  robust {rec.robust_acc:6.2f} "
                  f"[{rec.robust_acc_ci[0]:.1f}, {rec.robust_acc_ci[1]:.1f}]  ran {cell['attacks']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "n_examples": args.n, "eps": args.eps, "seed": args.seed,
                               "torch": torch.__version__, "rows": table}, indent=2) + "\n")
    print()
    print("| setting | clean % | " + " | ".join(f"{a} %" for a in attacks) + " |")
    print("|---|---:|" + "---:|" * len(attacks))
    for label, cells in table.items():
        clean = next(iter(cells.values()))["clean"]
        print(f"| {label} | {clean:.1f} | " + " | ".join(f"{c['robust']:.1f} [{c['ci'][0]:.1f}, {c['ci'][1]:.1f}]" for c in cells.values()) + " |")


@contextlib.contextmanager
def _both(a, b):
    with a, b:
        yield


if __name__ == "__main__":
    main()
