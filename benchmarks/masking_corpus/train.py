"""Train the masking corpus's own networks; the weights land in ``weights/`` (committed).

    python benchmarks/masking_corpus/train.py                 # all of them (~25 CPU-minutes)
    python benchmarks/masking_corpus/train.py standard distillation

Fashion-MNIST training split, seed 0 for each network, Adam (lr 1e-3, batch 128) unless
said otherwise. Each network writes ``weights/<name>.pt`` (state dict) and
``weights/<name>.json`` (its recipe, clean accuracy on the first 1000 test images,
seconds). Order matters only in that ``standard`` comes first (nothing depends on it, but
the front ends on it are then ready to inspect).

- ``standard``: 2 epochs of cross-entropy.
- ``tv_minimise``: 1 epoch on TV-minimised images (fresh pixel dropout each batch), as
  Guo et al. trained on transformed images.
- ``distillation``: a teacher, 1 epoch at softmax temperature T = 100; then the student,
  1 epoch at T = 100 on the teacher's soft labels (Papernot et al. 2016). Deployed at T = 1.
- ``gradient_regularisation``: 1 epoch of CE + λ·‖∇ₓCE‖² (double backpropagation, Ross &
  Doshi-Velez 2018), λ = 3 (per example, summed squares of the gradient of the mean CE × batch size).
- ``noise_denoise``: the denoiser, 1 epoch of MSE between denoise(x + σε) and x; then the
  classifier, 1 epoch on denoise(x + σε) with the denoiser frozen.
- ``pgdat_mlp``: a 3-layer MLP, 2 epochs of PGD-AT (PGD-7, Linf 0.1, step 2.5·eps/7, random start).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from defenses import MLP, NoiseDenoise, TVMinimise  # noqa: E402

BATCH = 128
LR = 1e-3
EPS = 0.1
GRAD_REG_LAMBDA = 3.0


def _data():
    from a3bench.data import load_dataset

    x, y = load_dataset("fmnist", "train").tensors()
    xt, yt = load_dataset("fmnist", "test").first(1000).tensors()
    return x, y, xt, yt


def _batches(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    for s in range(0, n, BATCH):
        yield perm[s : s + BATCH]


def _accuracy(model: nn.Module, xt: torch.Tensor, yt: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xt[s : s + 500]).argmax(1) for s in range(0, len(xt), 500)])
    return round(100 * (pred == yt).float().mean().item(), 2)


def _fit(model: nn.Module, x, y, epochs: int, loss_fn: Callable, *, seed: int = 0, params=None, log: str = "") -> None:
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=LR)
    for epoch in range(epochs):
        model.train()
        total, seen = 0.0, 0
        for idx in _batches(len(x), seed * 1000 + epoch):
            loss = loss_fn(model, x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        print(f"  {log} epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}", flush=True)


def _ce(model, xb, yb):
    return F.cross_entropy(model(xb), yb)


def train_standard(x, y):
    model = models.smallcnn()
    _fit(model, x, y, 2, _ce, log="standard")
    return {"standard": model.state_dict()}, model, {"epochs": 2, "loss": "cross-entropy"}


def train_tv_minimise(x, y):
    model = models.smallcnn()
    tv = TVMinimise()
    _fit(model, x, y, 1, lambda m, xb, yb: F.cross_entropy(m(tv(xb)), yb), log="tv_minimise")
    return {"tv_minimise": model.state_dict()}, nn.Sequential(tv, model), {"epochs": 1, "inputs": "TVMinimise() (keep 0.5, λ 0.03, 30 steps)"}


def train_distillation(x, y):
    t = models.DISTILL_T
    teacher = models.smallcnn()
    _fit(teacher, x, y, 1, lambda m, xb, yb: F.cross_entropy(m(xb) / t, yb), log="teacher")
    teacher.eval()

    def soft(m, xb, yb):
        with torch.no_grad():
            target = F.softmax(teacher(xb) / t, dim=1)
        return -(target * F.log_softmax(m(xb) / t, dim=1)).sum(1).mean()

    student = models.smallcnn()
    _fit(student, x, y, 1, soft, seed=1, log="student")
    return {"distillation": student.state_dict()}, student, {"epochs": "1 teacher + 1 student", "temperature": t}


def train_gradient_regularisation(x, y):
    def loss_fn(m, xb, yb):
        xg = xb.clone().requires_grad_(True)
        ce = F.cross_entropy(m(xg), yb)
        (g,) = torch.autograd.grad(ce * len(xb), xg, create_graph=True)  # per-example gradients
        return ce + GRAD_REG_LAMBDA * g.pow(2).flatten(1).sum(1).mean()

    model = models.smallcnn()
    _fit(model, x, y, 1, loss_fn, log="gradient_regularisation")
    return {"gradient_regularisation": model.state_dict()}, model, {"epochs": 1, "lambda": GRAD_REG_LAMBDA,
                                                                     "loss": "CE + λ·mean ‖∇ₓ CE_i‖²"}


def train_noise_denoise(x, y):
    front = NoiseDenoise(models.NOISE_SIGMA)
    _fit(front, x, y, 1, lambda m, xb, yb: F.mse_loss(m(xb), xb), log="denoiser")
    front.eval()
    for p in front.parameters():
        p.requires_grad_(False)
    clf = models.smallcnn()
    _fit(clf, x, y, 1, lambda m, xb, yb: F.cross_entropy(m(front(xb)), yb), seed=1, params=clf.parameters(), log="classifier")
    states = {"noise_denoise.denoiser": front.denoiser.state_dict(), "noise_denoise": clf.state_dict()}
    return states, nn.Sequential(front, clf), {"epochs": "1 denoiser (MSE) + 1 classifier", "sigma": models.NOISE_SIGMA}


def pgd_linf(model, xb, yb, eps, steps, step):
    delta = (torch.rand_like(xb) * 2 - 1) * eps
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(torch.clamp(xb + delta, 0, 1)), yb)
        (g,) = torch.autograd.grad(loss, delta)
        delta = torch.clamp(delta.detach() + step * g.sign(), -eps, eps)
    return torch.clamp(xb + delta, 0, 1).detach()


def train_pgdat_mlp(x, y):
    model = MLP()

    def loss_fn(m, xb, yb):
        m.eval()
        xa = pgd_linf(m, xb, yb, EPS, 7, 2.5 * EPS / 7)
        m.train()
        return F.cross_entropy(m(xa), yb)

    _fit(model, x, y, 2, loss_fn, log="pgdat_mlp")
    return {"pgdat_mlp": model.state_dict()}, model, {"epochs": 2, "method": "PGD-AT, PGD-7, Linf 0.1, step 2.5·eps/7"}


TRAINERS = {
    "standard": train_standard,
    "tv_minimise": train_tv_minimise,
    "distillation": train_distillation,
    "gradient_regularisation": train_gradient_regularisation,
    "noise_denoise": train_noise_denoise,
    "pgdat_mlp": train_pgdat_mlp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"networks to train (default: all): {', '.join(TRAINERS)}")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in TRAINERS]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)} (valid: {', '.join(TRAINERS)})")
    x, y, xt, yt = _data()
    models.WEIGHTS.mkdir(exist_ok=True)
    for name in args.names or list(TRAINERS):
        torch.manual_seed(0)
        start = time.time()
        states, deployed, recipe = TRAINERS[name](x, y)
        for key, state in states.items():
            torch.save(state, models.WEIGHTS / f"{key}.pt")
        torch.manual_seed(0)
        acc = _accuracy(deployed, xt, yt)
        info = {"name": name, "recipe": recipe, "seed": 0, "optimizer": f"Adam lr {LR}, batch {BATCH}",
                "clean_acc_first_1000_test": acc, "seconds": round(time.time() - start, 1),
                "command": f"python benchmarks/masking_corpus/train.py {name}"}
        (models.WEIGHTS / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"{name}: clean {acc} % on the first 1000 test images, {info['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
