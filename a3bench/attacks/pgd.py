"""PGD (Madry et al. 2018) and FGSM (Goodfellow et al. 2015), Linf or L2, any loss.

>>> out = PGD(steps=20)(model, x, y, ThreatModel("Linf", 8/255), seed=0)
>>> robust = ~out.success
"""

from __future__ import annotations

import torch
from torch import nn

from typing import Callable

from a3bench.attacks.base import Attack, AttackOutput
from a3bench.attacks.losses import LossFn, ScheduledLoss, ce_loss, get_loss
from a3bench.threat import ThreatModel, example_seeds

GradFn = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


def input_grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d loss / d x; zeros when the model cut the graph (a detach, a non-differentiable
    output): that is gradient masking to be diagnosed, not a crash."""
    if not loss.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


class MostCorrectDraw:
    """Over several draws of a randomised model, per example the logits of the draw that
    classifies it best (largest margin z_y − max_{j≠y} z_j). Early stopping reads them, so an
    example counts as broken only when every draw misclassified it."""

    def __init__(self, y: torch.Tensor) -> None:
        self.y, self.rows = y, torch.arange(len(y), device=y.device)
        self.logits: torch.Tensor | None = None
        self.margin: torch.Tensor | None = None

    def add(self, z: torch.Tensor) -> None:
        margin = z[self.rows, self.y] - z.scatter(1, self.y[:, None], float("-inf")).max(1).values
        if self.logits is None:
            self.logits, self.margin = z.clone(), margin
        else:
            better = margin > self.margin
            self.logits[better], self.margin = z[better], torch.maximum(margin, self.margin)


def surrogate_grad_fn(judge: nn.Module, surrogate: Callable[[torch.Tensor], torch.Tensor], loss_fn) -> GradFn:
    """Gradient of ``loss_fn`` through ``surrogate``; logits (for early stopping) from ``judge``."""

    def grad_fn(xa: torch.Tensor, ya: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xg = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            grad = input_grad(loss_fn(surrogate(xg), ya).sum(), xg)
        with torch.no_grad():
            logits = judge(xa)
        return logits, grad

    return grad_fn


def default_step_size(threat: ThreatModel, steps: int) -> float:
    """2.5·eps/steps (Madry et al.), so the iterate can cross the ball in any direction."""
    return 2.5 * threat.eps / max(steps, 1)


def pgd_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    x_init: torch.Tensor,
    *,
    steps: int,
    step_size: float | Callable[[int], float],
    loss_fn: LossFn = ce_loss,
    early_stop: bool = True,
    grad_fn=None,
    trace: bool = False,
) -> AttackOutput:
    """The one PGD loop. With ``early_stop`` an example leaves the batch as soon as an
    iterate is misclassified (it stays broken: the iterate is inside the threat model),
    so the compute goes to what is still robust.

    ``grad_fn(x_adv, y) -> (logits, grad)`` replaces the plain gradient (EOT, BPDA ...).
    ``trace``: also return ``loss_trace`` ((steps+1)×N, ``loss_fn`` of the logits the loop
    already has at each iterate; NaN once an example has left), at no extra forward pass.
    A :class:`~a3bench.attacks.losses.ScheduledLoss` (GAMA) is told the clean inputs once
    and, before each step, the step number and which examples are still in the batch.
    ``step_size`` may be a function of the step number t (a schedule).
    """
    x_adv = x_init.detach().clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    active = torch.arange(x.shape[0], device=x.device)
    fwd = bwd = 0
    losses = torch.full((steps + 1, x.shape[0]), float("nan"), device=x.device) if trace else None

    def plain_grad(xa: torch.Tensor, ya: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa = xa.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            grad = input_grad(loss_fn(logits, ya).sum(), xa)
        return logits.detach(), grad

    grad_fn = grad_fn or plain_grad
    scheduled = loss_fn if isinstance(loss_fn, ScheduledLoss) else None
    if scheduled is not None:
        scheduled.start(x, steps)
    for t in range(steps):
        if active.numel() == 0:
            break
        xa, ya, x0 = x_adv[active], y[active], x[active]
        if scheduled is not None:
            scheduled.set_step(t, active)
        logits, grad = grad_fn(xa, ya)
        fwd += xa.shape[0]
        bwd += xa.shape[0]
        if losses is not None:
            losses[t, active] = loss_fn(logits, ya).detach().float()
        if early_stop:
            hit = logits.argmax(1) != ya
            success[active[hit]] = True
            keep = ~hit
            active, xa, x0, grad = active[keep], xa[keep], x0[keep], grad[keep]
        size = step_size(t) if callable(step_size) else step_size
        x_adv[active] = threat.project(threat.step(xa, grad, size), x0).detach()
    if active.numel():
        with torch.no_grad():
            logits = model(x_adv[active])
            success[active] = logits.argmax(1) != y[active]
            if losses is not None:
                losses[steps, active] = loss_fn(logits, y[active]).float()
        fwd += int(active.numel())
    return AttackOutput(x_adv, success, fwd, bwd, loss_trace=losses)


class PGD(Attack):
    """PGD-K with random start and restarts; an example is broken if any restart breaks it.

    Args:
        steps: iterations K. step_size: absolute step; default 2.5·eps/K.
        restarts: independent random starts (only still-robust examples are restarted).
        loss: "ce", "cw", "dlr" or "logit-scaled". random_start: start uniformly in the ball.

    ``surrogate`` (runtime state, None normally): a forward to take the gradient through
    instead of the model's, while early stopping and success stay the model's — how the
    attention-scaling attacks craft on a rescaled model and judge on the original.
    """

    surrogate: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(
        self,
        steps: int = 20,
        *,
        step_size: float | None = None,
        restarts: int = 1,
        loss: str = "ce",
        random_start: bool = True,
        name: str | None = None,
    ) -> None:
        if steps < 1 or restarts < 1:
            raise ValueError("steps and restarts must be ≥ 1")
        self.steps, self.step_size, self.restarts = steps, step_size, restarts
        self.loss_name, self.loss_fn = loss, get_loss(loss)
        self.random_start = random_start
        self.name = name or f"pgd-{steps}"

    def config(self) -> dict:
        return {"steps": self.steps, "step_size": self.step_size, "restarts": self.restarts, "loss": self.loss_name, "random_start": self.random_start}

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most (each restart: K steps and a last
        check; a surrogate is judged by the model each step), and no fixed cost."""
        judge = 2 if self.surrogate is not None else 1
        return self.restarts * (self.steps + 1) * judge, self.restarts * self.steps, 0

    def step_rule(self, threat: ThreatModel) -> float | Callable[[int], float]:
        """The step size for this threat model, or a schedule t -> size (subclasses)."""
        return self.step_size if self.step_size is not None else default_step_size(threat, self.steps)

    def grad_fn(self, model: nn.Module):
        """Hook for subclasses (EOT, BPDA): None means the plain gradient (or the surrogate's)."""
        if self.surrogate is not None:
            return surrogate_grad_fn(model, self.surrogate, self.loss_fn)
        return None

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        step = self.step_rule(threat)
        x_best = x.clone()
        success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        fwd = bwd = 0
        # per example, the trace of the last restart it ran (the one that decided it)
        trace = torch.full((self.steps + 1, x.shape[0]), float("nan"), device=x.device) if self.trace_loss else None
        for r in range(self.restarts):
            todo = (~success).nonzero().flatten()
            if todo.numel() == 0:
                break
            xs, ys = x[todo], y[todo]
            if self.random_start:
                x0 = threat.random_start(xs, seeds=example_seeds(seed, indices[todo], salt=r))
            else:
                x0 = xs
            out = pgd_loop(model, xs, ys, threat, x0, steps=self.steps, step_size=step, loss_fn=self.loss_fn,
                           grad_fn=self.grad_fn(model), trace=self.trace_loss)
            fwd += out.forward_passes * (2 if self.surrogate is not None else 1)  # surrogate and judge each step
            bwd += out.backward_passes
            x_best[todo] = out.x_adv
            success[todo] = out.success
            if trace is not None:
                trace[:, todo] = out.loss_trace
        return AttackOutput(x_best, success, fwd, bwd, loss_trace=trace)


class FGSM(PGD):
    """FGSM: one step of size eps from the clean point (Linf: the sign of the gradient)."""

    def __init__(self, loss: str = "ce") -> None:
        super().__init__(steps=1, restarts=1, loss=loss, random_start=False, name="fgsm")

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        return pgd_loop(model, x, y, threat, x, steps=1, step_size=threat.eps, loss_fn=self.loss_fn, early_stop=False, trace=self.trace_loss)
