"""How strong an evaluation was: did AutoAttack run completely (docs/report.md#evaluation-strength)?

A worst case over PGD-20 alone and one over AutoAttack plus adaptive attacks are different
claims. The verdict ``reliable`` needs at least AutoAttack — ``standard``, or ``rand`` for
a randomised model — with every component run (none skipped or failed); a weaker
evaluation is ``not-evaluated-fully`` (:func:`a3bench.eval.diagnostics.verdict`), and
leaderboards rank it apart. Everything is read from the record's ``per_attack``, so a
record cannot claim a strength its attacks do not show.

Pure Python: reports and CI gates import it without torch.
"""

from __future__ import annotations

from typing import Sequence

from a3bench.flags import RANDOMIZED_OUTPUTS
from a3bench.schema import AttackRecord, AttackStatus, ResultRecord, Strength

# The composite names (``AttackRecord.group``) AutoAttack's components are recorded under,
# the version each one is, and how many components that version has (pyautoattack's
# ``standard``: apgd-ce, apgd-t, fab-t, square; ``rand``: apgd-ce, apgd-dlr with EOT).
AUTOATTACK_GROUPS = {"autoattack": ("standard", 4), "autoattack-rand": ("rand", 2)}
# The suite of a record ``a3bench verify --adv`` writes: someone else's adversarial examples,
# each re-checked here (docs/verify.md). How hard they were searched for is not known, so
# such a record is never complete, never reliable, and reports mark its row.
EXTERNAL_SUITE = "external"


def needed_version(randomised: bool) -> str:
    """The AutoAttack version an evaluation of this model must include."""
    return "rand" if randomised else "standard"


def strength_of(per_attack: Sequence[AttackRecord], suite: str | None, *, randomised: bool) -> Strength:
    """The strength of a cascade: which attacks ran, and whether the AutoAttack version the
    model needs ran completely."""
    ran = [r.name for r in per_attack if r.status is AttackStatus.RAN]
    complete_versions = []
    for group, (version, n_components) in AUTOATTACK_GROUPS.items():
        members = [r for r in per_attack if r.group == group]
        if len(members) >= n_components and all(r.status is AttackStatus.RAN for r in members):
            complete_versions.append(version)
    needed = needed_version(randomised)
    autoattack = needed if needed in complete_versions else (complete_versions[0] if complete_versions else None)
    return Strength(suite=suite, attacks=ran, autoattack=autoattack, randomised=randomised, complete=autoattack == needed)


def is_randomised(record: ResultRecord) -> bool:
    """The run found the model randomised: it judged by the majority of draws, or flagged it."""
    return "randomised" in (record.compute or {}) or any(f.name == RANDOMIZED_OUTPUTS.name for f in record.flags)


def evaluation_strength(record: ResultRecord) -> Strength:
    return strength_of(record.per_attack, record.suite, randomised=is_randomised(record))


def is_external(record: ResultRecord) -> bool:
    """A verified external evaluation (``a3bench verify --adv ... --out``), not a3bench's own."""
    return record.suite == EXTERNAL_SUITE


def shortfall(strength: Strength) -> str | None:
    """Why an evaluation is weaker than AutoAttack, in one line; None when it is not."""
    if strength.complete:
        return None
    needed = needed_version(strength.randomised)
    what = f"AutoAttack {needed}" + (" (the version for randomised models)" if strength.randomised else "")
    if not strength.attacks:
        return "no attack ran (every one was skipped or failed): the worst case is the clean accuracy"
    ran = ", ".join(strength.attacks[:6]) + (f" and {len(strength.attacks) - 6} more" if len(strength.attacks) > 6 else "")
    return f"{what} did not run completely (ran: {ran})"


def strength_label(strength: Strength) -> str:
    """A short cell for a leaderboard: the suite, or the attacks when none was named, and
    a mark when AutoAttack did not run completely."""
    if strength.suite == EXTERNAL_SUITE:
        return "external (verified)"
    what = strength.suite or ",".join(strength.attacks[:3]) + ("…" if len(strength.attacks) > 3 else "") or "none"
    if strength.complete:
        return what + (" (AA rand)" if strength.autoattack == "rand" else "")
    return what + " (no full AA)" if strength.attacks else what + " (nothing ran)"


def shown_verdict(record: ResultRecord) -> tuple[str, str]:
    """(verdict, reason) as reports show them: a record written before the strength rule
    that says ``reliable`` for an evaluation weaker than AutoAttack shows
    ``not-evaluated-fully`` — never green (docs/report.md#evaluation-strength)."""
    strength = record.strength or evaluation_strength(record)
    if record.verdict == "reliable" and not strength.complete:
        return "not-evaluated-fully", f"the evaluation is weaker than AutoAttack: {shortfall(strength)}"
    return str(record.verdict), record.verdict_reason
