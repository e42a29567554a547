"""What an audit costs next to the evaluation it audits (docs/performance.md, "Audit").

Side by side in one run, interleaved, ``--repeats`` times on the same examples:
``evaluate(model, pgd-20)`` — the whole ``a3bench attack --attacks pgd-20`` evaluation
(clean pass, AutoAttack's sanity checks, the cascade, the convergence probe) — and
``audit(model, pgd-20)`` — the binarization test plus the indicators of attack failure
(the ``a3bench audit --attacks pgd-20`` computation). Reports the median ratio
audit / evaluation (target ≤ 2) and the ratio of each part of the audit alone.

    python benchmarks/audit_cost.py --model smallcnn.pgdat_fmnist --n 100 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="zoo name or SPEC (repeatable; default: the two bundled PGD-AT / A3 models)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--attack", default="pgd-20")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-inner", type=int, default=None, help="override AuditSettings.n_inner")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from a3bench.attacks.registry import build_attack
    from a3bench.data import load_dataset
    from a3bench.eval.audit import AuditSettings, audit
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    data = load_dataset("fmnist", "test").first(args.n)
    x, y = data.tensors(torch.device("cpu"))
    threat = ThreatModel("Linf", args.eps)
    settings = AuditSettings() if args.n_inner is None else AuditSettings(n_inner=args.n_inner)
    models = args.model or ["smallcnn.pgdat_fmnist", "smallcnn.a3_joint_fmnist"]
    print(f"n={args.n}, {threat.label}, attack {args.attack}, n_inner {settings.n_inner}, {args.threads} thread(s), "
          f"{args.repeats} interleaved repeats; ratios are medians")
    for spec in models:
        loaded = load_model(spec)
        times: dict[str, list[float]] = {"evaluation": [], "audit": [], "binarization": [], "indicators": []}
        robust = None
        # warm-up (first-call costs of torch and pyautoattack are not the audit's)
        audit(loaded.model, x[:4], y[:4], threat, build_attack(args.attack), settings=settings)
        for _ in range(args.repeats):
            t = time.perf_counter()
            rec = evaluate(loaded, data, threat, args.attack, n_examples=args.n, batch_size=args.n, seed=0).record
            times["evaluation"].append(time.perf_counter() - t)
            robust = rec.robust_acc
            t = time.perf_counter()
            res = audit(loaded.model, x, y, threat, build_attack(args.attack), seed=0, batch_size=args.n, settings=settings)
            times["audit"].append(time.perf_counter() - t)
            t = time.perf_counter()
            audit(loaded.model, x, y, threat, build_attack(args.attack), seed=0, batch_size=args.n, settings=settings, indicators=False)
            times["binarization"].append(time.perf_counter() - t)
            t = time.perf_counter()
            audit(loaded.model, x, y, threat, build_attack(args.attack), seed=0, batch_size=args.n, settings=settings, binarization=False)
            times["indicators"].append(time.perf_counter() - t)
        ev = statistics.median(times["evaluation"])
        ratios = {k: statistics.median(a / e for a, e in zip(v, times["evaluation"])) for k, v in times.items() if k != "evaluation"}
        runs = ", ".join(f"{a / e:.2f}" for a, e in zip(times["audit"], times["evaluation"]))
        print(f"{spec}: robust {robust:.1f} %, pass rate {res.binarization[0].pass_rate} %; evaluation {ev:.2f} s (median); "
              f"audit / evaluation {ratios['audit']:.2f}x (runs {runs}); binarization alone {ratios['binarization']:.2f}x; "
              f"indicators alone {ratios['indicators']:.2f}x")


if __name__ == "__main__":
    main()
