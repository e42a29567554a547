"""Attention layers as runtime state: pre-softmax scales and saturation (Jain & Dutta, CVPR 2024).

An *attention layer* is any module with a ``logit_scale`` attribute that its forward
multiplies into the pre-softmax logits: softmax(λ·QKᵀ/√d)V. a3bench's own
:class:`~a3bench.models.backbones.Attention` is one; a user's module becomes one by
honouring the same attribute (and, optionally, ``trained_scale`` and ``record_logits``).

- :func:`attention_scales` sets λ per block for a ``with`` block and restores it, also
  when the block raises (the ``attn-scale`` and ``aas`` attacks);
- :func:`trained_attention_scales` / :func:`set_trained_attention_scales` read and write
  the scales a model *carries* (AAS-AT), saved in its checkpoint;
- :func:`attention_saturation` counts saturated attention rows per block (the paper's
  Figure 1): rows whose largest pre-softmax logit exceeds the second largest by more
  than a threshold, so that the softmax is one-hot in float32 and passes no gradient;
- :func:`desaturating_scales` the per-block scales that bring each block's mean logit
  gap down to a target (``attn-scale:s=auto``).

>>> with attention_scales(model, [0.1, 0.01, 0.5, 1.0]):
...     logits = model(x)      # crafted on the rescaled model
>>> attention_saturation(model, x).fraction    # per block
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn

from a3bench.models.state import swapped

# The top attention weight is exactly 1.0 in float32 once the gap to the runner-up exceeds
# ln(2^24): exp(-gap) is then below half an ulp of 1. The softmax is one-hot there and its
# Jacobian vanishes to within rounding.
FP32_SATURATION_GAP = 24 * math.log(2)  # ≈ 16.64


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The attention layers of ``model`` in forward order: modules with a runtime
    ``logit_scale`` (a learnable ``logit_scale`` parameter, as CLIP's, is something else)."""
    return [m for m in model.modules() if hasattr(m, "logit_scale") and not isinstance(m.logit_scale, nn.Parameter)]


@contextlib.contextmanager
def attention_scales(model: nn.Module, scales: float | Sequence[float] | Sequence[torch.Tensor] | torch.Tensor) -> Iterator[nn.Module]:
    """Multiply each block's pre-softmax logits by ``scales[i]`` (one number: every block)
    for the ``with`` block; restored on exit, also when it raises. Differentiable: the
    scales may be tensors that require grad (the AAS search)."""
    layers = attention_layers(model)
    if isinstance(scales, torch.Tensor):
        scales = list(scales.unbind()) if scales.dim() else scales
    if isinstance(scales, (list, tuple)):
        with swapped(layers, "logit_scale", values=list(scales)):
            yield model
    else:
        with swapped(layers, "logit_scale", scales):
            yield model


@contextlib.contextmanager
def trained_scales_swapped(model: nn.Module, scales: torch.Tensor) -> Iterator[nn.Module]:
    """Replace the scales the model carries by ``scales`` for the block (the AAS-AT search
    looks for new absolute scales; the model's own stay untouched until it is done)."""
    layers = attention_layers(model)
    with swapped(layers, "trained_scale", values=list(scales.unbind())):
        yield model


def trained_attention_scales(model: nn.Module) -> list[float]:
    """The pre-softmax scales the model carries, one per block (1.0 unless trained with AAS-AT)."""
    return [float(getattr(m, "trained_scale", 1.0)) for m in attention_layers(model)]


@torch.no_grad()
def set_trained_attention_scales(model: nn.Module, scales: Sequence[float] | torch.Tensor) -> None:
    """Re-initialise the scales the model carries (AAS-AT); they are saved with its weights."""
    layers = attention_layers(model)
    values = [float(s) for s in (scales.tolist() if isinstance(scales, torch.Tensor) else scales)]
    if len(values) != len(layers):
        raise ValueError(f"{len(values)} scales for {len(layers)} attention layers")
    for layer, value in zip(layers, values):
        if not isinstance(getattr(layer, "trained_scale", None), torch.Tensor):
            raise TypeError(f"{type(layer).__name__} carries no trained_scale buffer")
        layer.trained_scale.fill_(value)


