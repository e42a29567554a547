"""Autograd against finite differences: the one comparison behind the gradient-consistency
check (:mod:`a3bench.eval.gradcheck`) and the localisation of a lying gradient
(:mod:`a3bench.attacks.graph`).

A model's backward pass may return something other than the derivative of its forward
pass (a custom ``autograd.Function``, a detach, a hook). The test: along a direction
``d``, the autograd directional derivative ``a = <g, d>`` must match the finite
difference ``f = (L(x + h·d) − L(x)) / h`` of the same loss. Their ratio ``f / a`` is 1
for an honest model up to curvature and kinks; a lie shows up as a ratio near −1 (the
wrong sign), near 0 (noise, a shattered gradient: the claimed ascent is not there),
far from 1 on two independent directions alike (a scaled gradient), or an exactly zero
gradient where the loss does change.

The direction that matters is the one the attacks follow, the gradient's own steepest
ascent (``sign(g)`` for Linf, ``g/‖g‖`` otherwise): there ``a`` is largest, so the
comparison has the best signal-to-noise ratio, and a single forward pass settles it.

ReLU and max-pool kinks make finite differences of an honest network differ from its
gradient (a max-pool with tied inputs — a flat black background — has one-sided
derivatives that are not the gradient). Measured on the bundled PGD-AT CNN and two
normally trained CNNs (Fashion-MNIST, 200 clean and 200 perturbed inputs, one-sided
differences along the ascent direction): the ratio stayed within [0.55, 1.29] for every
step from 1e-4 to 1e-2, within [0.72, 1.11] at 1e-3. Hence the accepted window
[RATIO_LOW, RATIO_HIGH] = [0.4, 2.5], and a second look at a ten times smaller step
before an example is called inconsistent.
"""

from __future__ import annotations

import math

import torch

RATIO_LOW = 0.4  # finite difference / autograd below this: the claimed ascent is not there
RATIO_HIGH = 2.5  # above this: the gradient understates the change
SCALE_AGREEMENT = 3.0  # two directions' ratios within this factor: a consistent (scaled) gradient
# float32 rounding of a loss of logits of size |z|: ~1e-7·|z| per evaluation; 64× that
# is the change below which a finite difference says nothing.
FLOOR = 64 * torch.finfo(torch.float32).eps

KINDS = ("zero", "sign", "magnitude", "noise", "non-finite")


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log Σ_{j≠y} exp z_j − z_y per example: smooth (no max kink between runner-ups) and,
    unlike cross-entropy, not saturating for confident examples, so its finite differences
    stay above float32 rounding."""
    other = logits.scatter(1, y[:, None], float("-inf"))
    return torch.logsumexp(other, dim=1) - logits.gather(1, y[:, None]).squeeze(1)


def noise_floor(logits: torch.Tensor) -> torch.Tensor:
    """Per example: the loss change that float32 rounding alone can produce."""
    return FLOOR * (logits.detach().abs().flatten(1).amax(dim=1) + 1.0)


def in_window(ratio: torch.Tensor) -> torch.Tensor:
    return (ratio >= RATIO_LOW) & (ratio <= RATIO_HIGH)


def classify(ratio: float, other_ratio: float | None) -> str:
    """The kind of an inconsistency, from the ratio along the gradient's ascent and (when
    measured) along an independent random direction.

    - ``sign``: stepping along the claimed ascent *decreases* the loss.
    - ``magnitude``: both directions show the same positive factor (a scaled gradient).
    - ``noise``: the claimed ascent is flat or random (noise, a shattered gradient).
    """
    if not math.isfinite(ratio):
        return "non-finite"
    if ratio <= -RATIO_LOW:
        return "sign"
    if ratio > RATIO_HIGH:
        return "magnitude"
    if other_ratio is not None and math.isfinite(other_ratio) and ratio > 0 and other_ratio > 0:
        if abs(math.log(other_ratio / ratio)) <= math.log(SCALE_AGREEMENT):
            return "magnitude"
    return "noise"


def ascent_direction(grad: torch.Tensor, linf: bool) -> torch.Tensor:
    """The direction an attack steps along: sign(g) (Linf), g/‖g‖₂ per example (otherwise)."""
    if linf:
        return grad.sign()
    n = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
    return grad / n.view(-1, *([1] * (grad.dim() - 1)))


def random_directions(shape: tuple[int, ...], seeds: list[int], linf: bool, device, dtype) -> torch.Tensor:
    """One random direction per example from its own seed: Rademacher (Linf) or a unit
    Gaussian (otherwise), so the result does not depend on the batch it sits in."""
    out = []
    for s in seeds:
        gen = torch.Generator().manual_seed(int(s))
        if linf:
            d = torch.randint(0, 2, shape, generator=gen, dtype=torch.float32) * 2 - 1
        else:
            d = torch.randn(shape, generator=gen)
            d = d / d.norm().clamp_min(1e-30)
        out.append(d)
    return torch.stack(out).to(device=device, dtype=dtype)
