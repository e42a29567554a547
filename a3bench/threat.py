"""Threat models: (norm, eps, bounds). The one projection and the one random start that
every attack (and adversarial training) uses live here.

eps is a float everywhere inside a3bench; "8/255" is parsed at the edge by
:func:`parse_eps` and shown by :func:`format_eps`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import torch

from a3bench.errors import AttackError, excerpt

BUDGET_TOL = 1e-6


class Norm(str, Enum):
    LINF = "Linf"
    L2 = "L2"


def parse_norm(text: str | Norm) -> Norm:
    if isinstance(text, Norm):
        return text
    aliases = {"linf": Norm.LINF, "l_inf": Norm.LINF, "inf": Norm.LINF, "l2": Norm.L2, "l_2": Norm.L2}
    try:
        return aliases[str(text).strip().lower()]
    except KeyError:
        raise AttackError(f"unknown norm {excerpt(text)} (valid: Linf, L2)") from None


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
# Far above any image's diameter in either norm (L2 of 3×4096×4096 pixels in [0, 1] is ≈ 7094).
MAX_EPS = 1e6


def parse_eps(text: str | float | int) -> float:
    """Parse ``8/255``, ``0.1`` or ``2e-3`` into a float ≥ 0; anything else is an AttackError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        try:
            value = float(text)
        except OverflowError:  # an int of hundreds of digits
            value = math.inf
    else:
        s = str(text).strip()
        m = re.fullmatch(rf"({_NUMBER})(?:\s*/\s*({_NUMBER}))?", s)
        if not m:
            raise AttackError(f"eps {excerpt(text)} is not a number or a fraction like 8/255")
        num = float(m.group(1))
        if m.group(2) is not None:
            den = float(m.group(2))
            if den == 0:
                raise AttackError(f"eps {excerpt(text)} divides by zero")
            value = num / den
        else:
            value = num
    if not math.isfinite(value) or value < 0:
        raise AttackError(f"eps must be a finite number ≥ 0, got {excerpt(text)}")
    if value > MAX_EPS:
        raise AttackError(f"eps {excerpt(text, 30)} is larger than {MAX_EPS:g}: pixels lie in [0, 1], so no budget needs more "
                          "(and float32 cannot hold every budget)")
    return value


MAX_EPS_VALUES = 1000


