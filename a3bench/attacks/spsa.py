"""SPSA (Uesato, O'Donoghue, van den Oord & Kohli, "Adversarial Risk and the Dangers of
Evaluating Against Weak Attacks", ICML 2018): a gradient-free attack, the standard
answer to gradients that lie.

Each step estimates the gradient of the margin loss ``z_y − max_{j≠y} z_j`` from
forward passes only (simultaneous perturbation stochastic approximation): ``samples``
evaluations at ``x ± δ·v`` for ``samples/2`` Rademacher directions ``v``,

    ĝ = mean_v [(f(x + δv) − f(x − δv)) / 2δ] · v,

then takes an Adam step (learning rate ``lr``) on the perturbation and projects it into
the threat model. The paper's settings are the defaults: δ = 0.01, Adam learning rate
0.01, and the per-step batch of 128 evaluations of the authors' implementation in
CleverHans; the number of steps K is the name (``spsa-100``). An example stops as soon
as its current iterate is misclassified (the margin is checked on the same batch of
forward passes, one extra row), so queries go to what is still robust.

Randomness (the random start, every direction) is drawn per example from
``example_seeds(seed, index)``: an example's result does not depend on the batch it
sits in. Query points are clipped to the image box [0, 1]: the attack asks the model
only about images. Norms: Linf and L2 (Adam's step, then the one projection).

Forward passes per example: at most ``steps · (samples + 1) + 1``
(``spsa-100``: 12 901, against Square's 5 000 queries).

>>> out = SPSA(steps=100)(model, x, y, ThreatModel("Linf", 0.1), seed=0)
>>> out.forward_passes  # counted, summed over examples
"""

from __future__ import annotations

import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackKind, AttackOutput
from a3bench.attacks.registry import AttackSpec, int_option, positive_option, register_attack
from a3bench.errors import AttackError
from a3bench.threat import ThreatModel, example_seeds
from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX

