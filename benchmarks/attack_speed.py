"""Attack speed, measured side by side in one run on the same model and examples.

    python benchmarks/attack_speed.py [--model smallcnn.pgdat_fmnist] [--n 1000] [--aa-n 64]

Prints three ratios (targets from issue 3):
  1. a3bench PGD-20 throughput / raw forward+backward throughput of the same model and
     batch (input gradients only, parameters frozen — what any attack must pay): ≥ 0.90
  2. torchattacks PGD-20 time / a3bench PGD-20 time (a3bench attacks only what is still
     robust and stops early on broken examples): ≥ 1.3
  3. a3bench ``autoattack`` time / pyautoattack ``AutoAttack`` run directly: ≤ 1.05
  4. ``--suite full`` time / ``--suite standard`` time on the same model and examples
     (issue 4; the adaptive attacks run only on what AutoAttack left robust): ≤ 1.5.
     On the bundled A3 model by default (``--suite-model``; the A3 attacks are skipped on
     a model without A3), ``--suite-n`` examples (0 skips it).
Each timing is the best of ``--repeat`` runs (the machine is shared), interleaved.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smallcnn.pgdat_fmnist")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--eps", default=None, help="default: the model's training eps")
    parser.add_argument("--n", type=int, default=1000, help="examples for the PGD comparisons")
    parser.add_argument("--aa-n", type=int, default=64, help="examples for the AutoAttack comparison (0 skips it)")
    parser.add_argument("--suite-n", type=int, default=64, help="examples for the full/standard suite comparison (0 skips it)")
    parser.add_argument("--suite-model", default="smallcnn.a3_joint_fmnist")
    parser.add_argument("--suites-only", action="store_true", help="run only comparison 4")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from a3bench.threat import default_eps
    from a3bench.data import canonical_name, load_dataset
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel, parse_eps

    dev = torch.device(args.device)
    loaded = load_model(args.model, dataset=args.dataset, device=dev)
    model = loaded.model.eval()
    ds_name = canonical_name(args.dataset or loaded.dataset)
    eps = parse_eps(args.eps) if args.eps else default_eps(ds_name, "Linf", loaded.meta)
    threat = ThreatModel("Linf", eps)
    data = load_dataset(ds_name, "test").first(args.n)
    x, y = data.tensors(dev)
    bs = args.batch_size
    print(f"model {loaded.name} on {ds_name}, Linf eps {eps:g}, n={len(data)}, batch {bs}, "
          f"{args.threads} thread(s), device {dev}, torch {torch.__version__}")

    if not args.suites_only:
        compare_pgd_and_autoattack(args, loaded, model, data, x, y, threat, eps, bs, dev)
    compare_suites(args, bs, dev)


def compare_pgd_and_autoattack(args, loaded, model, data, x, y, threat, eps, bs, dev) -> None:
    from a3bench.attacks.pgd import PGD, default_step_size
    from a3bench.eval.judge import frozen_parameters
    from a3bench.eval.runner import evaluate

    # 1. raw forward+backward throughput vs a3bench PGD-20 throughput -------------------
    def raw_passes() -> None:
        with frozen_parameters(model):
            for s in range(0, len(x), bs):
                xb = x[s : s + bs].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(model(xb), y[s : s + bs], reduction="sum"), xb)
                xb = xb.detach() + 1e-3 * g.sign()

    steps = 20
    raw_reps = 5
    raw_tp = pgd_tp = 0.0

    pgd = PGD(steps, step_size=default_step_size(threat, steps))
    counted = {}

    def a3_attack_only() -> None:
        with frozen_parameters(model):
            bwd = 0
            for s in range(0, len(x), bs):
                out = pgd(model, x[s : s + bs], y[s : s + bs], threat, seed=0, indices=torch.arange(s, min(s + bs, len(x))))
                bwd += out.backward_passes
            counted["bwd"] = bwd

    for _ in range(args.repeat):  # interleaved: both see the same background load
        raw_tp = max(raw_tp, raw_reps * len(x) / best_of(1, lambda: [raw_passes() for _ in range(raw_reps)]))
        t_pgd = best_of(1, a3_attack_only)
        pgd_tp = max(pgd_tp, counted["bwd"] / t_pgd)
    print(f"\n[1] raw forward+backward: {raw_tp:,.0f} ex/s   a3bench PGD-20 loop: {pgd_tp:,.0f} fwd+bwd ex/s "
          f"(on all {len(x)} examples, early stop)   ratio {pgd_tp / raw_tp:.3f}  (target ≥ 0.90)")

    # 2. torchattacks PGD-20 vs a3bench PGD-20 (full evaluate: clean pass, cascade, re-checks)
    import torchattacks

    alpha = default_step_size(threat, steps)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    ta_acc = {}

    def run_ta() -> None:
        torch.manual_seed(0)
        correct = 0
        for s in range(0, len(x), bs):
            xa = ta(x[s : s + bs], y[s : s + bs])
            with torch.no_grad():
                correct += int((model(xa).argmax(1) == y[s : s + bs]).sum())
        ta_acc["acc"] = 100.0 * correct / len(x)

    a3_res = {}

    def run_a3() -> None:
        a3_res["r"] = evaluate(loaded, data, threat, "pgd-20", batch_size=bs, device=dev, seed=0)

    t_ta, t_a3 = float("inf"), float("inf")
    for _ in range(args.repeat):  # interleaved: both see the same background load
        t_ta = min(t_ta, best_of(1, run_ta))
        t_a3 = min(t_a3, best_of(1, run_a3))
    rec = a3_res["r"].record
    print(f"[2] torchattacks PGD-20: {t_ta:.2f} s (robust {ta_acc['acc']:.2f} %)   a3bench attack pgd-20: {t_a3:.2f} s "
          f"(clean {rec.clean_acc:.2f} %, robust {rec.robust_acc:.2f} %)   a3bench {t_ta / t_a3:.2f}x faster  (target ≥ 1.3)")

    # 3. a3bench autoattack vs pyautoattack directly ----------------------------------------
    if args.aa_n:
        from a3bench._compat import import_autoattack

        aa_data = data.first(args.aa_n)
        xa, ya = aa_data.tensors(dev)
        t0 = time.perf_counter()
        res = evaluate(loaded, aa_data, threat, "autoattack", batch_size=bs, device=dev, seed=0)
        t_a3_aa = time.perf_counter() - t0
        adversary = import_autoattack().AutoAttack(model, norm="Linf", eps=eps, seed=0, version="standard", device=dev)
        t0 = time.perf_counter()
        x_adv, _ = adversary.run_standard_evaluation(xa, ya, batch_size=bs)
        t_direct = time.perf_counter() - t0
        with torch.no_grad():
            direct_robust = (model(x_adv).argmax(1) == ya).tolist()
        same = direct_robust == res.outcomes.robust
        print(f"[3] a3bench autoattack: {t_a3_aa:.1f} s (robust {res.record.robust_acc:.2f} %)   pyautoattack direct: "
              f"{t_direct:.1f} s   ratio {t_a3_aa / t_direct:.3f}  (target ≤ 1.05)   same per-example outcome: {same}")



def compare_suites(args, bs, dev) -> None:
    from a3bench.threat import default_eps
    from a3bench.data import canonical_name, load_dataset
    from a3bench.eval.runner import evaluate
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel, parse_eps

    # 4. --suite full vs --suite standard ----------------------------------------------------
    if args.suite_n:
        s_loaded = load_model(args.suite_model, dataset=args.dataset, device=dev)
        s_ds = canonical_name(args.dataset or s_loaded.dataset)
        s_threat = ThreatModel("Linf", parse_eps(args.eps) if args.eps else default_eps(s_ds, "Linf", s_loaded.meta))
        s_data = load_dataset(s_ds, "test").first(args.suite_n)
        timed = {}
        for suite in ("standard", "full"):
            t0 = time.perf_counter()
            timed[suite] = (evaluate(s_loaded, s_data, s_threat, suite=suite, batch_size=bs, device=dev, seed=0).record,
                            time.perf_counter() - t0)
        (std, t_std), (full, t_full) = timed["standard"], timed["full"]
        print(f"[4] {s_loaded.name}, n={len(s_data)}: --suite standard {t_std:.1f} s (robust {std.robust_acc:.2f} %)   "
              f"--suite full {t_full:.1f} s (robust {full.robust_acc:.2f} %, AutoAttack part {full.autoattack_acc:.2f} %)   "
              f"ratio {t_full / t_std:.2f}  (target ≤ 1.5)")


if __name__ == "__main__":
    main()
