"""Adaptive attacks on CrossMax self-ensembles and ensembles (DESIGN §3, issue 12).

Fort & Lakshminarayanan (2024, "Ensemble everything everywhere") defend with randomised
multi-resolution inputs and CrossMax, a k-th-highest aggregation of many predictors.
Zhang, Carlini, Tramèr et al. (arXiv 2411.14834, v2) broke it adaptively: the CrossMax
gradient is sparse and misleading (the k-th order statistic routes it through one
predictor per class), and the input randomness adds noise. Their fix, and these attacks:

- ``crossmax-mean``: PGD whose gradient is that of the *mean* of the predictors' logits, a
  smooth surrogate of CrossMax, averaged over ``n`` random draws of the input stack (EOT),
  many small steps (Zhang et al.: 300–500 steps, 10 draws, step 0.003 at 8/255; here step
  ``0.1·eps`` by default, the same ratio). Each step's forward pass also gives the
  deployed CrossMax verdict of every draw (the predictors' logits are computed once and
  aggregated both ways), and an example stops only when every draw misclassifies it.
- ``fixed-randomness``: PGD on the deployed aggregation with the randomness frozen (EOT
  over ``n`` fixed draws: the model becomes ``n`` deterministic functions of x).
- ``predictor-transfer``: PGD against one predictor at a time (the backbone's own
  classifier first, then each head), EOT over ``n`` draws, judged on the whole defense.

Every perturbation is measured from the clean input (the one projection of
:class:`~a3bench.threat.ThreatModel`), never from a previous adversarial example. The
judge is the runner's: R fresh draws, majority rule. On other models these attacks are
skipped with a note.

>>> out = CrossMaxMean(steps=300, samples=10)(crossmax_model, x, y, ThreatModel("Linf", 8/255), seed=0)
"""

from __future__ import annotations

from contextlib import ExitStack, nullcontext

import torch
from torch import nn

from a3bench.attacks.base import AttackContext, AttackKind, AttackOutput
from a3bench.attacks.pgd import PGD, MostCorrectDraw, input_grad
from a3bench.attacks.registry import AttackSpec, int_option, loss_option, register_attack, step_option
from a3bench.flags import TRANSFER_BEATS_WHITE_BOX

NOT_CROSSMAX = "the model is not a CrossMax self-ensemble or an ensemble of predictors"
_FIXED_SEED = 911  # fixed draws s, s+1, ...: apart from any seed a user picks for the model


def _crossmax():
    from a3bench.models import crossmax

    return crossmax


class _CrossMaxOnly:
    def applies_to(self, ctx: AttackContext) -> str | None:
        return None if _crossmax().is_crossmax(ctx.model) else NOT_CROSSMAX


