"""Per-example attack losses on logits (higher = closer to misclassification)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from a3bench.errors import AttackError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _true_and_best_other(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return true, other.amax(dim=1)


def cw_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin: max_{j≠y} z_j − z_y (no confidence clamp, so the ascent keeps going)."""
    true, other = _true_and_best_other(logits, y)
    return other - true


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020): shift- and scale-invariant margin."""
    sorted_logits, _ = logits.sort(dim=1)
    true, other = _true_and_best_other(logits, y)
    denom = sorted_logits[:, -1] - sorted_logits[:, -3] + 1e-12
    return (other - true) / denom


def logit_scaled_ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE on logits divided by (z₁ − z₂)/10 (Yu & Xu 2023), so a saturated softmax still has gradient."""
    top2 = logits.topk(2, dim=1).values
    scale = ((top2[:, 0] - top2[:, 1]) / 10).clamp_min(1e-12).detach()
    return F.cross_entropy(logits / scale[:, None], y, reduction="none")


class ScheduledLoss:
    """A loss that changes during the run and looks at the clean inputs (GAMA).

    :func:`~a3bench.attacks.pgd.pgd_loop` calls ``start(x_clean, steps)`` once, then
    ``set_step(t, active)`` before each step (``active``: positions in ``x_clean`` of the
    examples still in the batch), then the loss as any other: ``loss(logits, y)``.
    """

    def start(self, x: torch.Tensor, steps: int) -> None: ...

    def set_step(self, step: int, active: torch.Tensor) -> None: ...

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class GamaLoss(ScheduledLoss):
    """GAMA's guided margin loss (Sriramanan et al., NeurIPS 2020), on softmax outputs p:

        max_{j≠y} p_j(x') − p_y(x') + w_t · ‖p(x') − p(x)‖²

    The relaxation weight w_t decays linearly from ``weight`` at step 0 to 0 at step
    ``decay``·K and stays 0 after. ``forward`` is the model whose clean outputs p(x)
    anchor the relaxation (set by the attack; the surrogate when crafting on one).
    """

    def __init__(self, weight: float = 50.0, decay: float = 0.25) -> None:
        if weight < 0 or not 0 <= decay <= 1:
            raise AttackError(f"GAMA needs a relaxation weight ≥ 0 and a decay fraction in [0, 1], got {weight}, {decay}")
        self.weight, self.decay = weight, decay
        self.forward: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.forward_passes = 0  # clean passes spent on the anchors (per example)
        self._p_clean: torch.Tensor | None = None
        self._active: torch.Tensor | None = None
        self._steps, self._w = 1, weight

    def weight_at(self, step: int, steps: int) -> float:
        horizon = self.decay * steps
        return self.weight * max(0.0, 1.0 - step / horizon) if horizon > 0 else 0.0

    def start(self, x: torch.Tensor, steps: int) -> None:
        if self.forward is None:
            raise RuntimeError("GamaLoss.forward is not set")
        with torch.no_grad():
            self._p_clean = F.softmax(self.forward(x), dim=1)
        self.forward_passes += len(x)
        self._steps, self._active, self._w = steps, None, self.weight_at(0, steps)

    def set_step(self, step: int, active: torch.Tensor) -> None:
        self._w, self._active = self.weight_at(step, self._steps), active

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = F.softmax(logits, dim=1)
        true, other = _true_and_best_other(p, y)
        loss = other - true
        if self._w > 0 and self._p_clean is not None:
            anchor = self._p_clean if self._active is None else self._p_clean[self._active]
            loss = loss + self._w * (p - anchor).pow(2).sum(dim=1)
        return loss


LOSSES: dict[str, LossFn] = {
    "ce": ce_loss,
    "cw": cw_loss,
    "dlr": dlr_loss,
    "logit-scaled": logit_scaled_ce_loss,
}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise AttackError(f"unknown attack loss {name!r} (valid: {', '.join(LOSSES)})") from None
