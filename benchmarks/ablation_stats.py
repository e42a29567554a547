"""The A3 ablation's table and its paired tests, from the committed records (issue 19).

    python benchmarks/ablation_stats.py [--dir results/fmnist/Linf] [--models joint,attenuate-only,pgdat]

For each of the three bundled CNNs: clean accuracy, AutoAttack's number, the worst case of
``--suite full`` with its 95 % Wilson interval, and the verdict; then exact McNemar tests on
the paired per-example outcomes (robust or not, on the same test images): joint vs
attenuate-only, and each of them vs PGD-AT. Prints markdown (README.md's table).
Refuses records of different examples, eps or seeds: paired tests need the same images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

MODELS = {"joint": "smallcnn.a3_joint_fmnist", "attenuate-only": "smallcnn.a3_attenuate_only_fmnist", "pgdat": "smallcnn.pgdat_fmnist"}
LABELS = {"joint": "A3 `joint`", "attenuate-only": "A3 `attenuate-only`", "pgdat": "PGD-AT (no A3)"}
PAIRS = [("joint", "attenuate-only"), ("joint", "pgdat"), ("attenuate-only", "pgdat")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="results/fmnist/Linf")
    ap.add_argument("--models", default="joint,attenuate-only,pgdat")
    args = ap.parse_args()

    from a3bench.schema import read_outcomes, read_record
    from a3bench.stats import mcnemar_exact

    keys = args.models.split(",")
    recs, outs = {}, {}
    for k in keys:
        path = Path(args.dir) / f"{MODELS[k]}.json"
        recs[k] = read_record(path)
        outs[k] = read_outcomes(path.with_name(f"{MODELS[k]}.outcomes.json"))
    same = {(r.n_examples, r.eps, r.seed, r.norm, tuple(outs[k].indices)) for k, r in recs.items()}
    if len(same) != 1:
        raise SystemExit("error: the records were made on different examples, eps, norms or seeds: no paired test")
    n = next(iter(recs.values())).n_examples
    print(f"Fashion-MNIST, Linf {next(iter(recs.values())).eps_text}, {n:,} test images, seed {next(iter(recs.values())).seed}, `--suite full`\n")
    print("| model | clean % | AutoAttack % | worst case % [95 % CI] | verdict |")
    print("|---|---:|---:|---:|---|")
    for k in keys:
        r = recs[k]
        aa = f"{r.autoattack_acc:.2f}" if r.autoattack_acc is not None else "—"
        lo, hi = r.robust_acc_ci
        print(f"| {LABELS[k]} (`{MODELS[k]}`) | {r.clean_acc:.2f} | {aa} | {r.robust_acc:.2f} [{lo:.1f}, {hi:.1f}] | {r.verdict.value} |")
    print("\nExact McNemar tests on the paired outcomes (robust after the whole suite, same images):\n")
    print("| pair | robust only in the first | robust only in the second | difference (points) | p (two-sided) |")
    print("|---|---:|---:|---:|---:|")
    for a, b in PAIRS:
        if a not in outs or b not in outs:
            continue
        only_a = sum(x and not y for x, y in zip(outs[a].robust, outs[b].robust))
        only_b = sum(y and not x for x, y in zip(outs[a].robust, outs[b].robust))
        diff = 100.0 * (only_a - only_b) / n
        print(f"| {LABELS[a]} vs {LABELS[b]} | {only_a} | {only_b} | {diff:+.2f} | {mcnemar_exact(only_a, only_b):.3g} |")


if __name__ == "__main__":
    main()
