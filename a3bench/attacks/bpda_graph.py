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

Through the bridges runs PGD-K (``base=pgd-K``, default PGD-50) or the strongest white-box
attacks, AutoAttack's own (``base=apgd-ce``, ``apgd-dlr``, ``apgd-t``, with ``restarts=``),
over the bridged model: the deployed values, the gradients through the bridges. Where the
lie sits at the output (the scores in front of it have the output's shape), the loss is
taken on those scores (``near=auto``, the default; ``near=off`` keeps the deployed output),
as BPDA's approximation does: where the deployed output is flat its gradient points
nowhere. The judge always re-checks on the deployed model. The lie is located once per
model and evaluation, whichever bridged attacks use it.

Norms: Linf and L2. Skipped, with the reason as its note, when nothing is located or no
bridge fits.

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
from a3bench.attacks.bypass import BASE_OPTIONS, BypassBase, parse_base
from a3bench.attacks.graph import LieLocation, forward_bridged, forward_near, locate_lie, output_gap
from a3bench.attacks.pgd import PGD, input_grad
from a3bench.attacks.registry import AttackSpec, int_option, loss_option, register_attack, step_option
from a3bench.errors import AttackError
from a3bench.threat import ThreatModel


# (model, threat, seed) → (the model, where its lie is): located once per evaluation, whichever
# bridged attacks use it; the model is kept to tell it from a later one at the same address
_LOCATIONS: dict[tuple, tuple[nn.Module, LieLocation]] = {}


class Bridged(nn.Module):
    """``model`` with the located gaps bridged: the deployed values, the gradients straight
    through each bridge; with ``near`` the scores in front of a lie at the output instead."""

    def __init__(self, model: nn.Module, location: LieLocation, near: bool) -> None:
        super().__init__()
        self.model, self.gaps = model, location.bridgeable
        self.near = near and output_gap(self.gaps) is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.near:
            return forward_near(self.model, x, self.gaps)[1]
        return forward_bridged(self.model, x, self.gaps)


class GraphBPDA(BypassBase, PGD):
    """PGD-K, or an APGD of AutoAttack, through straight-through bridges over every
    located, shape-preserving lie.

    Args:
        steps, step_size, restarts, loss, random_start: as :class:`~a3bench.attacks.pgd.PGD`.
        base: ``pgd`` (PGD-``steps``) or one of ``apgd-ce``, ``apgd-dlr``, ``apgd-t``
            (pyautoattack's, AutoAttack's settings, ``restarts`` random restarts).
        near: take the loss on the scores in front of a lie at the output (default True).

    Attributes:
        location: the :class:`~a3bench.attacks.graph.LieLocation` it bridges (for the record).
    """

    needs_input_gradient = False  # it replaces what blocks the gradient: it decides in applies_to

    def __init__(self, steps: int = 50, *, base: str = "pgd", near: bool = True, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "bpda-graph"), **kw)
        self._init_base(base)
        self.near = near
        self.location: LieLocation | None = None
        self._key: tuple | None = None
        self._extra_passes = 0  # localisation passes not yet reported in an AttackOutput

    def config(self) -> dict:
        return {**self.base_config(super().config()), **({"near": False} if not self.near else {})}

    def bypassed(self, model: nn.Module) -> nn.Module:
        return Bridged(model, self.location, self.near)

    def _locate(self, model: nn.Module, x: torch.Tensor, threat: ThreatModel | None, seed: int) -> LieLocation:
        key = (id(model), threat, seed)
        if self._key != key or self.location is None:
            if key not in _LOCATIONS or _LOCATIONS[key][0] is not model:
                _LOCATIONS.clear()  # one evaluation's model at a time
                loc = locate_lie(model, x, threat=threat, seed=seed)
                _LOCATIONS[key] = (model, loc)
                self._extra_passes = loc.forward_passes + loc.backward_passes
            self.location, self._key = _LOCATIONS[key][1], key
        return self.location

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most, and no fixed cost (the
        localisation is a few hundred passes on a small CNN, once per evaluation)."""
        return self.base_max_passes((self.restarts * (self.steps + 1), self.restarts * self.steps, 0))

    def record_note(self) -> str | None:
        if self.location is None:
            return None
        near = self.near and output_gap(self.location.bridgeable) is not None
        return self.location.message + ("; the loss taken on the scores in front of the lie at the output" if near else "")

    def applies_to(self, ctx: AttackContext) -> str | None:
        self._key, self.location = None, None  # a new evaluation: look again
        if ctx.probe is None:
            return None  # located on the first batch
        loc = self._locate(ctx.model, ctx.probe, ctx.threat, ctx.seed)
        if not loc.found:
            return loc.message
        if not loc.bridgeable:
            return loc.message
        return None

    def grad_fn(self, model: nn.Module):
        location = self.location
        near = self.near

        def grad_fn(xa, ya):
            xg = xa.detach().requires_grad_(True)
            with torch.enable_grad():
                logits, scores = forward_near(model, xg, location.bridgeable) if near else (None, None)
                if scores is None:
                    logits = scores = forward_bridged(model, xg, location.bridgeable)
                grad = input_grad(self.loss_fn(scores, ya).sum(), xg)
            return logits.detach(), grad

        return grad_fn

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        loc = self._locate(model, x, threat, seed)
        if not loc.bridgeable:  # located on this batch (no probe): nothing to bridge
            with torch.no_grad():
                return AttackOutput(x.clone(), model(x).argmax(1) != y, forward_passes=len(x))
        out = self.run_base(super().run, model, x, y, threat, seed=seed, indices=indices)
        out.forward_passes += self._extra_passes
        self._extra_passes = 0
        return out


@register_attack("bpda-graph", options=("loss", "restarts", "step", "steps", "near") + BASE_OPTIONS, example="bpda-graph:steps=3",
                 help="PGD-50 (or base=apgd-ce|apgd-dlr|apgd-t) through straight-through bridges over every located gradient lie "
                      "(graph-level BPDA); near=off: the loss on the deployed output even when the lie sits at it")
def _bpda_graph(spec: AttackSpec) -> GraphBPDA:
    near = (spec.option("near") or "auto").strip().lower()
    if near not in ("auto", "off"):
        raise AttackError(f"attack {spec.text!r}: near must be auto or off")
    base, steps = parse_base(spec, 50)
    return GraphBPDA(steps, base=base, near=near == "auto", step_size=step_option(spec), restarts=int_option(spec, "restarts", 1),
                     loss=loss_option(spec))