@contextlib.contextmanager
def recorded_attention_logits(model: nn.Module) -> Iterator[list[list[torch.Tensor]]]:
    """Collect each attention layer's pre-softmax logits during the block: one list per layer."""
    layers = [m for m in attention_layers(model) if hasattr(m, "record_logits")]
    records: list[list[torch.Tensor]] = [[] for _ in layers]
    with swapped(layers, "record_logits", values=records):
        yield records


@dataclass
class SaturationStats:
    """Saturated attention rows per block (Jain & Dutta 2024, Figure 1).

    A row is one (example, head, query token); it is saturated when its largest
    pre-softmax logit exceeds the second largest by more than ``threshold``.
    """

    threshold: float
    rows: list[int] = field(default_factory=list)  # attention rows per block
    saturated: list[int] = field(default_factory=list)  # saturated rows per block
    mean_gap: list[float] = field(default_factory=list)  # mean top-1 − top-2 logit gap per block
    max_gap: list[float] = field(default_factory=list)

    @property
    def fraction(self) -> list[float]:
        """Saturated share of the rows, per block (0..1)."""
        return [s / r if r else 0.0 for s, r in zip(self.saturated, self.rows)]

    @property
    def total_fraction(self) -> float:
        return sum(self.saturated) / max(sum(self.rows), 1)

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold,
            "rows": list(self.rows),
            "saturated": list(self.saturated),
            "fraction": self.fraction,
            "mean_gap": list(self.mean_gap),
            "max_gap": list(self.max_gap),
        }


@torch.no_grad()
def attention_saturation(
    model: nn.Module, x: torch.Tensor, *, threshold: float = FP32_SATURATION_GAP, batch_size: int = 256
) -> SaturationStats:
    """Count saturated attention rows of ``model`` on inputs ``x`` (N×C×H×W, [0,1]), per block.

    ``threshold`` defaults to ln(2^24) ≈ 16.6: beyond it the top attention weight is 1.0 in
    float32 and the softmax passes (almost) no gradient. Empty stats for a model without
    attention layers that record their logits.
    """
    stats: SaturationStats | None = None
    for i in range(0, len(x), batch_size):
        with recorded_attention_logits(model) as records:
            model(x[i : i + batch_size])
        if stats is None:
            n = len(records)
            stats = SaturationStats(threshold, [0] * n, [0] * n, [0.0] * n, [0.0] * n)
        for b, per_call in enumerate(records):
            for logits in per_call:
                if logits.shape[-1] < 2:
                    continue
                top2 = logits.float().topk(2, dim=-1).values
                gap = (top2[..., 0] - top2[..., 1]).flatten()
                stats.mean_gap[b] += float(gap.sum())  # summed here, divided below
                stats.max_gap[b] = max(stats.max_gap[b], float(gap.max()))
                stats.rows[b] += gap.numel()
                stats.saturated[b] += int((gap > threshold).sum())
    if stats is None:
        return SaturationStats(threshold)
    stats.mean_gap = [g / r if r else 0.0 for g, r in zip(stats.mean_gap, stats.rows)]
    return stats


DESATURATED_GAP = 3.0  # top-1 vs top-2 attention weight ≈ 0.95 : 0.05 — peaked, but with a gradient


def desaturating_scales(model: nn.Module, x: torch.Tensor, *, target_gap: float = DESATURATED_GAP, low: float = 1e-7) -> list[float]:
    """Per block, the pre-softmax scale min(1, target_gap / mean gap) on inputs ``x``: it
    shrinks each block's mean top-1 − top-2 logit gap to ``target_gap`` and leaves blocks
    that are already softer alone. One forward pass."""
    if not target_gap > 0:
        raise ValueError("target_gap must be > 0")
    stats = attention_saturation(model, x)
    return [max(low, min(1.0, target_gap / g)) if g > 0 else 1.0 for g in stats.mean_gap]
