"""A ViT that lies through a saturated softmax, and what each attention attack makes of it.

    python benchmarks/vit_liar.py [--n 500] [--steps 100] [--eps 0.03] [--factor 100]

Builds the model of ``tests/test_attention.py``: a small ``vit_small_p4`` (width 32,
depth 2) trained on Fashion-MNIST for 300 Adam steps with its pre-softmax scale at 30
(peaked attention), then the liar: the same weights with the scale ×``--factor``. The
liar's forward pass hardly changes; its softmax saturates. Prints, per attack (each run
alone on the first ``--n`` test examples, Linf ``--eps``), the robust accuracy with its
Wilson 95 % interval and, for ``aas``, the scales its search found (``--seeds`` seeds).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.03)
    parser.add_argument("--factor", type=float, default=100.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from a3bench.attacks.attention import AAS, AttentionScale
    from a3bench.attacks.gama import GamaPGD
    from a3bench.attacks.pgd import PGD
    from a3bench.stats import wilson_interval
    from a3bench.data import load_dataset
    from a3bench.models.attention import attention_saturation, set_trained_attention_scales
    from a3bench.threat import ThreatModel
    from tests.test_attention import train_peaked_vit

    honest = train_peaked_vit(load_dataset("fmnist", "train"))
    liar = copy.deepcopy(honest)
    set_trained_attention_scales(liar, [30.0 * args.factor] * 2)

    x, y = load_dataset("fmnist", "test").first(args.n).tensors()
    threat = ThreatModel("Linf", args.eps)
    with torch.no_grad():
        agree = float((liar(x).argmax(1) == honest(x).argmax(1)).float().mean())
        clean = {m: int((model(x).argmax(1) == y).sum()) for m, model in (("honest", honest), ("liar", liar))}
    print(f"{args.n} examples, Linf {args.eps:g}, K={args.steps}; liar = honest with attention logits ×{args.factor:g}")
    print(f"clean: honest {100 * clean['honest'] / args.n:.1f} %, liar {100 * clean['liar'] / args.n:.1f} %; predictions agree on {100 * agree:.1f} %")
    for name, model in (("honest", honest), ("liar", liar)):
        st = attention_saturation(model, x)
        print(f"saturated attention rows, {name}: " + ", ".join(f"block {i + 1} {100 * f:.1f} %" for i, f in enumerate(st.fraction)))

    def robust(model, attack, seed=0) -> str:
        out = attack(model, x, y, threat, seed=seed, indices=torch.arange(len(x)))
        assert not threat.violations(out.x_adv, x).any()
        with torch.no_grad():
            k = int(((model(x).argmax(1) == y) & (model(out.x_adv).argmax(1) != y).logical_not()).sum())
        lo, hi = wilson_interval(k, len(x))
        return f"{100 * k / len(x):5.1f} % [{lo:.1f}, {hi:.1f}]"

    K = args.steps
    print(f"honest, pgd-{K}: {robust(honest, PGD(K))}")
    rows = [
        (f"pgd-{K}", PGD(K)),
        (f"gama-pgd-{K}", GamaPGD(K)),
        (f"attn-scale:s={1 / args.factor:g} (the factor undone)", AttentionScale(1 / args.factor, PGD(K))),
        ("attn-scale:s=0.01", AttentionScale(0.01, PGD(K))),
        ("attn-scale:s=auto", AttentionScale(None, PGD(K))),
        ("attn-scale:s=1e-7 (uniform attention)", AttentionScale(1e-7, PGD(K))),
    ]
    for label, attack in rows:
        print(f"liar, {label}: {robust(liar, attack)}" + (f"  scales {[round(s, 4) for s in attack.last_scales]}" if getattr(attack, "last_scales", None) else ""))
    for seed in range(args.seeds):
        aas = AAS(PGD(K))
        result = robust(liar, aas, seed)
        print(f"liar, aas (seed {seed}): {result}  scales {[round(s, 4) for s in aas.last_scales]}")


if __name__ == "__main__":
    main()
