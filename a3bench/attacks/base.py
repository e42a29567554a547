"""The attack contract. One base class owns the call; subclasses only write ``run()``.

Attacks work on [0,1] pixels (the model owns normalisation), return the adversarial
examples *and* a success mask, and count the forward/backward passes they spent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from a3bench.flags import FlagKind
from a3bench.schema import AttackKind
from a3bench.threat import ThreatModel

__all__ = ["Attack", "AttackContext", "AttackKind", "AttackOutput"]


@dataclass
class AttackOutput:
    x_adv: torch.Tensor  # N×C×H×W, inside the threat model
    success: torch.Tensor  # bool N: the attack's own claim that x_adv is misclassified
    forward_passes: int = 0  # summed over examples
    backward_passes: int = 0
    # (K+1)×N: the attack's own loss at iterate 0 (the start) ... K, NaN after an example
    # stopped early. Only filled when the attack was asked (``Attack.trace_loss``) and can:
    # None otherwise (pyautoattack's attacks never can). Read by the indicators of attack
    # failure (a3bench.eval.audit).
    loss_trace: torch.Tensor | None = None


@dataclass
class AttackContext:
    """What an attack may need beyond (x, y): set up once per evaluation by the runner.

    ``model`` is the deployed model being evaluated (eval mode, parameters frozen);
    ``loaded`` the :class:`~a3bench.models.LoadedModel` it came from, when known (its
    ``meta``/``card`` tell an adaptive attack about A3, surrogates, ...).
    """

    model: nn.Module
    threat: ThreatModel
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    batch_size: int = 256
    num_classes: int | None = None
    dataset: str | None = None
    data_dir: str | None = None  # where the dataset's files are (the --data-dir given), for attacks that need its train split
    loaded: Any = None  # LoadedModel | None (typed loosely: attacks must not import models/)
    probe: torch.Tensor | None = None  # a few clean inputs an attack may use to inspect the model (e.g. bpda)


class Attack(ABC):
    """Base class. ``attack(model, x, y, threat, seed=, indices=)`` → :class:`AttackOutput`.

    ``indices`` are the examples' positions in the evaluation set: randomness is drawn
    per example from (seed, index), so an example's outcome does not depend on which
    other examples share its batch.
    """

    name: str = "attack"
    group: str | None = None  # set for the components of a composite name ("autoattack")
    kind: AttackKind = AttackKind.WHITE_BOX
    # The diagnostic flag raised when this attack breaks more than 1 point of the examples
    # that the white-box attacks before it in the cascade missed (None: it proves nothing
    # by itself). Black-box attacks reveal misleading gradients, transfer attacks masked
    # ones, attention rescaling a saturated softmax (docs/diagnostics.md).
    reveals: FlagKind | None = None
    # Ask for AttackOutput.loss_trace (a loss per iterate and example). Off by default so
    # nothing costs time unseen; attacks built on pgd_loop honour it, others ignore it.
    trace_loss: bool = False
    # A component of AutoAttack itself (its version, "standard" or "rand"), set by the
    # composite that AutoAttack is registered as: AutoAttack's number is read off these.
    autoattack: str | None = None
    # Runs on query answers only (Square, SPSA): the execution layer may answer its forward
    # passes in inference mode (docs/performance.md).
    queries_only: bool = False

    @property
    def needs_input_gradient(self) -> bool:
        """Follows the deployed model's own input gradient: skipped, with the reason, when
        the model's output has no autograd path from its input
        (docs/diagnostics.md#no-input-gradient). Attacks that bridge or replace the
        gradient (bpda, bpda-graph) and those that never use it (black-box, transfer) say False."""
        return self.kind in (AttackKind.WHITE_BOX, AttackKind.EOT)

    @property
    def handles_randomness(self) -> bool:
        """Averages its gradient over the model's randomness (EOT, AutoAttack rand)."""
        return self.kind is AttackKind.EOT

    def applies_to(self, ctx: AttackContext) -> str | None:
        """None if the attack applies to ``ctx.model``; else the reason it is skipped.

        A skipped attack is recorded with ``status="skipped"`` and the reason as its note
        (e.g. an A3-specific attack on a model without A3) — it is not an error.
        """
        return None

    def setup(self, ctx: AttackContext) -> None:
        """Called once per evaluation before the first batch (build surrogates, wrappers ...)."""

    def config(self) -> dict[str, Any]:
        """The options that define this attack (stored in the record and the resume state)."""
        return {}

    def max_passes(self) -> tuple[int, int, int] | None:
        """(forward, backward) passes per example at most, and fixed forward passes independent
        of the examples — for projected costs and ETAs; None when the attack cannot say."""
        return None

    def record_note(self) -> str | None:
        """What the attack learned about the model during the run, for its record's note
        (where a gradient lies, a surrogate's training budget ...); None: nothing to say."""
        return None

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