def parse_eps_list(text: str) -> list[float]:
    """``0,0.05,0.1`` or ``START:STOP:N`` (N evenly spaced values, both ends included)."""
    s = str(text).strip()
    if s.count(":") == 2:
        start, stop, n = s.split(":")
        lo, hi = parse_eps(start), parse_eps(stop)
        try:
            count = int(n)
        except ValueError:
            raise AttackError(f"eps range {excerpt(text)}: N must be an integer") from None
        if count < 1 or hi < lo:
            raise AttackError(f"eps range {excerpt(text)}: need N ≥ 1 and STOP ≥ START")
        if count > MAX_EPS_VALUES:  # a list of N floats is built: N = 10**9 would claim gigabytes
            raise AttackError(f"eps range {excerpt(text)}: at most {MAX_EPS_VALUES} values")
        if count == 1:
            return [lo]
        return [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    parts = [part for part in s.split(",") if part.strip()]
    if len(parts) > MAX_EPS_VALUES:
        raise AttackError(f"{len(parts)} eps values: at most {MAX_EPS_VALUES}")
    values = [parse_eps(part) for part in parts]
    if not values:
        raise AttackError(f"no eps values in {excerpt(text)}")
    return sorted(set(values))


def format_eps(eps: float) -> str:
    """Show eps as k/255 when it is one (8/255), else with 6 significant digits (0.1, 0.0313725)."""
    k = eps * 255
    if eps > 0 and abs(k - round(k)) < 1e-6 and eps < 1:
        return f"{int(round(k))}/255"
    return f"{eps:.6g}"


# Customary budgets when no eps is given and the checkpoint does not say (docs/attacks.md).
DEFAULT_EPS: dict[tuple[str, str], float] = {
    ("cifar10", "Linf"): 8 / 255,
    ("cifar100", "Linf"): 8 / 255,
    ("cifar10", "L2"): 0.5,
    ("cifar100", "L2"): 0.5,
    ("fmnist", "Linf"): 0.1,
    ("fmnist", "L2"): 1.5,
    ("mnist", "Linf"): 0.3,
    ("mnist", "L2"): 2.0,
}


def default_eps(dataset: str, norm: str | Norm, meta: dict | None = None) -> float | None:
    """The eps a checkpoint was trained and evaluated at (same norm; ``meta`` is its metadata),
    else the dataset's customary one (:data:`DEFAULT_EPS`); None when neither is known."""
    norm = parse_norm(norm).value
    metrics = (meta or {}).get("metrics") or {}
    if metrics.get("norm") == norm and isinstance(metrics.get("eps"), (int, float)) and not isinstance(metrics["eps"], bool):
        return float(metrics["eps"])
    return DEFAULT_EPS.get((dataset, norm))


def _per_example_norm(d: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = d.flatten(1)
    return flat.abs().amax(dim=1) if norm is Norm.LINF else flat.norm(p=2, dim=1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class ThreatModel:
    norm: Norm
    eps: float
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", parse_norm(self.norm))
        object.__setattr__(self, "eps", parse_eps(self.eps))

    @property
    def label(self) -> str:
        return f"{self.norm.value}, eps={format_eps(self.eps)}"

    def with_eps(self, eps: float) -> "ThreatModel":
        return ThreatModel(self.norm, eps, self.lower, self.upper)

    def distance(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _per_example_norm(x_adv - x, self.norm)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nearest point (for Linf exactly; radial for L2) in the eps-ball around x ∩ [lower, upper]."""
        delta = x_adv - x
        if self.norm is Norm.LINF:
            delta = delta.clamp(-self.eps, self.eps)
        else:
            n = _per_example_norm(delta, Norm.L2)
            factor = torch.where(n > self.eps, self.eps / (n + 1e-12), torch.ones_like(n))
            delta = delta * _view(factor, delta)
        return (x + delta).clamp(self.lower, self.upper)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """One steepest-ascent step of length ``step_size`` in the threat model's norm."""
        if self.norm is Norm.LINF:
            return x_adv + step_size * grad.sign()
        g = _per_example_norm(grad, Norm.L2)
        return x_adv + step_size * grad / _view(g + 1e-12, grad)

    def random_start(
        self,
        x: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """A uniformly random point of the ball (Linf: the cube; L2: uniform in the ball).

        With ``seeds`` (one per example) each example's noise depends only on its own seed,
        so results do not depend on batch composition (resume, eps cascades, sharding).
        """
        if self.eps == 0:
            return x.clone()
        shape = x.shape[1:]
        if seeds is not None:
            noise = torch.stack([self._unit_noise(shape, torch.Generator().manual_seed(int(s))) for s in seeds])
        else:
            gen_device = generator.device if generator is not None else x.device
            noise = torch.stack([self._unit_noise(shape, generator, gen_device) for _ in range(x.shape[0])])
        return self.project(x + self.eps * noise.to(x.device, x.dtype), x)

    def _unit_noise(self, shape, generator, device="cpu") -> torch.Tensor:
        if self.norm is Norm.LINF:
            return torch.rand(shape, generator=generator, device=device) * 2 - 1
        d = torch.randn(shape, generator=generator, device=device)
        r = torch.rand((), generator=generator, device=device) ** (1.0 / d.numel())
        return d / (d.norm() + 1e-12) * r

    def violations(self, x_adv: torch.Tensor, x: torch.Tensor, tol: float = BUDGET_TOL) -> torch.Tensor:
        """Bool per example: outside the eps-ball or outside [lower, upper] by more than tol."""
        outside_ball = self.distance(x_adv, x) > self.eps + tol
        flat = x_adv.flatten(1)
        outside_box = (flat < self.lower - tol).any(dim=1) | (flat > self.upper + tol).any(dim=1)
        return outside_ball | outside_box | ~torch.isfinite(flat).all(dim=1)


def example_seeds(seed: int, indices: Sequence[int] | torch.Tensor, salt: int = 0) -> list[int]:
    """Deterministic per-example seeds from a run seed, dataset indices and a salt (restart id)."""
    idx = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
    return [(seed * 1_000_003 + int(i) * 7_919 + salt * 104_729) % (2**62) for i in idx]
