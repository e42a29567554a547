"""What a CrossMax model costs next to its plain backbone, measured side by side in one run
(ratios, not absolute times: the two sides alternate and the median ratio is reported).

    python benchmarks/crossmax_speed.py [--config configs/fmnist_crossmax.yaml] [--repeats 5] [--threads 1]

The CrossMax model is built from the config's ``model.options``; its plain backbone is the
same architecture on a plain single-resolution input (``create_model(backbone)``). Random
weights: the timings do not depend on them. Prints parameters and, per batch:
- inference (eval, no grad), deployed (fresh draws, every predictor, CrossMax) / backbone;
- the same with fixed randomness / backbone;
- the backbone alone inside the CrossMax model (multi-resolution stack + wider first layer,
  no heads) / backbone: what the input stack costs, apart from the heads;
- one attack step (forward + backward to the input) CrossMax / backbone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from a3bench.config import load_config
from a3bench.models import create_model
from a3bench.models.crossmax import fixed_randomness, single_predictor
from a3bench.models.registry import model_entry

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def _ratio(slow, fast, repeats: int, n: int) -> tuple[float, list[float]]:
    """Median over ``repeats`` of time(slow)/time(fast), the two interleaved."""
    _time(slow, 2)
    _time(fast, 2)
    runs = []
    for _ in range(repeats):
        tf = _time(fast, n)
        ts = _time(slow, n)
        runs.append(ts / tf)
    return statistics.median(runs), runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "fmnist_crossmax.yaml")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--calls", type=int, default=10, help="calls per timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    options = dict(cfg.model.options)
    backbone = options.get("backbone", "smallcnn_deep")
    entry = model_entry(backbone)
    c, s = entry.in_channels, entry.input_size
    torch.manual_seed(0)
    cm = create_model("crossmax", in_channels=c, input_size=s, options=options).eval()
    plain = create_model(backbone, in_channels=c, input_size=s).eval()
    x = torch.rand(args.batch_size, c, s, s)
    y = torch.randint(0, 10, (args.batch_size,))

    n_cm = sum(p.numel() for p in cm.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    n_pred = len(cm.backbone.predictor_names())
    print(f"config {args.config.name}: crossmax over {backbone}, {n_pred} predictors, resolutions "
          f"{cm.arch_options['resolutions']}; batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"parameters: backbone {n_plain:,}, CrossMax {n_cm:,} -> {n_cm / n_plain:.2f}x")

    rows = []
    with torch.no_grad():
        rows.append(("inference, deployed (fresh draws, all predictors) / backbone", _ratio(lambda: cm(x), lambda: plain(x), args.repeats, args.calls)))
        with fixed_randomness(cm, 0):
            rows.append(("inference, fixed randomness / backbone", _ratio(lambda: cm(x), lambda: plain(x), args.repeats, args.calls)))
        with single_predictor(cm, "backbone"):
            rows.append(("inference, its backbone alone (input stack, no heads) / backbone", _ratio(lambda: cm(x), lambda: plain(x), args.repeats, args.calls)))

    def attack_step(model):
        def run():
            xa = x.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
            return g
        return run

    rows.append(("attack step (forward + backward to x), deployed / backbone", _ratio(attack_step(cm), attack_step(plain), args.repeats, max(1, args.calls // 2))))
    for label, (median, runs) in rows:
        print(f"{label}: {median:.2f}x  (median of {len(runs)}; all {[round(r, 2) for r in runs]})")


if __name__ == "__main__":
    main()
