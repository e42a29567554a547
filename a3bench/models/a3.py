"""The A3 layer: Activation Amplification and Attenuation (docs/architecture.md#the-a3-module).

For an activation ``a`` with channel axis C (conv N×C×H×W, tokens N×T×C)::

    A3(a) = a ⊙ exp(σ · λ · m ⊙ r(a))

``θ`` (C mask logits) and ``ρ`` (one strength, ``λ = softplus(ρ)``) are the only
parameters: C+1 per layer. ``σ`` is the *mode*: +1 amplify, −1 attenuate (deployed),
0 off. The mode is runtime state, switched with :func:`a3_mode`, never by rebuilding
the model.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.errors import ConfigError, excerpt
from a3bench.limits import check_number
from a3bench.models.state import swapped


class A3Mode(str, Enum):
    AMPLIFY = "amplify"
    ATTENUATE = "attenuate"
    OFF = "off"

    @property
    def sign(self) -> float:
        return {A3Mode.AMPLIFY: 1.0, A3Mode.ATTENUATE: -1.0, A3Mode.OFF: 0.0}[self]


EVAL_MASKS = ("soft", "hard", "stochastic")
SCALES = ("mean-ratio", "max-ratio")
GRANULARITIES = ("channel", "layer")


@dataclass(frozen=True)
class A3Config:
    """Everything about the A3 layer that the paper leaves open is a field here.

    placement: "all" or a list of insertion-point names of the backbone
      (e.g. ``["block1", "block2"]``); an empty list means no A3 layer.
    granularity: "channel" (one mask logit per channel) or "layer" (one shared logit).
    scale: r(a) — "mean-ratio" (channel mean |a| / mean over channels) or
      "max-ratio" (channel max |a| / mean over channels of the channel max).
    eval_mask: "soft" sigmoid(θ/τ), "hard" 1[θ>0], or "stochastic" (Gumbel sample
      at eval too, so that EOT can be tested).
    tau: temperature τ of the binary-concrete mask.
    init_logit: initial θ; init_strength: initial λ (ρ = softplus⁻¹(λ)).
    """

    placement: tuple[str, ...] | str = "all"
    granularity: str = "channel"
    scale: str = "mean-ratio"
    eval_mask: str = "soft"
    tau: float = 0.5
    init_logit: float = 0.0
    init_strength: float = 1.0

    def __post_init__(self) -> None:
        # Read from configs and checkpoints alike: any field may hold anything.
        if isinstance(self.placement, (list, tuple)):
            if not all(isinstance(p, str) for p in self.placement) or len(self.placement) > 1000:
                raise ConfigError(f"a3.placement must be a list of insertion-point names, got {excerpt(self.placement)}")
            object.__setattr__(self, "placement", tuple(self.placement))
        elif self.placement != "all":
            raise ConfigError(f"a3.placement must be 'all' or a list of insertion points, got {excerpt(self.placement)}")
        for name, value, allowed in (
            ("granularity", self.granularity, GRANULARITIES),
            ("scale", self.scale, SCALES),
            ("eval_mask", self.eval_mask, EVAL_MASKS),
        ):
            if not isinstance(value, str) or value not in allowed:
                raise ConfigError(f"a3.{name} must be one of {', '.join(allowed)}; got {excerpt(value)}")
        for name in ("tau", "init_logit", "init_strength"):
            object.__setattr__(self, name, check_number(getattr(self, name), f"a3.{name}", ConfigError))
        if not self.tau > 0:
            raise ConfigError(f"a3.tau must be > 0, got {self.tau}")
        if not self.init_strength > 0:
            raise ConfigError(f"a3.init_strength must be > 0, got {self.init_strength}")

    def places(self, point: str) -> bool:
        return self.placement == "all" or point in self.placement

    def to_dict(self) -> dict:
        d = asdict(self)
        d["placement"] = self.placement if isinstance(self.placement, str) else list(self.placement)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "A3Config":
        if not isinstance(d, dict):
            raise ConfigError(f"a3 must be a mapping, got {excerpt(d)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k if isinstance(k, str) and len(k) <= 40 and k.isprintable() else excerpt(k, 40) for k in d if k not in known)
        if unknown:
            raise ConfigError(f"unknown a3 key(s): {', '.join(unknown[:10])} (valid: {', '.join(sorted(known))})")
        return cls(**d)


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class A3(nn.Module):
    """One A3 layer over ``channels`` channels on ``channel_dim`` (1 for conv, -1 for tokens)."""

    def __init__(self, channels: int, config: A3Config, channel_dim: int = 1) -> None:
        super().__init__()
        self.channels = channels
        self.config = config
        self.channel_dim = channel_dim
        n_logits = channels if config.granularity == "channel" else 1
        self.theta = nn.Parameter(torch.full((n_logits,), float(config.init_logit)))
        self.rho = nn.Parameter(torch.tensor(_inverse_softplus(config.init_strength)))
        self.mode = A3Mode.ATTENUATE
        # Multiplies λ at run time; the a3-scale attack rescales it, never the parameters.
        self.strength_scale: torch.Tensor | float = 1.0
        # BPDA: deployed forward, identity backward (set by a3_straight_through).
        self.straight_through = False

    @property
    def strength(self) -> torch.Tensor:
        return F.softplus(self.rho)

    def mask(self) -> torch.Tensor:
        tau = self.config.tau
        stochastic = self.training or self.config.eval_mask == "stochastic"
        if stochastic:
            u = torch.rand_like(self.theta).clamp_(1e-6, 1 - 1e-6)
            return torch.sigmoid((self.theta + torch.log(u) - torch.log1p(-u)) / tau)
        if self.config.eval_mask == "hard":
            return (self.theta > 0).to(self.theta.dtype)
        return torch.sigmoid(self.theta / tau)

    def scale_factor(self, a: torch.Tensor) -> torch.Tensor:
        """r(a) ≥ 0, shape N×C: per-example channel magnitude relative to the channel mean."""
        cdim = self.channel_dim % a.dim()
        reduce_dims = [d for d in range(1, a.dim()) if d != cdim]
        mag = a.abs()
        if self.config.scale == "max-ratio":
            per_channel = mag.amax(dim=reduce_dims) if reduce_dims else mag
        else:
            per_channel = mag.mean(dim=reduce_dims) if reduce_dims else mag
        return per_channel / (per_channel.mean(dim=1, keepdim=True) + 1e-6)

    def exponent(self, a: torch.Tensor) -> torch.Tensor:
        """λ · m ⊙ r(a), shaped to broadcast against ``a`` (without the mode sign)."""
        e = self.strength * self.strength_scale * self.mask() * self.scale_factor(a)  # N×C
        cdim = self.channel_dim % a.dim()
        shape = [a.shape[0]] + [1] * (a.dim() - 1)
        shape[cdim] = a.shape[cdim]
        return e.reshape(shape)

    def forward(self, a: torch.Tensor, mode: A3Mode | None = None) -> torch.Tensor:
        mode = self.mode if mode is None else mode
        if mode is A3Mode.OFF:
            return a
        out = a * torch.exp(mode.sign * self.exponent(a))
        if self.straight_through:
            return a + (out - a).detach()  # value of A3, gradient of the identity
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mode={self.mode.value}, eval_mask={self.config.eval_mask}"


def a3_layers(model: nn.Module) -> list[A3]:
    return [m for m in model.modules() if isinstance(m, A3)]


def has_a3(model: nn.Module) -> bool:
    return any(isinstance(m, A3) for m in model.modules())


def parse_mode(mode: A3Mode | str) -> A3Mode:
    try:
        return A3Mode(mode)
    except ValueError:
        valid = ", ".join(m.value for m in A3Mode)
        raise ConfigError(f"unknown A3 mode {mode!r} (valid: {valid})") from None


@contextlib.contextmanager
def a3_mode(model: nn.Module, mode: A3Mode | str) -> Iterator[nn.Module]:
    """Switch every A3 layer of ``model`` to ``mode`` for the block; restore on exit.

    >>> with a3_mode(model, "amplify"):
    ...     logits_amp = model(x)
    """
    with swapped(a3_layers(model), "mode", parse_mode(mode)):
        yield model


@contextlib.contextmanager
def a3_strength_scales(model: nn.Module, scales) -> Iterator[nn.Module]:
    """Multiply each A3 layer's λ by ``scales[i]`` for the block (adaptive a3-scale attack)."""
    with swapped(a3_layers(model), "strength_scale", values=list(scales)):
        yield model


@contextlib.contextmanager
def a3_straight_through(model: nn.Module) -> Iterator[nn.Module]:
    """BPDA (Athalye et al. 2018) for A3: forward unchanged, each A3 layer the identity in backward."""
    with swapped(a3_layers(model), "straight_through", True):
        yield model


@dataclass
class A3Summary:
    """What a result record says about a model's A3 layers."""

    n_layers: int
    n_parameters: int
    config: dict | None = field(default=None)


def a3_summary(model: nn.Module) -> A3Summary:
    layers = a3_layers(model)
    n_params = sum(p.numel() for layer in layers for p in layer.parameters())
    config = layers[0].config.to_dict() if layers else None
    return A3Summary(n_layers=len(layers), n_parameters=n_params, config=config)
