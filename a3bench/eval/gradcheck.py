"""Is the gradient the gradient? A per-example consistency check of autograd against
finite differences (docs/architecture.md#diagnostics-and-the-verdict, issue 10), and the ``gradient-inconsistent`` flag.

The existing ``zero-gradients`` check catches one lie, an exactly zero gradient. A
backward pass can lie in other ways that no attack is told about: a scaled gradient,
noise, a shattered (high-frequency) gradient, the wrong sign, at the input or deep
inside the network. Every one of them shows up where the loss is measured rather than
differentiated: for each example, the autograd directional derivative of the loss along
the gradient's own ascent direction is compared with a one-sided finite difference along
the same direction (:mod:`a3bench.attacks.finite_diff` explains the test and its
tolerance).

Points: each example is checked once, at its clean input (even positions in the
evaluation set) or at a random point of its eps-ball (odd positions; per-example seeds),
moved inward by one step so that the finite difference stays inside [0, 1]. The step is
eps/100 (between 1e-4 and 1e-2): small against the threat model, so ReLU and max-pool
kinks rarely fall inside it, large against float32 rounding. An example outside the
accepted window gets a second look at a ten times smaller step (a kink crossed by the
first step is rarely crossed by the second; a lie is there at every scale), then one
random direction to tell a scaled gradient from noise. An exactly zero gradient is
tested at the threat model's own scale: a loss that changes within eps/2 while autograd
says it cannot is a masked gradient (kind ``zero``), a loss that does not is flat.

Cost per honest example: one forward+backward and one forward pass, about 1.7 PGD steps
in seconds — 9 % of PGD-20's passes and 11 % of its seconds on the bundled PGD-AT model,
8 % of a PGD-20 that runs all its steps (``benchmarks/gradient_lies.py``,
docs/performance.md).

>>> check = check_gradients(model, x, y, ThreatModel("Linf", 0.1), seed=0)
>>> check.fraction, check.kinds
(0.0, {})
>>> gradient_flags(check)
[]
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from a3bench.attacks.finite_diff import (
    RATIO_HIGH,
    RATIO_LOW,
    ascent_direction,
    classify,
    in_window,
    margin_loss,
    noise_floor,
    random_directions,
)
from a3bench.flags import GRADIENT_INCONSISTENT
from a3bench.schema import Flag
from a3bench.threat import Norm, ThreatModel, example_seeds

FLAG = GRADIENT_INCONSISTENT.name
THRESHOLD = 0.10  # fraction of checked examples above which the flag fires
SALT_POINT, SALT_DIRECTION = 4_099, 8_191  # per-example seeds: the perturbed point, the random direction


@dataclass
class ExampleCheck:
    """One example's verdict."""

    index: int  # position in the evaluation set
    point: str  # "clean" | "perturbed"
    consistent: bool
    kind: str | None  # None when consistent; "zero" | "sign" | "magnitude" | "noise" | "non-finite"
    ratio: float | None  # finite difference / autograd along the ascent direction (1 = honest; None: zero or flat)
    autograd: float  # directional derivative claimed by autograd
    finite_difference: float  # measured


