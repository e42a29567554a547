"""Escalation: when a diagnostic shows that gradients mislead, spend more on the attacks
they cannot mislead (docs/diagnostics.md#escalation).

``black-box-beats-white-box`` (a gradient-free attack broke significantly more than
AutoAttack's threshold of what gradient attacks missed), ``gradient-inconsistent`` (the
backward pass disagrees with finite differences) and ``no-input-gradient`` (there is no
gradient at all) say the same thing: the white-box numbers follow a gradient the model
does not have. The plan appends, in this order, the attacks that do not use that
gradient, cheapest and most exact first, each only on what is still robust:

1. ``bpda-graph`` — PGD-50 through straight-through bridges over the located lies
   (exact where the lie's forward is the identity; skipped with a note when nothing is
   located or no bridge fits), then AutoAttack's APGD-CE and APGD-DLR (3 restarts each) and
   APGD-T through the same bridges (:mod:`a3bench.attacks.bypass`): the white-box suite an
   honest network would get, with the loss on the scores in front of a lie at the output;
2. ``transfer:distill`` — PGD-50 on a surrogate distilled from the target's outputs
   (a fixed cost, independent of the number of examples);
3. ``spsa-100`` — gradient-free SPSA (Uesato et al. 2018), the paper's settings;
4. ``square-20000:restarts=2`` — Square with four times AutoAttack's queries, twice.

The budget is stated per still-robust example (forward passes, the most each attack may
spend) plus the distillation's fixed cost, and projected on the examples still robust with
an ETA at the run's measured rate, so the record says what the escalation could have cost
before it ran. ``--max-passes`` caps it: the attacks are taken in order while their
projected cost fits; those left out are listed, and the ``escalation-capped`` flag keeps
the verdict from ``reliable``.

>>> plan = escalation(record.flags, already=[a.name for a in cascade])
>>> plan.attacks, plan.reason
(['bpda-graph', 'transfer:distill', 'spsa-100', 'square-20000:restarts=2'],
 'gradient-inconsistent fired: gradients mislead, so ... (≤ 94,601 forward passes per robust example + 129,024 once)')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from a3bench.flags import BLACK_BOX_BEATS_WHITE_BOX, GRADIENT_INCONSISTENT, NO_INPUT_GRADIENT

TRIGGERS = (GRADIENT_INCONSISTENT.name, NO_INPUT_GRADIENT.name, BLACK_BOX_BEATS_WHITE_BOX.name)

ATTACKS = ("bpda-graph", "bpda-graph:base=apgd-ce:restarts=3", "bpda-graph:base=apgd-dlr:restarts=3", "bpda-graph:base=apgd-t",
           "transfer:distill", "spsa-100", "square-20000:restarts=2")


@dataclass(frozen=True)
class EscalationPlan:
    """Attacks to append to the cascade, why, and what they may cost."""

    attacks: list[str]  # attack names, in cascade order (those that fit the budget)
    triggers: list[str]  # the flags that fired
    reason: str  # one line for the record
    forward_passes_per_example: int  # the most the attacks may spend on one still-robust example
    backward_passes_per_example: int
    fixed_forward_passes: int  # independent of the examples (the distillation)
    per_attack: dict[str, int] = field(default_factory=dict)  # forward passes per example, each attack
    robust: int | None = None  # still-robust examples when it was decided
    projected_forward_passes: int | None = None  # at most, on those examples (attacks that run)
    projected_backward_passes: int | None = None
    eta_seconds: float | None = None  # at the rate measured so far in the run
    max_passes: int | None = None  # the cap it was decided under (--max-passes)
    left_out: list[str] = field(default_factory=list)  # attacks the cap left out, in cascade order

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


def escalation(flags: Iterable[Any], *, already: Sequence[str] = (), robust: int | None = None, rate: float | None = None,
               max_passes: int | None = None) -> EscalationPlan | None:
    """The escalation plan for a run whose diagnostics are ``flags``; None when no trigger fired.

    Args:
        flags: :class:`~a3bench.schema.Flag` objects, their dicts, or flag names.
        already: names of attacks already in the cascade; they are not added twice.
        robust: the examples still robust (the projection multiplies the per-example budget by it).
        rate: forward-pass equivalents per second measured so far (a backward pass counts two): the ETA.
        max_passes: the most forward + backward passes the escalation may spend; attacks are
            taken in order while their projected cost fits, the rest are left out (and said so).
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
    keep, left, spent_f, spent_b = [], [], 0, 0
    for name in names:
        try:
            (attack,) = build_attack(name)
            f, b, once = attack.max_passes() or (0, 0, 0)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception:  # noqa: BLE001 — the runner records it as failed when it comes to build it
            f, b, once = 0, 0, 0
        per_attack[name] = f
        cost_f = f * (robust or 0) + once
        cost_b = b * (robust or 0)
        if max_passes is not None and (left or spent_f + spent_b + cost_f + cost_b > max_passes):
            left.append(name)
            continue
        keep.append(name)
        spent_f, spent_b = spent_f + cost_f, spent_b + cost_b
        fwd, bwd, fixed = fwd + f, bwd + b, fixed + once
    eta = (spent_f + 2 * spent_b) / rate if rate and robust is not None else None
    projection = ""
    if robust is not None:
        projection = f"; at most {spent_f + spent_b:,} passes on {robust} robust example(s)"
        if eta is not None:
            projection += f", about {_duration(eta)} at this run's rate"
    capped = f"; --max-passes {max_passes:,} leaves out {', '.join(left)}" if left else ""
    reason = (f"{' and '.join(fired)} fired: gradients mislead, so the cascade adds the attacks they cannot mislead "
              f"({', '.join(keep) or 'none within the budget'}; ≤ {fwd:,} forward passes per robust example"
              + (f" + {fixed:,} once" if fixed else "") + f"{projection}){capped}")
    return EscalationPlan(attacks=keep, triggers=fired, reason=reason, forward_passes_per_example=fwd,
                          backward_passes_per_example=bwd, fixed_forward_passes=fixed, per_attack=per_attack, robust=robust,
                          projected_forward_passes=spent_f if robust is not None else None,
                          projected_backward_passes=spent_b if robust is not None else None,
                          eta_seconds=round(eta, 1) if eta is not None else None, max_passes=max_passes, left_out=left)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
