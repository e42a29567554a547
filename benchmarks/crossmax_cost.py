"""What ``crossmax-mean`` costs against plain PGD with the same number of steps, side by side.

    python benchmarks/crossmax_cost.py [--model smallcnn_deep.crossmax_fmnist] [--n 64] [--steps 20] [--repeat 3]

On the same model and examples, interleaved, best of ``--repeat``: PGD-K (one fresh draw
per step), ``crossmax-mean`` with one draw per step (the surrogate's own overhead: the
predictors' logits are aggregated twice, as the mean for the gradient and as CrossMax for
early stopping), and with 10 draws (the default EOT). Both attacks stop an example once it is broken, so
they may run different numbers of passes: the ratio is printed per run and per pass.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smallcnn_deep.crossmax_fmnist")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from a3bench.attacks.registry import build_attack
    from a3bench.data import load_dataset
    from a3bench.eval.judge import frozen_parameters
    from a3bench.models import load_model
    from a3bench.threat import ThreatModel

    loaded = load_model(args.model)
    model = loaded.model.eval()
    x, y = load_dataset(loaded.dataset or "fmnist", "test").first(args.n).tensors()
    threat = ThreatModel("Linf", args.eps)
    k = args.steps
    names = [f"pgd-{k}", f"crossmax-mean:steps={k}:n=1", f"crossmax-mean:steps={k}:n=10"]
    best = {n: float("inf") for n in names}
    passes = {}
    with frozen_parameters(model):
        for _ in range(args.repeat):
            for name in names:
                (attack,) = build_attack(name)
                torch.manual_seed(0)
                t0 = time.perf_counter()
                out = attack(model, x, y, threat, seed=0, indices=torch.arange(len(x)))
                best[name] = min(best[name], time.perf_counter() - t0)
                passes[name] = out.forward_passes + out.backward_passes
    base = names[0]
    print(f"{loaded.name}, {len(x)} examples, Linf {args.eps:g}, {k} steps, best of {args.repeat}, {args.threads} thread(s)")
    for name in names:
        per_pass = (best[name] / passes[name]) / (best[base] / passes[base])
        print(f"  {name:32s} {best[name]:7.2f} s  {passes[name]:8d} passes  ×{best[name] / best[base]:.2f} per run, ×{per_pass:.2f} per pass")


if __name__ == "__main__":
    main()