@dataclass
class GradientCheck:
    """The consistency check of one model on one sample (:func:`check_gradients`)."""

    n_checked: int
    n_inconsistent: int
    fraction: float  # n_inconsistent / n_checked (0 when skipped)
    kinds: dict[str, int]  # inconsistent examples per kind
    step: float  # finite-difference step (per pixel for Linf, L2 length otherwise)
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was checked (a randomised model)
    examples: list[ExampleCheck] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        """The most common kind of inconsistency (None when there is none)."""
        return max(self.kinds, key=lambda k: self.kinds[k]) if self.kinds else None

    def to_dict(self, with_examples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_examples:
            d.pop("examples")
        d["kind"] = self.kind
        return d


def default_step(threat: ThreatModel) -> float:
    """eps/100, kept within [1e-4, 1e-2]; 1e-3 when eps is 0."""
    if threat.eps <= 0:
        return 1e-3
    return float(min(max(threat.eps / 100, 1e-4), 1e-2))


def check_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    seed: int = 0,
    indices: torch.Tensor | None = None,
    points: str = "alternate",
    step: float | None = None,
    batch_size: int = 256,
    randomized: bool | None = None,
) -> GradientCheck:
    """Compare autograd with finite differences on each example of (x, y).

    Args:
        model: the deployed model, eval mode, on [0,1] inputs.
        x, y: N×C×H×W inputs and labels (a sample of the evaluation set).
        threat: sets the finite-difference step (:func:`default_step`), the perturbed
            points (random in the eps-ball) and the scale at which a zero gradient is tested.
        seed, indices: per-example seeds from (seed, position), as the attacks draw them.
        points: ``alternate`` (clean at even positions, perturbed at odd), ``clean``,
            ``perturbed``.
        step: override the finite-difference step.
        randomized: whether the model's outputs are random (the runner knows it from its
            sanity checks); None: two forward passes of 4 examples decide.

    A randomised model is not checked: finite differences of a random function measure
    the noise (``skipped`` says so; ``randomized-outputs`` and EOT cover it).
    """
    if points not in ("alternate", "clean", "perturbed"):
        raise ValueError(f"points must be alternate, clean or perturbed, got {points!r}")
    t0 = time.perf_counter()
    n = x.shape[0]
    indices = torch.arange(n) if indices is None else indices.cpu()
    h = float(step) if step is not None else default_step(threat)
    if n == 0:
        return GradientCheck(0, 0, 0.0, {}, h)
    fwd, bwd = 0, 0
    if randomized is None:  # the one rule (eval/judge.py); the evaluation set-up always knows it already
        from a3bench.eval.judge import detect_randomness

        randomized = detect_randomness(model, x[: min(n, 4)], y[: min(n, 4)]).randomised
        fwd += 5 * min(n, 4)
    if randomized:
        return GradientCheck(0, 0, 0.0, {}, h, forward_passes=fwd, seconds=time.perf_counter() - t0,
                             skipped="the model's outputs change between identical forward passes (randomised)")
    examples: list[ExampleCheck] = []
    for s in range(0, n, batch_size):
        part = _check_batch(model, x[s : s + batch_size], y[s : s + batch_size], indices[s : s + batch_size], threat, seed, points, h)
        examples += part[0]
        fwd += part[1]
        bwd += part[2]
    bad = [e for e in examples if not e.consistent]
    kinds = dict(Counter(e.kind for e in bad))
    return GradientCheck(
        n_checked=len(examples),
        n_inconsistent=len(bad),
        fraction=len(bad) / len(examples),
        kinds=kinds,
        step=h,
        forward_passes=fwd,
        backward_passes=bwd,
        seconds=time.perf_counter() - t0,
        examples=examples,
    )


