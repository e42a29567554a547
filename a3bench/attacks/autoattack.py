"""AutoAttack (Croce & Hein, ICML 2020) through its reference implementation, PyPI ``pyautoattack``.

Nothing is rewritten: each component is one of pyautoattack's own attack objects,
configured by ``pyautoattack.AutoAttack`` itself for the ``standard`` or ``rand``
version, and called on a batch exactly as ``AutoAttack.run_standard_evaluation`` calls
it (same seed reset per batch, same ``no_grad`` context). The a3bench runner forms the
batches the way AutoAttack does — the still-robust examples in order, ``batch_size`` at
a time — so ``autoattack`` gives the same per-example outcome as AutoAttack run
directly on the same examples with the same seed and batch size.

Components: ``apgd-ce``, ``apgd-dlr`` (APGD, Linf/L2), ``apgd-t`` (targeted APGD-DLR,
9 targets), ``fab`` / ``fab-t`` (FAB, Croce & Hein ICML 2020), ``square`` (Square
Attack, Andriushchenko et al. ECCV 2020, black-box, 5000 queries).

>>> attack = AutoAttackComponent("apgd-ce")
>>> attack.setup(AttackContext(model, ThreatModel("Linf", 8/255), seed=0))
>>> out = attack(model, x, y, ThreatModel("Linf", 8/255), seed=0)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackContext, AttackKind, AttackOutput
from a3bench.errors import AttackError
from a3bench.threat import ThreatModel
from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX

COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
VERSIONS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr")}
AA_LOGGER = "auto-attack"  # the logger name pyautoattack writes its warnings to


class PassCounter(nn.Module):
    """Counts forward and backward passes (per example) of the model it wraps.

    Used for attacks that do not count their own passes (pyautoattack); a backward
    pass is counted when a gradient flows back into the logits.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_passes = 0
        self.backward_passes = 0

    def reset(self) -> tuple[int, int]:
        counts = (self.forward_passes, self.backward_passes)
        self.forward_passes = self.backward_passes = 0
        return counts

    def _count_backward(self, n: int):
        def hook(grad: torch.Tensor) -> None:
            self.backward_passes += n

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        n = int(x.shape[0])
        self.forward_passes += n
        if out.requires_grad:
            out.register_hook(self._count_backward(n))
        return out


def make_autoattack(model: nn.Module, threat: ThreatModel, *, seed: int, version: str, device: torch.device | str, num_classes: int | None = None):
    """A ``pyautoattack.AutoAttack`` configured for ``version``, as AutoAttack itself configures it."""
    from a3bench._compat import import_autoattack

    aa = import_autoattack()
    adversary = aa.AutoAttack(model, norm=threat.norm.value, eps=threat.eps, seed=seed, version=version, device=device)
    if num_classes is not None and num_classes <= 9:
        # AutoAttack assumes ≥ 10 classes (9 target classes); fewer would crash it.
        adversary.apgd_targeted.n_target_classes = num_classes - 1
        adversary.fab.n_target_classes = num_classes - 1
    return adversary


