"""GAMA-PGD: the Guided Adversarial Margin Attack (Sriramanan et al., NeurIPS 2020).

PGD on GAMA's loss (:class:`~a3bench.attacks.losses.GamaLoss`): the margin between the
best other class and the true class on the softmax outputs, plus a relaxation term — the
squared ℓ2 distance between the softmax outputs on the perturbed and on the clean input —
whose weight decays linearly to 0 over the first part of the run. Early on the
relaxation pulls the iterate towards regions where the whole output moves (a guide
beyond the single steepest margin direction); later the plain margin takes over. The
seed paper (Jain & Dutta 2024) uses it as its strongest single attack. Any model, Linf or L2.

>>> out = GamaPGD(steps=100)(model, x, y, ThreatModel("Linf", 0.1), seed=0)
>>> robust = ~out.success
"""

from __future__ import annotations

from a3bench.attacks.base import AttackOutput
from a3bench.attacks.losses import GamaLoss
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import AttackSpec, float_option, int_option, register_attack, step_option
from a3bench.errors import AttackError
from a3bench.models.state import swapped


class GamaPGD(PGD):
    """GAMA-PGD-K.

    Args:
        steps: iterations K.
        weight: initial relaxation weight w₀ (50, the reference setting).
        decay: fraction of K over which w decays linearly to 0 (0.25: over the first 25 of 100 steps).
        step_size: absolute fixed step; default GAMA's schedule: 2·eps, divided by 10 at 60 %
            and again at 85 % of the K steps.
        restarts: independent random starts. random_start: start uniformly in the ball.

    Shapes: x N×C×H×W in [0,1], y N (int64); returns an :class:`AttackOutput`.
    """

    def __init__(
        self,
        steps: int = 100,
        *,
        weight: float = 50.0,
        decay: float = 0.25,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(steps, step_size=step_size, restarts=restarts, random_start=random_start, name=name or f"gama-pgd-{steps}")
        self.loss_name, self.loss_fn = "gama", GamaLoss(weight, decay)

    def config(self) -> dict:
        return {**super().config(), "weight": self.loss_fn.weight, "decay": self.loss_fn.decay}

    def step_rule(self, threat):
        """GAMA's schedule unless ``step_size`` is given: 2·eps, ×0.1 at 60 % and again at 85 % of K."""
        if self.step_size is not None:
            return self.step_size
        steps, eps = self.steps, threat.eps

        def schedule(t: int) -> float:
            return 2 * eps * (0.1 ** ((t >= 0.6 * steps) + (t >= 0.85 * steps)))

        return schedule

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        anchor = self.surrogate if self.surrogate is not None else model
        before = self.loss_fn.forward_passes
        with swapped([self.loss_fn], "forward", anchor):
            out = super().run(model, x, y, threat, seed=seed, indices=indices)
        out.forward_passes += self.loss_fn.forward_passes - before  # the clean anchors
        return out


GAMA_OPTIONS = ("restarts", "step", "w", "decay")


def gama_from_spec(spec: AttackSpec, steps: int, name: str) -> GamaPGD:
    return GamaPGD(
        steps,
        weight=float_option(spec, "w", 50.0, low=0.0),
        decay=float_option(spec, "decay", 0.25, low=0.0, high=1.0),
        step_size=step_option(spec),
        restarts=int_option(spec, "restarts", 1),
        name=name,
    )


@register_attack(
    "gama-pgd-K",
    pattern=r"gama-pgd-(\d+)",
    help="GAMA-PGD, K iterations (Sriramanan et al. 2020): softmax margin + decaying softmax-ℓ2 relaxation; options w, decay, restarts, step",
    options=GAMA_OPTIONS,
    example="gama-pgd-3",
)
def _gama(spec: AttackSpec) -> GamaPGD:
    steps = int(spec.match.group(1))
    if steps < 1:
        raise AttackError(f"attack {spec.text!r}: K must be ≥ 1")
    return gama_from_spec(spec, steps, spec.text.lower().replace(" ", ""))
