"""``synthetic[:CxHxW]``: small, generated, deterministic and learnable data for tests
(default 1x28x28; 2000 training and 500 test examples, 10 balanced classes)."""

from __future__ import annotations

import re

import torch

from a3bench.data.base import DatasetInfo, ImageDataset, data_error
from a3bench.data.registry import DatasetSource, PathLike, register_source
from a3bench.errors import excerpt

_SYNTH_DEFAULT_SHAPE = (1, 28, 28)
_SYNTH_SEED = 0xA3BE
_SYNTH_SIZES = {"train": 2000, "test": 500}
_SYNTH_CLASSES = 10
_SYNTH_CONTRAST = 0.3  # templates span 0.5 ± 0.15
_SYNTH_NOISE = 0.35  # per-pixel Gaussian noise std


def _synthetic_shape(canon: str) -> tuple[int, int, int]:
    _, sep, spec = canon.partition(":")
    return _parse_synthetic_shape(spec) if sep else _SYNTH_DEFAULT_SHAPE


def _synthetic_info(canon: str) -> DatasetInfo:
    c, h, w = _synthetic_shape(canon)
    return DatasetInfo(
        name=canon,
        num_classes=_SYNTH_CLASSES,
        input_shape=(c, h, w),
        mean=(0.5,) * c,
        std=(0.5,) * c,
        classes=tuple(f"class_{i}" for i in range(_SYNTH_CLASSES)),
    )


def _load_synthetic(canon: str, split: str) -> ImageDataset:
    """Each class is a fixed smooth random template; examples add brightness jitter and noise.

    Everything comes from fixed-seed ``torch.Generator``s, so the same call gives
    identical tensors; train and test share templates but not noise.
    """
    c, h, w = _synthetic_shape(canon)
    gen = torch.Generator().manual_seed(_SYNTH_SEED)
    coarse = 0.5 + _SYNTH_CONTRAST * (torch.rand(_SYNTH_CLASSES, c, 4, 4, generator=gen) - 0.5)
    # Low-frequency templates: learnable by a linear model (about 95 % test accuracy),
    # yet low-contrast, so that small perturbations can flip predictions.
    templates = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    n = _SYNTH_SIZES[split]
    gen = torch.Generator().manual_seed(_SYNTH_SEED + (1 if split == "train" else 2))
    labels = (torch.arange(n) % _SYNTH_CLASSES)[torch.randperm(n, generator=gen)]  # balanced, shuffled
    brightness = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    noise = torch.randn(n, c, h, w, generator=gen) * _SYNTH_NOISE
    x = (templates[labels] + brightness + noise).clamp_(0.0, 1.0)
    images = x.mul_(255.0).round_().to(torch.uint8)
    return ImageDataset(images, labels.to(torch.int64), _synthetic_info(canon))


def _parse_synthetic_shape(spec: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*", spec.lower())
    if not m:
        raise data_error(f"synthetic shape must look like CxHxW (e.g. synthetic:3x32x32), got {excerpt(spec)}")
    c, h, w = (int(g) for g in m.groups())
    if c not in (1, 3) or not (4 <= h <= 512 and 4 <= w <= 512):
        raise data_error(f"synthetic shape {c}x{h}x{w} unsupported: C must be 1 or 3, H and W between 4 and 512")
    return c, h, w


class SyntheticSource(DatasetSource):
    name = "synthetic"
    variants = "synthetic:CxHxW"
    takes_argument = True

    def canonical(self, argument: str | None) -> str:
        if argument is None:
            return "synthetic"
        shape = _parse_synthetic_shape(argument)
        return "synthetic" if shape == _SYNTH_DEFAULT_SHAPE else "synthetic:{}x{}x{}".format(*shape)

    def info_for(self, canon: str) -> DatasetInfo:
        return _synthetic_info(canon)

    def load(self, canon: str, split: str, data_dir: PathLike = None, *, download: bool = True) -> ImageDataset:
        return _load_synthetic(canon, split)


register_source(SyntheticSource())
