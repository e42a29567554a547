"""The A3 ablation's table and its paired tests, from the committed records (issue 19).

    python benchmarks/ablation_stats.py [--dir results/fmnist/Linf] [--models joint,attenuate-only,pgdat]

For each of the three bundled CNNs: clean accuracy, AutoAttack's number, the worst case of
``--suite full`` with its 95 % Wilson interval, and the verdict; then exact McNemar tests on
the paired per-example outcomes (robust or not, on the same test images): joint vs
attenuate-only, and each of them vs PGD-AT. Prints markdown (README.md's table).
Refuses records of different examples, eps or seeds: paired tests need the same images.

    python benchmarks/ablation_stats.py --interim [--state-dir benchmarks/ablation]

While the whole-test-set runs are still going: from their resume states, each model's
robust accuracy after every attack it has finished, and the paired tests of each pair after
the first attacks of the cascade that both have finished (e.g. APGD-CE and APGD-T). Each
number is an upper bound on that model's final worst case (later attacks only break more).
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
    ap.add_argument("--interim", action="store_true", help="from the resume states of runs in progress")
    ap.add_argument("--state-dir", default="benchmarks/ablation")
    args = ap.parse_args()
    if args.interim:
        interim(args.state_dir, args.models.split(","))
        return

    from a3bench.schema import read_outcomes, read_record
    from a3bench.stats import discordant, mcnemar_exact

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
        only_a, only_b = discordant(outs[a].robust, outs[b].robust)
        diff = 100.0 * (only_a - only_b) / n
        print(f"| {LABELS[a]} vs {LABELS[b]} | {only_a} | {only_b} | {diff:+.2f} | {mcnemar_exact(only_a, only_b):.3g} |")


def _common_prefix(lists: list[list[str]]) -> list[str]:
    prefix = []
    for names in zip(*lists):
        if len(set(names)) != 1:
            break
        prefix.append(names[0])
    return prefix


def interim(state_dir: str, keys: list[str]) -> None:
    from a3bench.data import load_dataset
    from a3bench.schema.state import read_state
    from a3bench.stats import discordant, mcnemar_exact, wilson_interval

    states = {}
    for k in keys:
        path = Path(state_dir) / f"{MODELS[k]}.state.json"
        if path.is_file():
            states[k] = read_state(path)
    if not states:
        raise SystemExit(f"error: no resume state in {state_dir}")
    ident = {(s.identity["n_examples"], s.identity["eps"], s.identity["seed"], s.identity["positions"]) for s in states.values()}
    if len(ident) != 1:
        raise SystemExit("error: the runs are on different examples, eps or seeds: no paired test")
    n, eps, seed, _ = next(iter(ident))
    y = load_dataset("fmnist", "test").first(n).tensors()[1].tolist()
    done = {k: [a.name for a in s.finished] for k, s in states.items()}

    def robust_after(k: str, prefix: list[str]) -> list[bool]:
        s = states[k]
        return [p == t and (b is None or b not in prefix) for p, t, b in zip(s.clean_pred, y, s.broken_by)]

    print(f"Fashion-MNIST, Linf {eps:g}, {n:,} test images, seed {seed}, `--suite full` in progress. Robust % after each "
          f"finished attack of the cascade, in order (each an upper bound on the final worst case: later attacks only break more)\n")
    print("| model | clean % | robust after each finished attack % | last [95 % CI] |")
    print("|---|---:|---|---:|")
    for k in states:
        steps = [f"{a} {100.0 * sum(robust_after(k, done[k][: i + 1])) / n:.2f}" for i, a in enumerate(done[k])]
        last = sum(robust_after(k, done[k]))
        lo, hi = wilson_interval(last, n)
        print(f"| {LABELS[k]} (`{MODELS[k]}`) | {100.0 * sum(robust_after(k, [])) / n:.2f} | {' → '.join(steps) or 'none finished yet'} | "
              + (f"{100.0 * last / n:.2f} [{lo:.1f}, {hi:.1f}] |" if steps else "— |"))
    print("\nExact McNemar tests on the paired outcomes (same images), each pair after the attacks both have finished:\n")
    print("| pair | after | robust % (first, second) | robust only in the first | robust only in the second | difference (points) | p (two-sided) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for a, b in PAIRS:
        if a not in states or b not in states:
            continue
        prefix = _common_prefix([done[a], done[b]])
        if not prefix:
            print(f"| {LABELS[a]} vs {LABELS[b]} | no common attack finished yet | | | | | |")
            continue
        ra, rb = robust_after(a, prefix), robust_after(b, prefix)
        only_a, only_b = discordant(ra, rb)
        print(f"| {LABELS[a]} vs {LABELS[b]} | {', '.join(prefix)} | {100.0 * sum(ra) / n:.2f}, {100.0 * sum(rb) / n:.2f} | "
              f"{only_a} | {only_b} | {100.0 * (only_a - only_b) / n:+.2f} | {mcnemar_exact(only_a, only_b):.3g} |")

if __name__ == "__main__":
    main()
