"""The one scale search behind ``a3-scale``, ``aas`` and AAS-AT (Jain & Dutta, CVPR 2024, Algorithm 1).

A model has per-layer scales S (attention: the pre-softmax logit scale of each block;
A3: a multiplier of each layer's strength λ). The search looks for the S ∈ [1e-7, 1]^L
whose features differ most from the model's own, by the normalised feature distance

    D(S) = Σ_i ‖f_i(S)(x) − f_i(x)‖² / (‖f_i(S)(x)‖ · ‖f_i(x)‖)     (mean over the batch)

where f_i are the outputs of the ``layers`` (after every attention block; after every A3
layer) and f_i(x) the model as it is. ``steps`` ascent steps ``S ← clamp(S + lr·∇_S D)``
from a random start. The paper calls D "LPIPS"; its own definition, above, needs no
pretrained network.

Two settings of one routine:

- :data:`AAS_SEARCH` (the paper): start S = clamp(1 + δ), δ ~ N(0, 1) per layer, plain
  gradient steps (lr 1), on at most 64 examples of the batch;
- :data:`A3_SCALE_SEARCH` (``a3-scale``): start S ~ U[1e-7, 1], signed steps of 0.1.

When D has no usable gradient with respect to S (a layer whose gradient is masked, a
non-finite or all-zero gradient), the remaining steps become seeded random draws from the
start distribution, keeping the farthest. Deterministic for a seed.

>>> layers = attention_layers(model)
>>> found = search_scales(model, x, layers, lambda s: attention_scales(model, s), AAS_SEARCH, seed=0)
>>> found.scales          # L values in [1e-7, 1]
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

Rescaled = Callable[[torch.Tensor], AbstractContextManager]

STARTS = ("normal", "uniform")
UPDATES = ("gradient", "sign")


@dataclass(frozen=True)
class ScaleSearch:
    """How to search.

    Args:
        steps: ascent steps (10 in the paper).
        start: ``normal`` — S = clamp(1 + δ, low, high), δ ~ N(0, 1); ``uniform`` — S ~ U[low, high].
        update: ``gradient`` — S + lr·∇D; ``sign`` — S + lr·sign(∇D).
        lr: step on S.
        low, high: the box S lives in.
        max_examples: search on at most this many of the inputs (the first ones; None: all).
            D is a mean over examples, so a few dozen estimate it well, and the search
            then costs a fixed few passes however large the batch.
    """

    steps: int = 10
    start: str = "normal"
    update: str = "gradient"
    lr: float = 1.0
    low: float = 1e-7
    high: float = 1.0
    max_examples: int | None = None

    def __post_init__(self) -> None:
        if self.start not in STARTS or self.update not in UPDATES:
            raise ValueError(f"start must be one of {STARTS}, update one of {UPDATES}")
        if self.steps < 1 or not 0 < self.low < self.high or (self.max_examples is not None and self.max_examples < 1):
            raise ValueError("need steps ≥ 1, 0 < low < high and max_examples ≥ 1")


AAS_SEARCH = ScaleSearch(max_examples=64)
A3_SCALE_SEARCH = ScaleSearch(start="uniform", update="sign", lr=0.1)


@dataclass
class ScaleSearchResult:
    scales: torch.Tensor  # L, in [low, high]
    distance: float  # D at the last evaluated point
    used_gradient: bool  # False: the search fell back to seeded random draws
    forward_passes: int  # summed over the examples searched on
    backward_passes: int


def feature_distance(features: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> torch.Tensor:
    """Σ_i mean_n ‖f_i − r_i‖² / (‖f_i‖·‖r_i‖), each feature flattened per example."""
    total = None
    for f, r in zip(features, reference):
        f = f.flatten(1)
        d = ((f - r).pow(2).sum(1) / (f.norm(dim=1) * r.norm(dim=1) + 1e-12)).mean()
        total = d if total is None else total + d
    if total is None:
        raise ValueError("no features to compare")
    return total


def search_scales(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[nn.Module],
    rescaled: Rescaled,
    search: ScaleSearch,
    seed: int,
) -> ScaleSearchResult:
    """Per-layer scales in [low, high] maximising the normalised feature distance.

    Args:
        model: the model as it is (its features are the reference).
        x: inputs, N×C×H×W in [0,1].
        layers: the modules whose outputs are the features f_i (one scale each).
        rescaled: ``rescaled(S)`` is a context manager running ``model`` at scales S (L),
            restoring it on exit; S may require grad.
        search: the settings (:data:`AAS_SEARCH`, :data:`A3_SCALE_SEARCH`).
        seed: the start and the fallback draws derive from it.
    """
    if search.max_examples is not None:
        x = x[: search.max_examples]
    n = len(layers)
    feats: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: feats.append(out)) for layer in layers]
    gen = torch.Generator().manual_seed(int(seed))
    low, high = search.low, search.high

    def draw() -> torch.Tensor:
        if search.start == "uniform":
            s = torch.rand(n, generator=gen) * (high - low) + low
        else:
            s = (1.0 + torch.randn(n, generator=gen)).clamp(low, high)
        return s.to(x.device)

    def distance(s: torch.Tensor) -> tuple[float, torch.Tensor | None]:
        """D at scales s, and its gradient (None when there is none to follow)."""
        feats.clear()
        s = s.detach().requires_grad_(True)
        with torch.enable_grad(), rescaled(s):
            model(x)
            dist = feature_distance(feats, reference)
            g = torch.autograd.grad(dist, s, allow_unused=True)[0] if dist.requires_grad else None
        usable = g is not None and bool(torch.isfinite(g).all()) and bool(g.any())
        return float(dist.detach()), g if usable else None

    try:
        with torch.no_grad():
            model(x)
        reference = [f.detach().flatten(1) for f in feats]
        s = draw()
        dist = 0.0
        for step in range(search.steps):
            dist, g = distance(s)
            if g is None:
                best, best_dist = s, dist
                for _ in range(step + 1, search.steps):
                    cand = draw()
                    d, _ = distance(cand)
                    if d > best_dist:
                        best, best_dist = cand, d
                return ScaleSearchResult(best.detach(), best_dist, False, (1 + search.steps) * len(x), (step + 1) * len(x))
            direction = g.sign() if search.update == "sign" else g
            s = (s + search.lr * direction).clamp(low, high)  # ascent; the last step is the answer
    finally:
        for h in hooks:
            h.remove()
    return ScaleSearchResult(s.detach(), dist, True, (1 + search.steps) * len(x), search.steps * len(x))
