"""The attack contract. One base class owns the call; subclasses only write ``run()``.

Attacks work on [0,1] pixels (the model owns normalisation), return the adversarial
examples *and* a success mask, and count the forward/backward passes they spent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from a3bench.threat import ThreatModel


@dataclass
class AttackOutput:
    x_adv: torch.Tensor  # N×C×H×W, inside the threat model
    success: torch.Tensor  # bool N: the attack's own claim that x_adv is misclassified
    forward_passes: int = 0  # summed over examples
    backward_passes: int = 0


class Attack(ABC):
    """Base class. ``attack(model, x, y, threat, seed=, indices=)`` → :class:`AttackOutput`.

    ``indices`` are the examples' positions in the evaluation set: randomness is drawn
    per example from (seed, index), so an example's outcome does not depend on which
    other examples share its batch.
    """

    name: str = "attack"

    def __call__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        seed: int = 0,
        indices: torch.Tensor | None = None,
    ) -> AttackOutput:
        if indices is None:
            indices = torch.arange(x.shape[0])
        if x.shape[0] == 0:
            return AttackOutput(x.clone(), torch.zeros(0, dtype=torch.bool, device=x.device))
        if threat.eps == 0:
            with torch.no_grad():
                success = model(x).argmax(1) != y
            return AttackOutput(x.clone(), success, forward_passes=x.shape[0])
        return self.run(model, x, y, threat, seed=seed, indices=indices)

    @abstractmethod
    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        seed: int,
        indices: torch.Tensor,
    ) -> AttackOutput: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
