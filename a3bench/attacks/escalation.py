"""Escalation: when a diagnostic shows that gradients mislead, spend more on the attacks
they cannot mislead (issue 10).

``black-box-beats-white-box`` (a gradient-free attack broke what gradient attacks
missed) and ``gradient-inconsistent`` (the backward pass disagrees with finite
differences) both say the same thing: the white-box numbers follow a gradient the model
does not have. The plan appends, in this order, the attacks that do not use that
gradient, cheapest and most exact first, each only on what is still robust:

1. ``bpda-graph`` — PGD-50 through straight-through bridges over the located lies
   (exact where the lie's forward is the identity; skipped with a note when nothing is
   located or no bridge fits);
2. ``transfer:distill`` — PGD-50 on a surrogate distilled from the target's outputs
   (a fixed cost, independent of the number of examples);
3. ``spsa-100`` — gradient-free SPSA (Uesato et al. 2018), the paper's settings;
4. ``square-20000:restarts=2`` — Square with four times AutoAttack's queries, twice.

The budget is stated per still-robust example (forward passes, the most each attack may
spend) plus the distillation's fixed cost, so the record says what the escalation could
have cost before it ran.

>>> plan = escalation(record.flags, already=[a.name for a in cascade])
>>> plan.attacks, plan.reason
(['bpda-graph', 'transfer:distill', 'spsa-100', 'square-20000:restarts=2'],
 'gradient-inconsistent fired: gradients mislead, so ... (≤ 94,601 forward passes per robust example + 129,024 once)')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX, GRADIENT_INCONSISTENT

TRIGGERS = (GRADIENT_INCONSISTENT.name, BLACK_BOX_BEATS_WHITE_BOX.name)

ATTACKS = ("bpda-graph", "transfer:distill", "spsa-100", "square-20000:restarts=2")


@dataclass(frozen=True)
class EscalationPlan:
    """Attacks to append to the cascade, why, and what they may cost."""

    attacks: list[str]  # attack names, in cascade order
    triggers: list[str]  # the flags that fired
    reason: str  # one line for the record
    forward_passes_per_example: int  # the most the attacks may spend on one still-robust example
    backward_passes_per_example: int
    fixed_forward_passes: int  # independent of the examples (the distillation)
    per_attack: dict[str, int] = field(default_factory=dict)  # forward passes per example, each attack

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _flag_names(flags: Iterable[Any]) -> list[str]:
    names = []
    for f in flags:
        if isinstance(f, str):
            names.append(f)
        elif isinstance(f, dict):
            names.append(str(f.get("name")))
        else:
            names.append(str(getattr(f, "name", f)))
    return names


def escalation(flags: Iterable[Any], *, already: Sequence[str] = ()) -> EscalationPlan | None:
    """The escalation plan for a run whose diagnostics are ``flags``; None when no trigger fired.

    Args:
        flags: :class:`~a3bench.schema.Flag` objects, their dicts, or flag names.
        already: names of attacks already in the cascade; they are not added twice.
    """
    fired = [name for name in TRIGGERS if name in set(_flag_names(flags))]
    if not fired:
        return None
    from a3bench.attacks.registry import build_attack

    taken = {a.strip().lower() for a in already}
    names = [a for a in ATTACKS if a not in taken]
    if not names:
        return None
    per_attack, fwd, bwd, fixed = {}, 0, 0, 0
    for name in names:
        (attack,) = build_attack(name)
        f, b, once = attack.max_passes()
        per_attack[name] = f
        fwd, bwd, fixed = fwd + f, bwd + b, fixed + once
    reason = (f"{' and '.join(fired)} fired: gradients mislead, so the cascade adds the attacks they cannot mislead "
              f"({', '.join(names)}; ≤ {fwd:,} forward passes per robust example" + (f" + {fixed:,} once)" if fixed else ")"))
    return EscalationPlan(attacks=names, triggers=fired, reason=reason, forward_passes_per_example=fwd,
                          backward_passes_per_example=bwd, fixed_forward_passes=fixed, per_attack=per_attack)