SALT_START, SALT_DIRECTIONS = 6_007, 6_011
MAX_ROWS = 512  # rows per forward pass (examples × queries): larger batches run slower per row on CPU
BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j: negative ⇔ misclassified (the paper's loss, minimised)."""
    true = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    other = logits.scatter(-1, y.unsqueeze(-1), float("-inf")).amax(dim=-1)
    return true - other


class SPSA(Attack):
    """SPSA with Adam, Linf or L2, per-example seeds; black-box (forward passes only).

    Args:
        steps: iterations K. samples: forward evaluations per step for the gradient
            estimate (samples/2 antithetic Rademacher pairs; 128). delta: perturbation
            size δ of the finite differences (0.01). lr: Adam learning rate (0.01).
        random_start: start uniformly in the ball (as the authors' implementation).

    Shapes: x N×C×H×W in [0,1], y N; returns an :class:`AttackOutput`.
    """

    kind = AttackKind.BLACK_BOX
    queries_only = True
    reveals = BLACK_BOX_BEATS_WHITE_BOX

    def __init__(self, steps: int = 100, *, samples: int = 128, delta: float = 0.01, lr: float = 0.01,
                 random_start: bool = True, name: str | None = None) -> None:
        if steps < 1 or samples < 2:
            raise ValueError("SPSA needs steps ≥ 1 and samples ≥ 2")
        if delta <= 0 or lr <= 0:
            raise ValueError("SPSA needs delta > 0 and lr > 0")
        self.steps, self.samples, self.delta, self.lr = steps, samples, float(delta), float(lr)
        self.random_start = random_start
        self.name = name or f"spsa-{steps}"

    def config(self) -> dict:
        return {"steps": self.steps, "samples": self.samples, "delta": self.delta, "lr": self.lr, "random_start": self.random_start}

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most, and fixed forward passes."""
        return self.steps * (2 * (self.samples // 2) + 1) + 1, 0, 0

    def run(self, model: nn.Module, x, y, threat: ThreatModel, *, seed, indices) -> AttackOutput:
        n = x.shape[0]
        pairs = self.samples // 2
        dims = x[0].numel()
        gens = [torch.Generator().manual_seed(int(s)) for s in example_seeds(seed, indices, salt=SALT_DIRECTIONS)]
        x_adv = threat.random_start(x, seeds=example_seeds(seed, indices, salt=SALT_START)) if self.random_start else x.clone()
        m = torch.zeros_like(x)
        v = torch.zeros_like(x)
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        active = torch.arange(n, device=x.device)
        fwd = 0
        per_chunk = max(1, MAX_ROWS // (2 * pairs + 1))
        for t in range(1, self.steps + 1):
            if active.numel() == 0:
                break
            grads, hit = [], []
            for c in range(0, active.numel(), per_chunk):
                rows = active[c : c + per_chunk]
                g, h = self._estimate(model, x_adv[rows], y[rows], [gens[int(i)] for i in rows], pairs, dims, threat)
                grads.append(g)
                hit.append(h)
                fwd += int(rows.numel()) * (2 * pairs + 1)
            grad, hit_t = torch.cat(grads), torch.cat(hit)
            success[active[hit_t]] = True
            keep = ~hit_t
            active, grad = active[keep], grad[keep]
            if active.numel() == 0:
                break
            # Adam on the perturbation, minimising the margin; then the one projection
            m[active] = BETAS[0] * m[active] + (1 - BETAS[0]) * grad
            v[active] = BETAS[1] * v[active] + (1 - BETAS[1]) * grad * grad
            m_hat = m[active] / (1 - BETAS[0] ** t)
            v_hat = v[active] / (1 - BETAS[1] ** t)
            stepped = x_adv[active] - self.lr * m_hat / (v_hat.sqrt() + ADAM_EPS)
            x_adv[active] = threat.project(stepped, x[active]).detach()
        if active.numel():
            with torch.no_grad():
                success[active] = model(x_adv[active]).argmax(1) != y[active]
            fwd += int(active.numel())
        return AttackOutput(x_adv, success, fwd, 0)

    def _estimate(self, model, xa, ya, gens, pairs: int, dims: int, threat: ThreatModel):
        """SPSA gradient of the margin at each row of ``xa``, and whether the row is already misclassified."""
        b = xa.shape[0]
        dirs = torch.stack([torch.randint(0, 2, (pairs, dims), generator=g, dtype=torch.int8) for g in gens])
        dirs = (dirs.to(xa.device, xa.dtype) * 2 - 1).view(b, pairs, *xa.shape[1:])
        center = xa.unsqueeze(1)
        queries = torch.cat([center, center + self.delta * dirs, center - self.delta * dirs], dim=1)
        queries = queries.clamp(threat.lower, threat.upper).flatten(0, 1)
        with torch.no_grad():
            logits = model(queries)
        f = margin(logits.view(b, 2 * pairs + 1, -1), ya.unsqueeze(1).expand(b, 2 * pairs + 1))
        hit = f[:, 0] < 0
        diff = (f[:, 1 : pairs + 1] - f[:, pairs + 1 :]) / (2 * self.delta)  # b × pairs
        grad = (diff.view(b, pairs, *([1] * (xa.dim() - 1))) * dirs).mean(dim=1)
        return grad, hit


@register_attack("spsa-K", pattern=r"spsa-(\d+)", options=("samples", "delta", "lr"), example="spsa-3:samples=4",
                 help="SPSA, K steps (Uesato et al. 2018): gradient-free, black-box; options samples (128), delta (0.01), lr (0.01)")
def _spsa(spec: AttackSpec) -> SPSA:
    steps = int(spec.match.group(1))
    if steps < 1:
        raise AttackError(f"attack {spec.text!r}: K must be ≥ 1")
    samples = int_option(spec, "samples", 128)
    if samples < 2:
        raise AttackError(f"attack {spec.text!r}: samples must be ≥ 2")
    return SPSA(steps, samples=samples, delta=positive_option(spec, "delta", 0.01), lr=positive_option(spec, "lr", 0.01))
