"""The strongest white-box attacks through a bypass (docs/attacks.md#when-gradients-lie).

``bpda``, ``bpda-a3`` and ``bpda-graph`` get past a gradient that lies by replacing it —
straight-through modules, A3 layers the identity in the backward pass, bridges over a
located lie — while the forward values stay the deployed model's. PGD-50 through the
bypass is their default; ``base=apgd-ce|apgd-dlr|apgd-t`` runs AutoAttack's own APGD
(pyautoattack, AutoAttack's settings, ``restarts=`` random restarts) over the bypassed
model instead, so that an honest lie-free network and a liar get the same strength of
attack. The judge re-checks on the deployed model, as always.

>>> attack = build_attack("bpda:base=apgd-ce:restarts=3")[0]
>>> out = attack(model, x, y, ThreatModel("Linf", 0.1), seed=0)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from a3bench.errors import AttackError

APGD_BASES = ("apgd-ce", "apgd-dlr", "apgd-t")
BASE_OPTIONS = ("base", "restarts")


class Bypassed(nn.Module):
    """``model`` run inside ``bypass()``: the deployed values, the gradients through the bypass."""

    def __init__(self, model: nn.Module, bypass: Callable[[], AbstractContextManager]) -> None:
        super().__init__()
        self.model, self.bypass = model, bypass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.bypass():
            return self.model(x)


def apgd_component(base: str, restarts: int):
    """AutoAttack's ``base`` component with ``restarts`` random restarts."""
    from a3bench.attacks.autoattack import AutoAttackComponent

    return AutoAttackComponent(base, restarts=restarts)


def parse_base(spec, default_steps: int) -> tuple[str, int]:
    """``base=pgd-K`` (or ``steps=``) or ``base=apgd-ce|apgd-dlr|apgd-t`` → (base, steps);
    AutoAttack's components keep their own steps, step size and loss."""
    from a3bench.attacks.registry import int_option

    base = (spec.option("base") or f"pgd-{default_steps}").strip().lower()
    if base.startswith("pgd-") and base[4:].isdigit() and int(base[4:]) >= 1:
        if spec.option("base") is not None and spec.option("steps") is not None:
            raise AttackError(f"attack {spec.text!r}: give the steps in base=pgd-K or steps=, not both")
        return "pgd", int_option(spec, "steps", int(base[4:]))
    if base in APGD_BASES:
        given = [k for k in ("steps", "step", "loss") if spec.option(k) is not None]
        if given:
            raise AttackError(f"attack {spec.text!r}: {', '.join(given)} are AutoAttack's own for base={base}")
        return base, 100
    raise AttackError(f"attack {spec.text!r}: base must be pgd-K or one of {', '.join(APGD_BASES)}, got {base!r}")


class BypassBase:
    """Mixin for a PGD attack with a bypass: ``base`` PGD or an APGD component run on
    :meth:`bypassed`. Subclasses call :meth:`_init_base` and implement ``bypassed(model)``."""

    base: str = "pgd"
    _component = None

    def _init_base(self, base: str) -> None:
        if base != "pgd" and base not in APGD_BASES:
            raise AttackError(f"{self.name}: base must be pgd-K or one of {', '.join(APGD_BASES)}, got {base!r}")
        self.base = base
        self._component = apgd_component(base, self.restarts) if base != "pgd" else None

    def base_config(self, pgd_config: dict) -> dict:
        return pgd_config if self._component is None else {"base": self.base, "restarts": self.restarts}

    def base_max_passes(self, pgd_passes: tuple[int, int, int]) -> tuple[int, int, int]:
        return pgd_passes if self._component is None else self._component.max_passes()

    def bypassed(self, model: nn.Module) -> nn.Module:  # pragma: no cover — every subclass has its own
        raise NotImplementedError

    def run_base(self, pgd_run, model, x, y, threat, *, seed, indices):
        """PGD through the bypass (``pgd_run``), or the APGD component over the bypassed model."""
        if self._component is None:
            return pgd_run(model, x, y, threat, seed=seed, indices=indices)
        return self._component.run(self.bypassed(model), x, y, threat, seed=seed, indices=indices)