class AutoAttackComponent(Attack):
    """One component of AutoAttack, run by pyautoattack on the examples it is given.

    Args:
        component: one of ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``, ``square``.
        version: ``standard`` (deterministic models) or ``rand`` (EOT over 20 samples
            for randomised models); sets restarts, iterations and targets as AutoAttack does.
        name: the name shown in records (default: the component, ``-rand`` appended for rand).
        group: the composite name it belongs to (``autoattack``), if any.

    Norms: Linf and L2. The seed is AutoAttack's (reset at every batch, as AutoAttack does).

    >>> out = AutoAttackComponent("square")(model, x, y, ThreatModel("L2", 0.5), seed=0)
    """

    def __init__(self, component: str, *, version: str = "standard", name: str | None = None, group: str | None = None,
                 restarts: int | None = None) -> None:
        if component not in COMPONENTS:
            raise AttackError(f"unknown AutoAttack component {component!r} (valid: {', '.join(COMPONENTS)})")
        if version not in VERSIONS:
            raise AttackError(f"unknown AutoAttack version {version!r} (valid: {', '.join(VERSIONS)})")
        self.component, self.version = component, version
        self.restarts = restarts  # None: AutoAttack's own (1); else APGD's random restarts
        self.name = name or (component if version == "standard" else f"{component}-rand")
        self.group = group
        # rand: APGD with EOT over 20 draws; Square queries only, so gradients cannot mislead it
        self.kind = AttackKind.BLACK_BOX if component == "square" else AttackKind.EOT if version == "rand" else AttackKind.WHITE_BOX
        self.reveals = BLACK_BOX_BEATS_WHITE_BOX if component == "square" else None
        self.queries_only = component == "square"
        self._adversary = None
        self._key: tuple | None = None
        self._counter: PassCounter | None = None

    def config(self) -> dict[str, Any]:
        cfg = {"component": self.component, "version": self.version, "implementation": "pyautoattack"}
        return {**cfg, "restarts": self.restarts} if self.restarts is not None else cfg

    def max_passes(self) -> tuple[int, int, int]:
        """AutoAttack's own budgets per example (pyautoattack's standard and rand settings):
        APGD 100 iterations (rand: EOT over 20 draws), APGD-T and FAB-T 9 target classes of
        100 iterations (FAB: two forward passes and a backward pass each), Square 5,000 queries."""
        c = self.component
        if c == "square":
            return 5_001, 0, 0
        targets = 9 if c.endswith("-t") else 1
        eot = (20 if self.version == "rand" else 1) * (self.restarts or 1)
        if c.startswith("fab"):
            return targets * 100 * 2 + 2, targets * 100, 0
        return targets * 101 * eot + 1, targets * 100 * eot, 0

    def setup(self, ctx: AttackContext) -> None:
        self._build(ctx.model, ctx.threat, ctx.seed, ctx.device, ctx.num_classes)

    def _build(self, model: nn.Module, threat: ThreatModel, seed: int, device, num_classes: int | None) -> None:
        key = (id(model), threat, seed, str(device), num_classes)
        if self._key == key:
            return
        self._counter = PassCounter(model)
        self._adversary = make_autoattack(self._counter, threat, seed=seed, version=self.version, device=device, num_classes=num_classes)
        if self.restarts is not None:
            self._adversary.apgd.n_restarts = self._adversary.apgd_targeted.n_restarts = self.restarts
        self._key = key

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        if self._key is None or self._key[:3] != (id(model), threat, seed):
            self._build(model, threat, seed, x.device, None)
        adv, counter = self._adversary, self._counter
        counter.reset()
        # Exactly the per-batch dispatch of AutoAttack.run_standard_evaluation.
        with torch.no_grad():
            c = self.component
            if c in ("apgd-ce", "apgd-dlr"):
                adv.apgd.loss = "ce" if c == "apgd-ce" else "dlr"
                adv.apgd.seed = adv.get_seed()
                x_adv = adv.apgd.perturb(x, y)
            elif c == "apgd-t":
                adv.apgd_targeted.seed = adv.get_seed()
                x_adv = adv.apgd_targeted.perturb(x, y)
            elif c == "fab":
                adv.fab.targeted = False
                adv.fab.seed = adv.get_seed()
                x_adv = adv.fab.perturb(x, y)
            elif c == "fab-t":
                adv.fab.targeted = True
                adv.fab.n_restarts = 1
                adv.fab.seed = adv.get_seed()
                x_adv = adv.fab.perturb(x, y)
            else:
                adv.square.seed = adv.get_seed()
                x_adv = adv.square.perturb(x, y)
            success = counter(x_adv).argmax(1) != y
        fwd, bwd = counter.reset()
        return AttackOutput(x_adv.detach(), success, fwd, bwd)


def fab_min_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, *, eps: float, seed: int,
                 restarts: int = 1, n_iter: int = 100, device: torch.device | str | None = None) -> AttackOutput:
    """Minimum-norm adversarial examples from pyautoattack's FAB (untargeted), one run for every eps.

    FAB (Croce & Hein, ICML 2020) searches for the *smallest* perturbation that changes
    the decision; its first run does not depend on eps at all. Each of ``restarts`` runs is
    ``FABAttack_PT.attack_single_run`` (the first from the clean point, the others from a
    random start of radius ``eps``, as FAB's own restarts); per example
    the smallest successful perturbation is kept. ``eps`` is only the random-start radius.

    Returns x_adv (the clean image where nothing was found), ``success`` where FAB claims a
    misclassification, and the pass counts. The caller re-checks every success and reads
    each example's distance with :meth:`ThreatModel.distance`.
    """
    from a3bench._compat import import_autoattack

    if restarts < 1 or n_iter < 1:
        raise AttackError(f"FAB needs restarts ≥ 1 and iterations ≥ 1, got {restarts} and {n_iter}")
    counter = PassCounter(model)
    fab = import_autoattack().fab_pt.FABAttack_PT(counter, norm=norm, n_restarts=restarts, n_iter=n_iter, eps=eps, seed=seed,
                          device=device if device is not None else x.device)
    best = x.detach().clone()
    best_dist = torch.full((x.shape[0],), float("inf"), device=x.device)
    p = float("inf") if norm == "Linf" else 2.0
    with torch.no_grad():
        torch.random.manual_seed(seed)  # as FAB's perturb does, per batch
        for r in range(restarts):
            x_adv = fab.attack_single_run(x, y, use_rand_start=r > 0, is_targeted=False)
            wrong = counter(x_adv).argmax(1) != y
            dist = (x_adv - x).flatten(1).norm(p=p, dim=1)
            better = wrong & (dist < best_dist)
            best[better] = x_adv[better]
            best_dist[better] = dist[better]
    fwd, bwd = counter.reset()
    return AttackOutput(best, torch.isfinite(best_dist), fwd, bwd)
