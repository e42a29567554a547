"""Backbones with named A3 insertion points.

Every backbone exposes ``forward_features(x) -> z`` (penultimate features, N×D),
``head`` (the final linear layer), ``insertion_points`` (names usable in
``A3Config.placement``) and ``point_modules()`` (for each insertion point, the module
whose output is the activation there: what CrossMax heads read, see
:mod:`a3bench.models.crossmax`). Inputs here are already normalised: the
:class:`~a3bench.models.wrapper.Classifier` owns normalisation.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.models.a3 import A3, A3Config
from a3bench.models.registry import register_model


class Backbone(nn.Module):
    insertion_points: tuple[str, ...] = ()

    def __init__(self, a3: A3Config | None) -> None:
        super().__init__()
        self.a3_config = a3
        if a3 is not None and a3.placement != "all":
            unknown = sorted(set(a3.placement) - set(self.insertion_points))
            if unknown:
                from a3bench.errors import ConfigError

                raise ConfigError(
                    f"unknown A3 insertion point(s) {', '.join(unknown)} for {type(self).__name__} "
                    f"(valid: {', '.join(self.insertion_points)})"
                )

    def _a3(self, point: str, channels: int, channel_dim: int = 1) -> nn.Module:
        if self.a3_config is not None and self.a3_config.places(point):
            return A3(channels, self.a3_config, channel_dim=channel_dim)
        return nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def point_modules(self) -> dict[str, nn.Module]:  # pragma: no cover - abstract
        """Insertion point name -> the module whose output is the activation at that point."""
        raise NotImplementedError

    def forward_with_points(self, x: torch.Tensor, points: Sequence[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Penultimate features and the activations at ``points`` (in that order), one pass.

        Forward hooks, added for this call only, read the activations: every backbone gets
        the mechanism from its ``point_modules()`` without a second forward path to keep in step.
        """
        modules = self.point_modules()
        unknown = [p for p in points if p not in modules]
        if unknown:
            raise ValueError(f"unknown insertion point(s) {', '.join(unknown)} (valid: {', '.join(modules)})")
        acts: dict[str, torch.Tensor] = {}
        handles = [modules[p].register_forward_hook(_recorder(acts, p)) for p in points]
        try:
            z = self.forward_features(x)
        finally:
            for h in handles:
                h.remove()
        return z, [acts[p] for p in points]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _recorder(store: dict, name: str):
    def hook(_module, _inputs, output):
        store[name] = output

    return hook


# --- small CNN for 28×28 ---------------------------------------------------------------


class SmallCNN(Backbone):
    """Two conv blocks (32, 64 channels) and a 128-unit hidden layer; A3 after each block."""

    insertion_points = ("block1", "block2")

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, a3: A3Config | None = None):
        super().__init__(a3)
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.a3_block1 = self._a3("block1", 32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.a3_block2 = self._a3("block2", 64)
        side = input_size // 4
        self.fc = nn.Linear(64 * side * side, 128)
        self.head = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a3_block1(F.max_pool2d(F.relu(self.conv1(x)), 2))
        x = self.a3_block2(F.max_pool2d(F.relu(self.conv2(x)), 2))
        return F.relu(self.fc(x.flatten(1)))

    def point_modules(self) -> dict[str, nn.Module]:
        return {"block1": self.a3_block1, "block2": self.a3_block2}


class SmallCNNDeep(Backbone):
    """Six 3×3 conv-BatchNorm-ReLU blocks (16, 16, 32, 32, 64, 64 channels; 2×2 max-pool
    after every second) and a 128-unit hidden layer ``fc``: seven insertion points, so a CrossMax
    self-ensemble gets 7 heads + the classifier = 8 predictors (the paper's k = 3 of 8)
    at about the cost of ``smallcnn`` on CPU."""

    insertion_points = ("block1", "block2", "block3", "block4", "block5", "block6", "fc")
    widths = (16, 16, 32, 32, 64, 64)

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, a3: A3Config | None = None):
        super().__init__(a3)
        convs, bns, a3s = [], [], []
        c_in = in_channels
        for i, w in enumerate(self.widths):
            convs.append(nn.Conv2d(c_in, w, 3, padding=1, bias=False))
            bns.append(nn.BatchNorm2d(w))  # six plain ReLU convs barely start learning with SGD
            a3s.append(self._a3(f"block{i + 1}", w))
            c_in = w
        self.convs = nn.ModuleList(convs)
        self.bns = nn.ModuleList(bns)
        self.a3s = nn.ModuleList(a3s)
        side = input_size // 8  # three 2×2 pools (floor, as max_pool2d does)
        self.fc = nn.Linear(self.widths[-1] * side * side, 128)
        self.a3_fc = self._a3("fc", 128)
        self.head = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, bn, a3) in enumerate(zip(self.convs, self.bns, self.a3s)):
            x = F.relu(bn(conv(x)))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
            x = a3(x)
        return self.a3_fc(F.relu(self.fc(x.flatten(1))))

    def point_modules(self) -> dict[str, nn.Module]:
        return {**{f"block{i + 1}": a3 for i, a3 in enumerate(self.a3s)}, "fc": self.a3_fc}


