"""What A3 costs, measured side by side in one run (ratios, not absolute times: the
machines are noisy, so the two sides alternate and the median ratio is reported).

    python benchmarks/a3_overhead.py [--arch smallcnn] [--steps 20] [--repeats 5]

Prints: parameter overhead of A3; inference latency A3 (attenuate) / backbone; and the
time of PGD-AT + A3 `joint` training steps / plain PGD-AT steps (same data, same PGD-k).
Targets: ≤ 0.5 % parameters, ≤ 1.05× latency, ≤ 1.35× training time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from a3bench.config import config_from_dict
from a3bench.models import A3Config, create_model
from a3bench.models.registry import model_entry
from a3bench.threat import ThreatModel
from a3bench.train.loop import craft_training_example
from a3bench.train.objectives import compute_loss


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="smallcnn")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20, help="training steps per timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    entry = model_entry(args.arch)
    shape = (args.batch_size, entry.in_channels, entry.input_size, entry.input_size)
    x = torch.rand(shape)
    y = torch.randint(0, 10, (args.batch_size,))

    plain = create_model(args.arch)
    with_a3 = create_model(args.arch, a3=A3Config())
    n_plain = sum(p.numel() for p in plain.parameters())
    n_a3 = sum(p.numel() for p in with_a3.parameters())
    print(f"architecture {args.arch}, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"parameters: backbone {n_plain:,}, with A3 {n_a3:,} -> overhead {100 * (n_a3 - n_plain) / n_plain:.3f} % (target <= 0.5 %)")

    # inference latency, deployed mode (attenuate), eval, no grad
    plain.eval()
    with_a3.eval()
    lat = []
    with torch.no_grad():
        for m in (plain, with_a3):
            _time(lambda m=m: m(x), 3)  # warm-up
        for _ in range(args.repeats):
            tp = _time(lambda: plain(x), 20)
            ta = _time(lambda: with_a3(x), 20)
            lat.append(ta / tp)
    print(f"inference latency A3 (attenuate) / backbone: {statistics.median(lat):.3f}x  (median of {args.repeats}; all {[round(r, 3) for r in lat]}; target <= 1.05x)")

    # training steps: PGD-AT (no A3) vs PGD-AT + A3 joint, same PGD-7 and batch
    base = {"dataset": "synthetic", "attack": {"eps": 0.1, "steps": 7}, "train": {"method": "pgd-at"}}
    cfg_plain = config_from_dict({**base, "objective": {"name": "none"}})
    cfg_joint = config_from_dict({**base, "objective": {"name": "joint"}})
    threat = ThreatModel("Linf", 0.1)
    models = {"pgdat": create_model(args.arch).train(), "joint": create_model(args.arch, a3=A3Config()).train()}
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    cfgs = {"pgdat": cfg_plain, "joint": cfg_joint}
    gen = torch.Generator().manual_seed(0)

    def step(kind: str) -> None:
        m, cfg, opt = models[kind], cfgs[kind], opts[kind]
        x_adv = craft_training_example(m, x, y, threat, cfg, gen)
        parts = compute_loss(m, x, x_adv, y, cfg)
        opt.zero_grad(set_to_none=True)
        parts.total.backward()
        opt.step()

    for kind in models:
        _time(lambda kind=kind: step(kind), 2)
    train_ratio = []
    for _ in range(args.repeats):
        tp = _time(lambda: step("pgdat"), args.steps)
        tj = _time(lambda: step("joint"), args.steps)
        train_ratio.append(tj / tp)
    print(
        f"training time PGD-AT + A3 joint / PGD-AT: {statistics.median(train_ratio):.3f}x  "
        f"(median of {args.repeats} x {args.steps} steps; all {[round(r, 3) for r in train_ratio]}; target <= 1.35x)"
    )


if __name__ == "__main__":
    main()
