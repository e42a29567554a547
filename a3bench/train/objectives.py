"""Training objectives (docs/architecture.md#the-a3-module).

On a batch (x, y) with x_adv crafted against the attenuated model::

    L = L_base(f_att(x_adv), y)                                   # CE (PGD-AT) or TRADES
      + α · InfoNCE(anchor z_att(x_adv), positive z_att(x), negative z_amp(x_adv))
      + β · mean(relu(μ − (CE(f_amp(x_adv), y) − CE(f_att(x_adv), y))))

``joint`` is all three terms, ``attenuate-only`` only L_base (same module), ``none``
only L_base on the plain backbone.

A phase that brings its own loss (a CrossMax model's heads) declares it on its model
family (:mod:`a3bench.models.family`), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from a3bench.config import Config
from a3bench.models.a3 import a3_mode


@dataclass
class LossParts:
    total: torch.Tensor
    base: float
    infonce: float = 0.0
    ranking: float = 0.0
    logits: torch.Tensor | None = None  # logits of the examples trained on, for accuracy


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, temperature: float) -> torch.Tensor:
    """One positive per anchor against every negative of the batch, cosine similarity / T."""
    a = F.normalize(anchor, dim=1)
    pos = (a * F.normalize(positive, dim=1)).sum(dim=1, keepdim=True)
    neg = a @ F.normalize(negative, dim=1).t()
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long, device=a.device))


def ranking_loss(logits_amp: torch.Tensor, logits_att: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """Ask amplification to degrade the prediction by at least μ more than attenuation does."""
    gap = F.cross_entropy(logits_amp, y, reduction="none") - F.cross_entropy(logits_att, y, reduction="none")
    return F.relu(margin - gap).mean()


def trades_kl(logits_adv: torch.Tensor, logits_clean: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean")


def compute_loss(model, x: torch.Tensor, x_adv: torch.Tensor | None, y: torch.Tensor, cfg: Config) -> LossParts:
    method, obj = cfg.train.method, cfg.objective
    need_clean_features = obj.name == "joint" or method in ("standard", "trades")
    with a3_mode(model, "attenuate"):
        if x_adv is None:  # standard training
            logits_clean, _ = model.forward_with_features(x)
            loss = F.cross_entropy(logits_clean, y)
            return LossParts(loss, float(loss.detach()), logits=logits_clean.detach())
        logits_adv, z_adv = model.forward_with_features(x_adv)
        logits_clean = z_clean = None
        if need_clean_features:
            logits_clean, z_clean = model.forward_with_features(x)
    if method == "trades":
        base = F.cross_entropy(logits_clean, y) + cfg.train.trades_beta * trades_kl(logits_adv, logits_clean)
    else:
        base = F.cross_entropy(logits_adv, y)
    parts = LossParts(base, float(base.detach()), logits=logits_adv.detach())
    if obj.name != "joint":
        return parts
    with a3_mode(model, "amplify"):
        logits_amp, z_amp = model.forward_with_features(x_adv)
    nce = info_nce(z_adv, z_clean, z_amp, obj.temperature)
    rank = ranking_loss(logits_amp, logits_adv, y, obj.margin)
    parts.total = base + obj.alpha * nce + obj.beta * rank
    parts.infonce, parts.ranking = float(nce.detach()), float(rank.detach())
    return parts