# --- PreAct ResNet-18 (He et al. 2016), the usual CIFAR variant ---------------------------


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class _Staged(Backbone):
    """A stem ``conv1``, residual ``stages`` with an A3 point after each, BN-ReLU, global
    average pooling: the shape PreAct ResNet-18 and WideResNet-28-10 share."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for stage, a3 in zip(self.stages, self.a3s):
            out = a3(stage(out))
        out = F.relu(self.bn(out))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def point_modules(self) -> dict[str, nn.Module]:
        return {f"stage{i + 1}": a3 for i, a3 in enumerate(self.a3s)}


class PreActResNet18(_Staged):
    insertion_points = ("stage1", "stage2", "stage3", "stage4")

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, a3: A3Config | None = None):
        super().__init__(a3)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        in_planes = 64
        stages, a3s = [], []
        for i, (w, s) in enumerate(zip(widths, strides)):
            stages.append(nn.Sequential(PreActBlock(in_planes, w, s), PreActBlock(w, w, 1)))
            a3s.append(self._a3(f"stage{i + 1}", w))
            in_planes = w
        self.stages = nn.ModuleList(stages)
        self.a3s = nn.ModuleList(a3s)
        self.bn = nn.BatchNorm2d(512)
        self.head = nn.Linear(512, num_classes)



# --- WideResNet-28-10 (Zagoruyko & Komodakis 2016) ------------------------------------------


# WideResNet's block is the pre-activation basic block (the same modules, the same forward).
WideBlock = PreActBlock


class WideResNet(_Staged):
    insertion_points = ("stage1", "stage2", "stage3")

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        a3: A3Config | None = None,
        depth: int = 28,
        widen: int = 10,
    ):
        super().__init__(a3)
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        in_planes = 16
        stages, a3s = [], []
        for i, (w, s) in enumerate(zip(widths, (1, 2, 2))):
            blocks = [WideBlock(in_planes if j == 0 else w, w, s if j == 0 else 1) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            a3s.append(self._a3(f"stage{i + 1}", w))
            in_planes = w
        self.stages = nn.ModuleList(stages)
        self.a3s = nn.ModuleList(a3s)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.head = nn.Linear(widths[-1], num_classes)



# --- small ViT, patch 4 -------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention with an explicit pre-softmax scale (Jain & Dutta, CVPR 2024).

    attention = softmax(s · λ · QKᵀ/√d) V, where

    - ``trained_scale`` (s, a buffer saved in checkpoints) is part of the model: 1 normally,
      the scales found by the AAS search for a model trained with AAS-AT;
    - ``logit_scale`` (λ, a plain attribute, never saved) is runtime state: 1 normally,
      changed only for the duration of an attack (``attn-scale``, ``aas``) through
      :func:`a3bench.models.attention.attention_scales`;
    - ``record_logits``: when a list, each forward appends its pre-softmax logits
      (N×heads×T×T, detached) to it (saturation statistics).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            from a3bench.errors import ConfigError

            raise ConfigError(f"dim {dim} must be a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("trained_scale", torch.ones(()))
        self.logit_scale: torch.Tensor | float = 1.0
        self.record_logits: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * (self.trained_scale * self.logit_scale / math.sqrt(c // self.heads))
        if self.record_logits is not None:
            self.record_logits.append(logits.detach())
        out = logits.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, c))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before AAS-AT carry no trained scale: theirs was 1
        state_dict.setdefault(prefix + "trained_scale", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, a3: nn.Module):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.a3 = a3  # on the MLP branch's output (tokens N×T×C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.a3(self.mlp(self.norm2(x)))


class SmallViT(Backbone):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        a3: A3Config | None = None,
        patch: int = 4,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_dim: int = 384,
    ):
        self.insertion_points = tuple(f"block{i + 1}" for i in range(depth))
        super().__init__(a3)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, patch)
        n_tokens = (input_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_dim, self._a3(f"block{i + 1}", dim, channel_dim=-1)) for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def point_modules(self) -> dict[str, nn.Module]:
        # the whole block's output (tokens N×T×C), not the MLP branch where A3 sits
        return {f"block{i + 1}": block for i, block in enumerate(self.blocks)}


@register_model("smallcnn", input_size=28, in_channels=1)
def smallcnn(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, a3: A3Config | None = None) -> Backbone:
    return SmallCNN(num_classes, in_channels, input_size, a3)


@register_model("smallcnn_deep", input_size=28, in_channels=1)
def smallcnn_deep(num_classes: int = 10, in_channels: int = 1, input_size: int = 28, a3: A3Config | None = None) -> Backbone:
    return SmallCNNDeep(num_classes, in_channels, input_size, a3)


@register_model("preact_resnet18", input_size=32, in_channels=3)
def preact_resnet18(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, a3: A3Config | None = None) -> Backbone:
    return PreActResNet18(num_classes, in_channels, input_size, a3)


@register_model("wrn28_10", input_size=32, in_channels=3)
def wrn28_10(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, a3: A3Config | None = None) -> Backbone:
    return WideResNet(num_classes, in_channels, input_size, a3, depth=28, widen=10)


@register_model("vit_small_p4", input_size=32, in_channels=3)
def vit_small_p4(num_classes: int = 10, in_channels: int = 3, input_size: int = 32, a3: A3Config | None = None,
                 dim: int = 192, depth: int = 6, heads: int = 3, mlp_dim: int = 384) -> Backbone:
    """Patch-4 ViT; ``dim``, ``depth``, ``heads``, ``mlp_dim`` are architecture options (``model.options``)."""
    return SmallViT(num_classes, in_channels, input_size, a3, patch=4, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim)
