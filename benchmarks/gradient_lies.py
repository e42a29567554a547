"""What detecting and getting past lying gradients costs, side by side in one run (issue 10).

    python benchmarks/gradient_lies.py [--model smallcnn.pgdat_fmnist] [--n 200] [--bb-n 16]

Prints, on the same model and examples:
  1. the gradient-consistency check (``a3bench.eval.gradcheck``) against PGD-20: seconds
     and passes, as a fraction (target ≤ 10 %); interleaved, best of ``--repeat``. The
     check is told the model is deterministic, as the runner tells it (its sanity checks
     have already run AutoAttack's randomness test);
  2. SPSA (``spsa-K``, the paper's settings) against Square (pyautoattack, 5000 queries):
     seconds per example, forward passes (queries) per example, seconds per query, and
     what each broke, on ``--bb-n`` examples;
  3. the distillation behind ``transfer:distill``: seconds, steps, passes, agreement.
The figures go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smallcnn.pgdat_fmnist")
    parser.add_argument("--eps", default="0.1")
    parser.add_argument("--n", type=int, default=200, help="examples for the check vs PGD-20")
    parser.add_argument("--bb-n", type=int, default=16, help="examples for SPSA vs Square (0 skips it)")
    parser.add_argument("--spsa", default="spsa-100")
    parser.add_argument("--distill-steps", type=int, default=1000, help="0 skips the distillation")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from a3bench.data import load_dataset
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel, parse_eps

    loaded = load_model(args.model)
    model = loaded.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    threat = ThreatModel("Linf", parse_eps(args.eps))
    test = load_dataset(loaded.dataset, "test")
    x, y = test.first(args.n).tensors()
    print(f"model {loaded.name}, {threat.label}, {args.threads} thread(s), torch {torch.__version__}")
    check_vs_pgd(model, x, y, threat, args.repeat)
    if args.bb_n:
        spsa_vs_square(model, x[: args.bb_n], y[: args.bb_n], threat, args.spsa)
    if args.distill_steps:
        distillation(model, loaded.dataset, threat, args.distill_steps)


def check_vs_pgd(model, x, y, threat, repeat: int) -> None:
    from a3bench.attacks.pgd import PGD
    from a3bench.eval.gradcheck import check_gradients

    idx = torch.arange(len(x))
    t_check, t_pgd = [], []
    for _ in range(repeat):  # interleaved: the machine is shared
        t0 = time.perf_counter()
        check = check_gradients(model, x, y, threat, seed=0, indices=idx, randomized=False)  # the runner knows it
        t_check.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pgd = PGD(20)(model, x, y, threat, seed=0, indices=idx)
        t_pgd.append(time.perf_counter() - t0)
    cost = lambda f, b: f + b  # noqa: E731 — with input gradients only, a backward costs about a forward here
    c, p = min(t_check), min(t_pgd)
    steps = pgd.backward_passes / len(x)
    print(f"\n[1] consistency check vs PGD-20, {len(x)} examples (best of {repeat})")
    print(f"    check : {c:7.3f} s  {check.forward_passes:7d} fwd {check.backward_passes:6d} bwd  "
          f"inconsistent {check.n_inconsistent}/{check.n_checked}")
    print(f"    PGD-20: {p:7.3f} s  {pgd.forward_passes:7d} fwd {pgd.backward_passes:6d} bwd  "
          f"(early stop: {pgd.backward_passes / len(x):.1f} steps per example)")
    print(f"    ratio : {c / p:.3f} in seconds, "
          f"{cost(check.forward_passes, check.backward_passes) / cost(pgd.forward_passes, pgd.backward_passes):.3f} in passes "
          "(target ≤ 0.10)")
    print(f"    against PGD-20 running all 20 steps (seconds scaled by 20/{steps:.1f}): {c / (p * 20 / steps):.3f}; "
          f"the check costs {c / (p / steps):.2f} PGD steps")


def spsa_vs_square(model, x, y, threat, spsa_name: str) -> None:
    from a3bench.attacks.autoattack import AutoAttackComponent
    from a3bench.attacks.registry import build_attack

    n = len(x)
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct], y[correct]
    idx = torch.arange(len(x))
    spsa = build_attack(spsa_name)[0]
    square = AutoAttackComponent("square")
    rows = []
    for attack in (spsa, square):
        t0 = time.perf_counter()
        out = attack(model, x, y, threat, seed=0, indices=idx)
        sec = time.perf_counter() - t0
        with torch.no_grad():
            broken = int((model(out.x_adv).argmax(1) != y).sum())
        rows.append((attack.name, sec, out.forward_passes, broken))
    print(f"\n[2] {spsa.name} vs Square (5000 queries), {len(x)} correctly classified of the first {n} examples")
    for name, sec, fwd, broken in rows:
        print(f"    {name:8s}: {sec / len(x):7.2f} s/example  {fwd / len(x):8.0f} queries/example  "
              f"{1e3 * sec / max(fwd, 1):6.3f} ms/query  broke {broken}")
    (_, s_sec, s_fwd, _), (_, q_sec, q_fwd, _) = rows
    print(f"    SPSA / Square: {s_sec / q_sec:.2f}× per example, {(s_sec / max(s_fwd, 1)) / (q_sec / max(q_fwd, 1)):.2f}× per query")


def distillation(model, dataset: str, threat, steps: int) -> None:
    from a3bench.attacks.distill import distill
    from a3bench.data import load_dataset

    train = load_dataset(dataset, "train")
    _, budget = distill(model, train, threat, train_steps=steps, seed=0)
    b = budget
    print(f"\n[3] distillation for transfer:distill ({b.arch}, batch {b.batch}, {b.labels} labels)")
    print(f"    {b.steps}/{b.max_steps} steps in {b.seconds:.1f} s (stopped by {b.stopped_by}); "
          f"target forward passes {b.target_forward_passes:,}, surrogate {b.surrogate_forward_passes:,} fwd "
          f"+ {b.surrogate_backward_passes:,} bwd; agreement with the target {100 * b.agreement:.1f} %")


if __name__ == "__main__":
    main()
