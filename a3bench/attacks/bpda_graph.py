"""Graph-level BPDA: PGD through straight-through bridges over the lies that
:func:`~a3bench.attacks.graph.locate_lie` finds anywhere in the forward graph.

Today's ``bpda`` replaces leaf *modules* whose local gradient is exactly zero. A lie
can sit anywhere — in a functional call or a custom ``autograd.Function`` between two
modules inside a ``forward``, deep in a block — and need not be zero: the wrong sign,
noise, a shattered or scaled gradient. ``bpda-graph`` locates each place where the
gradient vanishes or stops matching finite differences, and where both sides of it have
the same shape, bridges it (forward value of the far side, gradient handed to the near
side unchanged; Athalye, Carlini & Wagner, ICML 2018). The forward pass — and so early
stopping, success and the runner's re-check — is the deployed model's, unchanged.

Norms: Linf and L2 (the PGD loop's). Skipped, with the reason as its note, when nothing
is located or no bridge fits.

>>> attack = GraphBPDA(steps=50)
>>> attack.applies_to(AttackContext(model, ThreatModel("Linf", 0.1), probe=x[:16]))  # None: a lie was found
>>> out = attack(model, x, y, ThreatModel("Linf", 0.1), seed=0)
>>> attack.location.message
'the gradient stops matching between the output of `encoder` and the input of `head` (through `_LieBackward`)'
"""

from __future__ import annotations

import torch
from torch import nn

from a3bench.attacks.base import AttackContext, AttackOutput
from a3bench.attacks.graph import LieLocation, forward_bridged, locate_lie
from a3bench.attacks.pgd import PGD, input_grad
from a3bench.attacks.registry import AttackSpec, int_option, loss_option, register_attack, step_option
from a3bench.threat import ThreatModel


class GraphBPDA(PGD):
    """PGD-K through straight-through bridges over every located, shape-preserving lie.

    Args:
        steps, step_size, restarts, loss, random_start: as :class:`~a3bench.attacks.pgd.PGD`.

    Attributes:
        location: the :class:`~a3bench.attacks.graph.LieLocation` it bridges (for the record).
    """

    needs_input_gradient = False  # it replaces what blocks the gradient: it decides in applies_to

    def __init__(self, steps: int = 50, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "bpda-graph"), **kw)
        self.location: LieLocation | None = None
        self._key: int | None = None
        self._extra_passes = 0  # localisation passes not yet reported in an AttackOutput

    def _locate(self, model: nn.Module, x: torch.Tensor, threat: ThreatModel | None, seed: int) -> LieLocation:
        if self._key != id(model) or self.location is None:
            self.location = locate_lie(model, x, threat=threat, seed=seed)
            self._key = id(model)
            self._extra_passes = self.location.forward_passes + self.location.backward_passes
        return self.location

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most (each restart: K steps and a last
        check), and the localisation's fixed forward passes (a few hundred on a small CNN)."""
        return self.restarts * (self.steps + 1), self.restarts * self.steps, 0

    def record_note(self) -> str | None:
        return self.location.message if self.location is not None else None

    def applies_to(self, ctx: AttackContext) -> str | None:
        self._key, self.location = None, None  # a new evaluation: locate again
        if ctx.probe is None:
            return None  # located on the first batch
        loc = self._locate(ctx.model, ctx.probe, ctx.threat, ctx.seed)
        if not loc.found:
            return loc.message
        if not loc.bridgeable:
            return loc.message
        return None

    def grad_fn(self, model: nn.Module):
        gaps = self.location.bridgeable if self.location is not None else []

        def grad_fn(xa, ya):
            xg = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = forward_bridged(model, xg, gaps)
                grad = input_grad(self.loss_fn(logits, ya).sum(), xg)
            return logits.detach(), grad

        return grad_fn

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        loc = self._locate(model, x, threat, seed)
        if not loc.bridgeable:  # located on this batch (no probe): nothing to bridge
            with torch.no_grad():
                return AttackOutput(x.clone(), model(x).argmax(1) != y, forward_passes=len(x))
        out = super().run(model, x, y, threat, seed=seed, indices=indices)
        out.forward_passes += self.location.forward_passes if self._extra_passes else 0
        out.backward_passes += self.location.backward_passes if self._extra_passes else 0
        self._extra_passes = 0
        return out


@register_attack("bpda-graph", options=("loss", "restarts", "step", "steps"), example="bpda-graph:steps=3",
                 help="PGD-50 through straight-through bridges over every located gradient lie (graph-level BPDA)")
def _bpda_graph(spec: AttackSpec) -> GraphBPDA:
    return GraphBPDA(int_option(spec, "steps", 50), step_size=step_option(spec), restarts=int_option(spec, "restarts", 1),
                     loss=loss_option(spec))