class _DrawEOT(_CrossMaxOnly, PGD):
    """PGD whose gradient averages ``samples`` draws of the model's randomness; an example
    stops early only when every draw's deployed verdict misclassifies it."""

    kind = AttackKind.EOT
    fixed = False  # draws frozen (seeds) instead of fresh

    def __init__(self, steps: int, samples: int = 10, *, step_factor: float | None = None, **kw) -> None:
        super().__init__(steps, **kw)
        self.samples = int(samples)
        self.step_factor = step_factor  # step = factor·eps when no absolute step is given

    def config(self) -> dict:
        return {**super().config(), "samples": self.samples, "step_factor": self.step_factor, "fixed": self.fixed}

    def surrogate(self, model: nn.Module):
        """The context the gradient is taken in (the deployed model by default)."""
        return nullcontext()

    def grad_fn(self, model: nn.Module):
        cm = _crossmax()

        def grad_fn(xa: torch.Tensor, ya: torch.Tensor):
            grad = torch.zeros_like(xa)
            best = MostCorrectDraw(ya)
            for d in range(self.samples):
                xg = xa.detach().requires_grad_(True)
                with ExitStack() as stack:
                    if self.fixed:
                        stack.enter_context(cm.fixed_randomness(model, _FIXED_SEED + d))
                    with torch.enable_grad():
                        surrogate_logits, deployed_logits = self.logits(model, xg)
                        grad += input_grad(self.loss_fn(surrogate_logits, ya).sum(), xg)
                best.add(deployed_logits.detach())
            return best.logits, grad / self.samples

        return grad_fn

    def logits(self, model: nn.Module, xg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits the loss is taken on, the deployed logits of the same draw)."""
        with self.surrogate(model):
            out = model(xg)
        return out, out

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        if self.step_size is None and self.step_factor is not None:
            self.step_size, restore = self.step_factor * threat.eps, True
        else:
            restore = False
        try:
            out = super().run(model, x, y, threat, seed=seed, indices=indices)
        finally:
            if restore:
                self.step_size = None
        out.forward_passes *= self.samples
        out.backward_passes *= self.samples
        return out


class CrossMaxMean(_DrawEOT):
    """``crossmax-mean``: EOT-PGD on the mean of the predictors' logits (Zhang et al. 2024).

    Args:
        steps: PGD iterations (default 300). samples: draws of the input randomness per step
            (default 10). step_factor: step = factor·eps (default 0.1; Zhang et al.: 0.003 at
            8/255). fixed: average over fixed draws instead of fresh ones.
    Linf and L2; x in [0,1], N×C×H×W; y N.
    """

    def __init__(self, steps: int = 300, samples: int = 10, *, fixed: bool = False, **kw) -> None:
        kw.setdefault("step_factor", 0.1)
        super().__init__(steps, samples, name=kw.pop("name", "crossmax-mean"), **kw)
        self.fixed = bool(fixed)

    def logits(self, model, xg):
        cm = _crossmax()
        z = cm.predictor_logits(model, xg)  # N×P×K: one forward pass, both aggregations from it
        info = cm.crossmax_info(model)
        return z.mean(dim=1), cm.aggregate(z, info.aggregation, info.k)


class FixedRandomness(_DrawEOT):
    """``fixed-randomness``: EOT-PGD over ``samples`` fixed draws on the deployed aggregation
    (default 100 steps, 4 draws), judged with fresh randomness."""

    fixed = True

    def __init__(self, steps: int = 100, samples: int = 4, **kw) -> None:
        super().__init__(steps, samples, name=kw.pop("name", "fixed-randomness"), **kw)


class PredictorTransfer(_DrawEOT):
    """``predictor-transfer``: EOT-PGD against one predictor at a time (the backbone's own
    classifier, then every head), judged on the whole defense; an example is broken when
    the adversarial example made against any predictor breaks it (default 50 steps, 4 draws)."""

    kind = AttackKind.TRANSFER
    reveals = TRANSFER_BEATS_WHITE_BOX

    def __init__(self, steps: int = 50, samples: int = 4, **kw) -> None:
        super().__init__(steps, samples, name=kw.pop("name", "predictor-transfer"), **kw)
        self._which: str | None = None

    def logits(self, model, xg):
        cm = _crossmax()
        z = cm.predictor_logits(model, xg)
        info = cm.crossmax_info(model)
        return z[:, info.predictors.index(self._which)], cm.aggregate(z, info.aggregation, info.k)

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        names = _crossmax().predictor_names(model)
        order = [n for n in names if n == "backbone"] + [n for n in names if n != "backbone"]
        x_best, success = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        fwd = bwd = 0
        for which in order:
            todo = (~success).nonzero().flatten()
            if todo.numel() == 0:
                break
            self._which = which
            out = super().run(model, x[todo], y[todo], threat, seed=seed, indices=indices[todo])
            x_best[todo], success[todo] = out.x_adv, out.success
            fwd, bwd = fwd + out.forward_passes, bwd + out.backward_passes
        self._which = None
        return AttackOutput(x_best, success, fwd, bwd)


# --------------------------------------------------------------------------- registration

_OPTIONS = ("steps", "n", "step", "loss", "restarts")


def _kw(spec: AttackSpec, steps: int, samples: int) -> dict:
    return {"steps": int_option(spec, "steps", steps), "samples": int_option(spec, "n", samples),
            "step_size": step_option(spec), "loss": loss_option(spec), "restarts": int_option(spec, "restarts", 1),
            "name": spec.text.lower()}


@register_attack("crossmax-mean", help="EOT-PGD-300 (10 draws) on the mean of a CrossMax model's predictors (Zhang et al. 2024); option fixed=1",
                 options=_OPTIONS + ("fixed",), example="crossmax-mean:steps=3:n=2")
def _crossmax_mean(spec: AttackSpec) -> CrossMaxMean:
    fixed = (spec.option("fixed") or "0").lower() in ("1", "true", "yes")
    return CrossMaxMean(**_kw(spec, 300, 10), fixed=fixed)


@register_attack("fixed-randomness", help="EOT-PGD-100 on a randomised model with its randomness frozen (4 fixed draws), judged fresh",
                 options=_OPTIONS, example="fixed-randomness:steps=3:n=2")
def _fixed(spec: AttackSpec) -> FixedRandomness:
    return FixedRandomness(**_kw(spec, 100, 4))


@register_attack("predictor-transfer", help="EOT-PGD-50 against each predictor of a CrossMax model alone, judged on the ensemble",
                 options=_OPTIONS, example="predictor-transfer:steps=2:n=1")
def _predictor(spec: AttackSpec) -> PredictorTransfer:
    return PredictorTransfer(**_kw(spec, 50, 4))