def _check_batch(model, x, y, idx, threat: ThreatModel, seed: int, points: str, h: float):
    linf = threat.norm is Norm.LINF
    b = x.shape[0]
    if points == "alternate":
        perturbed = (idx % 2 == 1).to(x.device)
    else:
        perturbed = torch.full((b,), points == "perturbed", dtype=torch.bool, device=x.device)
    xs = x.clone()
    if perturbed.any() and threat.eps > 0:
        sel = perturbed.nonzero().flatten()
        xs[sel] = threat.random_start(x[sel], seeds=example_seeds(seed, idx[sel.cpu()], salt=SALT_POINT))
    # room for the step inside the box: the finite difference must see the same function
    xs = xs.clamp(threat.lower + h, threat.upper - h)

    xg = xs.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        loss = margin_loss(logits, y)
        grad = torch.autograd.grad(loss.sum(), xg, allow_unused=True)[0] if loss.requires_grad else None
    fwd, bwd = b, b
    grad = torch.zeros_like(xs) if grad is None else grad.detach()
    loss, logits = loss.detach(), logits.detach()
    floor = noise_floor(logits)
    finite = torch.isfinite(grad.flatten(1).abs().sum(dim=1))  # NaN and inf survive the sum
    if not bool(finite.all()):
        grad = torch.where(finite.view(-1, *([1] * (grad.dim() - 1))), grad, torch.zeros_like(grad))
    d = ascent_direction(grad, linf)
    claimed = (grad * d).flatten(1).sum(1)  # ‖g‖₁ (Linf) or ‖g‖₂: ≥ 0
    zero = claimed == 0

    def loss_at(points_: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return margin_loss(model(points_), y[rows])

    rows = torch.arange(b, device=x.device)
    measured = (loss_at(xs + h * d, rows) - loss) / h
    fwd += b
    ratio = torch.where(zero, torch.full_like(measured, float("nan")), measured / claimed.clamp_min(1e-30))
    # below float32 rounding on both sides: the loss is flat here, nothing to compare
    flat = (claimed * h <= floor) & (measured.abs() * h <= floor) & ~zero
    ok = flat | (in_window(ratio) & ~zero)

    # second look at a ten times smaller step: kinks are crossed by one step, lies by all
    again = (~ok & ~zero & finite).nonzero().flatten()
    if again.numel():
        h2 = h / 10
        m2 = (loss_at(xs[again] + h2 * d[again], again) - loss[again]) / h2
        fwd += int(again.numel())
        ok[again] = in_window(m2 / claimed[again])

    # a zero gradient: does the loss change at the threat model's scale?
    seeds_dir = example_seeds(seed, idx, salt=SALT_DIRECTION)
    zeros = (zero & finite).nonzero().flatten()
    if zeros.numel():
        big = max(threat.eps / 2, h)
        dr = random_directions(tuple(xs.shape[1:]), [seeds_dir[int(i)] for i in zeros], linf, xs.device, xs.dtype)
        moved = threat.project((xs[zeros] + big * dr), x[zeros]) if threat.eps > 0 else xs[zeros] + big * dr
        change = (loss_at(moved.clamp(threat.lower, threat.upper), zeros) - loss[zeros]).abs()
        fwd += int(zeros.numel())
        ok[zeros] = change <= floor[zeros]

    # the kind of each lie: one random direction tells a scaled gradient from noise
    other = torch.full_like(ratio, float("nan"))
    probe = (~ok & ~zero & finite).nonzero().flatten()
    if probe.numel():
        dr = random_directions(tuple(xs.shape[1:]), [seeds_dir[int(i)] for i in probe], linf, xs.device, xs.dtype)
        a_r = (grad[probe] * dr).flatten(1).sum(1)
        f_r = (loss_at(xs[probe] + h * dr, probe) - loss[probe]) / h
        fwd += int(probe.numel())
        other[probe] = torch.where(a_r != 0, f_r / a_r, torch.full_like(a_r, float("nan")))

    out = []
    cols = zip(idx.tolist(), perturbed.tolist(), ok.tolist(), finite.tolist(), zero.tolist(), ratio.tolist(),
               other.tolist(), claimed.tolist(), measured.tolist())
    for index, pert, consistent, fin, zer, r, o, a, f in cols:
        if consistent:
            kind = None
        elif not fin:
            kind = "non-finite"
        elif zer:
            kind = "zero"
        else:
            kind = classify(r, None if o != o else o)
        out.append(ExampleCheck(index=index, point="perturbed" if pert else "clean", consistent=consistent, kind=kind,
                                ratio=None if r != r else round(r, 6), autograd=a, finite_difference=f))
    return out, fwd, bwd


def gradient_flags(check: GradientCheck, *, threshold: float = THRESHOLD, location: Any = None) -> list[Flag]:
    """``gradient-inconsistent`` (severity **error**) when more than ``threshold`` of the
    checked examples have a gradient that disagrees with finite differences.

    ``location``: a :class:`~a3bench.attacks.graph.LieLocation` (from ``locate_lie``);
    when it found the lie, its sentence ends the message ("... where: the gradient stops
    matching between the output of `encoder` and the input of `head` ...").

    Error, not warning: an honest network — kinks and all — does not fire it (the check's
    tolerance is set on honest models, docs/diagnostics.md), so when it fires the backward
    pass demonstrably computes something other than the derivative of the forward pass,
    every white-box number of the run follows that something, and the worst case rests
    on the attacks that do not use it (black-box, transfer, graph-level BPDA).
    """
    if check.skipped or check.n_checked == 0 or check.n_inconsistent == 0 or check.fraction <= threshold:
        return []
    pct = 100.0 * check.fraction
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(check.kinds.items(), key=lambda kv: -kv[1]))
    where = f"; where: {location.message}" if location is not None and getattr(location, "found", False) else ""
    return [GRADIENT_INCONSISTENT(
                 f"the autograd gradient disagrees with finite differences on {check.n_inconsistent} of {check.n_checked} "
                 f"checked examples ({pct:.1f} %; {kinds}): the backward pass is not the derivative of the forward pass, "
                 f"white-box attacks follow it; trust bpda-graph, spsa-K and transfer:distill (docs/diagnostics.md){where}",
                 value=round(pct, 4))]


__all__ = ["FLAG", "THRESHOLD", "ExampleCheck", "GradientCheck", "check_gradients", "default_step", "gradient_flags",
           "RATIO_LOW", "RATIO_HIGH"]
