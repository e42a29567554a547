"""Model families: what a kind of model needs from training (docs/architecture.md#extending).

A family declares the model's training phases. The training loop (:mod:`a3bench.train.loop`)
asks the model's family for them and asks each phase what it trains, how the model looks
while it trains, how it is put in training mode, which loss it learns with and which extra
metrics it reports — never a phase's or an architecture's name.

Every model belongs to :data:`DEFAULT_FAMILY` (one phase, ``model``: the whole network with
the run's objective; A3 models too, whose extra terms come from ``objective.name``) unless a
registered family claims it: CrossMax self-ensembles with heads (:mod:`a3bench.models.crossmax`)
train their backbone first, then the heads on the frozen backbone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from torch import nn


@dataclass
class PhaseLoss:
    """The loss of a phase that brings its own (``TrainingPhase.runs_objective`` false)."""

    total: torch.Tensor
    logits: torch.Tensor  # of the examples trained on, for the training accuracy


class TrainingPhase:
    """One stage of training. This base is the ordinary one: the whole network, trained with
    the run's objective (``train.method`` and ``objective``), in train mode."""

    name: str = "model"  # what the metrics log and the checkpoint's history call it
    section: str = "train"  # the config section that sets its epochs, optimizer, lr, schedule ...
    # True: the loop crafts training examples with train.method and applies the run's
    # objective (and AAS-AT's re-search); False: :meth:`loss` is the whole loss.
    runs_objective: bool = True
    min_batch: int = 1  # smaller batches (a last, short one) are skipped

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """What this phase trains."""
        return list(model.parameters())

    def view(self, model: nn.Module) -> ContextManager[Any]:
        """The model as this phase trains and monitors it (entered for the whole epoch)."""
        return contextlib.nullcontext()

    def set_train_mode(self, model: nn.Module) -> None:
        model.train()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> PhaseLoss:
        """The phase's own loss on a clean batch (only asked when ``runs_objective`` is false)."""
        raise NotImplementedError(f"phase {self.name} trains with the run's objective")

    @torch.no_grad()
    def metrics(self, model: nn.Module, heldout: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> dict[str, Any]:
        """Extra :class:`~a3bench.train.loop.EpochMetrics` fields after each of its epochs."""
        return {}


class ModelFamily:
    """A kind of model and the training phases it declares."""

    name: str = "default"
    description: str = "any model"  # for messages: which models have its phases
    sections: tuple[str, ...] = ("train",)  # the config sections its phases read

    def claims(self, model: nn.Module) -> bool:
        return True

    def phases(self, model: nn.Module) -> list[TrainingPhase]:
        return [TrainingPhase()]


DEFAULT_FAMILY = ModelFamily()
FAMILIES: list[ModelFamily] = []  # asked in order; the first that claims a model is its family


def register_family(family: ModelFamily) -> ModelFamily:
    if any(f.name == family.name for f in FAMILIES):
        raise ValueError(f"model family {family.name!r} registered twice")
    FAMILIES.append(family)
    return family


def family_of(model: nn.Module) -> ModelFamily:
    return next((f for f in FAMILIES if f.claims(model)), DEFAULT_FAMILY)
