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
