"""The model wrapper: takes [0,1] pixels and owns normalisation, so attacks never see normalised tensors."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from a3bench.models.a3 import A3Config


class Classifier(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        arch: str,
        num_classes: int,
        input_shape: tuple[int, int, int],
        options: dict | None = None,
    ) -> None:
        super().__init__()
        if len(mean) != input_shape[0] or len(std) != input_shape[0]:
            raise ValueError(f"mean/std need {input_shape[0]} values, got {len(mean)}/{len(std)}")
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.arch = arch
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.arch_options = dict(options or {})  # the architecture's own keyword arguments

    @property
    def a3_config(self) -> A3Config | None:
        return getattr(self.backbone, "a3_config", None)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0,1] pixels -> what the backbone takes.

        Usually just normalisation. A backbone with its own ``prepare_input`` (the
        multi-resolution CrossMax model) transforms the pixels first, because its random
        shifts, contrast, noise and clamp to [0,1] act on pixels, and normalises after.
        """
        own = getattr(self.backbone, "prepare_input", None)
        return own(x, self.normalize) if own is not None else self.normalize(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features z of [0,1] inputs."""
        return self.backbone.forward_features(self.prepare(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (exactly what ``forward`` gives) and penultimate features, from one pass."""
        h = self.prepare(x)
        own = getattr(self.backbone, "forward_with_features", None)
        if own is not None:
            return own(h)
        z = self.backbone.forward_features(h)
        return self.backbone.head(z), z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(x))
