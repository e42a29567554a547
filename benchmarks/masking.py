"""Models that mask gradients, for the audit's proof runs (docs/audit.md), as ``--model`` factories:

    a3bench audit --model benchmarks/masking.py:quantised_pgdat --dataset fmnist --attacks pgd-20,apgd-ce

``quantised_pgdat``: the bundled PGD-AT network behind an 8-bit input quantiser — the
identity on Fashion-MNIST's 1/255 grid (clean accuracy unchanged), yet its gradient is
exactly zero, so every gradient attack stands still (the liar of tests/test_lying_models.py,
built on a bundled network so that it needs no training).
"""

from __future__ import annotations

import torch
from torch import nn


class Quantise(nn.Module):
    """round(x·255)/255: the identity on 8-bit images, a zero gradient everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 255) / 255


def quantised_pgdat() -> nn.Module:
    from a3bench.models import load_model

    return nn.Sequential(Quantise(), load_model("smallcnn.pgdat_fmnist").model).eval()
