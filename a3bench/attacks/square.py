"""``square-Q``: Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020) with a
query budget Q and restarts of one's choosing, through pyautoattack's own
``SquareAttack`` — the black-box attack AutoAttack runs with 5 000 queries and one
restart (``square``), given more when gradients are known to lie.

The square-size schedule is stretched over the budget (pyautoattack's
``resc_schedule``), as its authors do for budgets other than AutoAttack's; each restart
starts again, with the next seed, on the examples still robust (pyautoattack's own
restart loop). Randomness is pyautoattack's (reset to the seed at every batch, as in
AutoAttack): an example's outcome depends on its batch, as AutoAttack's does.

>>> out = SquareQueries(20_000, restarts=2)(model, x, y, ThreatModel("Linf", 0.1), seed=0)
"""

from __future__ import annotations

import torch

from a3bench.attacks.autoattack import PassCounter
from a3bench.attacks.base import Attack, AttackKind, AttackOutput
from a3bench.attacks.registry import AttackSpec, int_option, register_attack
from a3bench.errors import AttackError
from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX


class SquareQueries(Attack):
    """Square Attack, ``queries`` per restart, ``restarts`` restarts, margin loss, Linf or L2.

    Args:
        queries: forward passes per example and restart (AutoAttack: 5000).
        restarts: independent runs on what is still robust. p_init: initial square size (0.8, AutoAttack's).
    """

    kind = AttackKind.BLACK_BOX
    queries_only = True
    reveals = BLACK_BOX_BEATS_WHITE_BOX

    def __init__(self, queries: int = 20_000, *, restarts: int = 1, p_init: float = 0.8, name: str | None = None) -> None:
        if queries < 1 or restarts < 1:
            raise ValueError("Square needs queries ≥ 1 and restarts ≥ 1")
        self.queries, self.restarts, self.p_init = queries, restarts, p_init
        self.name = name or f"square-{queries}"

    def config(self) -> dict:
        return {"queries": self.queries, "restarts": self.restarts, "p_init": self.p_init, "implementation": "pyautoattack"}

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most, and fixed forward passes."""
        return self.restarts * (self.queries + 1) + 2, 0, 0

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        from a3bench._compat import import_autoattack

        square_mod = import_autoattack().square
        counter = PassCounter(model)
        attack = square_mod.SquareAttack(counter, norm=threat.norm.value, n_queries=self.queries, eps=threat.eps, p_init=self.p_init,
                                         n_restarts=self.restarts, seed=seed, verbose=False, resc_schedule=True, device=x.device)
        with torch.no_grad():
            x_adv = attack.perturb(x, y)
            success = counter(x_adv).argmax(1) != y
        fwd, bwd = counter.reset()
        return AttackOutput(x_adv.detach(), success, fwd, bwd)


@register_attack("square-Q", pattern=r"square-(\d+)", options=("restarts",), example="square-20",
                 help="Square Attack with Q queries per restart (pyautoattack), black-box; option restarts")
def _square(spec: AttackSpec) -> SquareQueries:
    queries = int(spec.match.group(1))
    if queries < 1:
        raise AttackError(f"attack {spec.text!r}: Q must be ≥ 1")
    return SquareQueries(queries, restarts=int_option(spec, "restarts", 1))
