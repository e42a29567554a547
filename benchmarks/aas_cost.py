"""What attention scaling costs: ``aas`` beside its base attack, in one run, on the same examples.

    python benchmarks/aas_cost.py [--model vit_small_p4.trades_fmnist] [--n 500] [--repeat 3]

Per base attack (``pgd-100``, ``gama-pgd-100``) it times, interleaved, best of
``--repeat``:

  base        the base attack alone (``pgd-100``)
  aas         ``aas:base=pgd-100``: the scale search, then the base crafted on the rescaled
              model and judged on the original (one more forward per step)
  search      the AAS scale search alone, as ``aas`` runs it (once per batch)

and prints search / base (target < 10 %) and aas / base. Batches of ``--batch-size``
(as ``a3bench attack`` forms them); every timing covers all ``--n`` examples. The
model is a zoo name or checkpoint; without one present, an untrained ``vit_small_p4``.
"""

from __future__ import annotations

import argparse
import time

import torch


def best_of(repeat: int, fns: dict) -> dict:
    """Interleaved: each round runs every function once; the best time per function."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_small_p4.trades_fmnist")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--bases", default="pgd-100,gama-pgd-100")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from a3bench.attacks.registry import build_attack
    from a3bench.attacks.scale_search import search_scales
    from a3bench.data import load_dataset
    from a3bench.models import create_model, load_model
    from a3bench.models.attention import attention_layers, attention_scales
    from a3bench.models.zoo import zoo_path
    from a3bench.threat import ThreatModel

    if zoo_path(args.model) is not None or args.model.endswith(".pt"):
        model, label = load_model(args.model).model, args.model
    else:
        torch.manual_seed(0)
        model, label = create_model("vit_small_p4", in_channels=1, input_size=28, options={"dim": 64, "depth": 4, "heads": 4, "mlp_dim": 128}), "untrained vit_small_p4"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = load_dataset("fmnist", "test").first(args.n).tensors()
    threat = ThreatModel("Linf", args.eps)
    batches = [(x[i : i + args.batch_size], y[i : i + args.batch_size], torch.arange(i, min(i + args.batch_size, len(x)))) for i in range(0, len(x), args.batch_size)]
    print(f"{label}: {args.n} Fashion-MNIST test examples, Linf {args.eps:g}, batch {args.batch_size}, {args.threads} thread(s), best of {args.repeat}")

    def run(attack):
        def go():
            for xb, yb, ib in batches:
                attack(model, xb, yb, threat, seed=0, indices=ib)

        return go

    for base in args.bases.split(","):
        base_attack = build_attack(base)[0]
        aas = build_attack(f"aas:base={base}")[0]

        def search():
            for xb, _yb, ib in batches:
                search_scales(model, xb, attention_layers(model), lambda s: attention_scales(model, s), aas.search, int(ib[0]))

        t = best_of(args.repeat, {"base": run(base_attack), "aas": run(aas), "search": search})
        print(
            f"{base:>14}: base {t['base']:7.1f} s | aas {t['aas']:7.1f} s ({t['aas'] / t['base']:.2f}×) | "
            f"search {t['search']:6.2f} s = {100 * t['search'] / t['base']:.1f} % of the base"
        )


if __name__ == "__main__":
    main()
