"""The CI gate behind ``a3bench check``: compare a result with a baseline result.

A run *passes* when neither clean nor worst-case robust accuracy dropped by more than
``max_drop`` percentage points, no new diagnostic flag fired and the verdict did not
worsen. Inputs that cannot be compared (another dataset, threat model or example set)
raise :class:`~a3bench.errors.ResultError`: such a comparison would mean nothing.

When both runs left per-example outcomes over the same examples, the examples that
changed are counted and an exact McNemar test says whether the change could be chance.

Nothing is taken on trust (docs/untrusted-input.md): each record is read within its
schema's ranges, recomputed from its own outcomes file, and its sidecars must carry its
run id; two records of different models (weights or spec) are refused unless
``allow_different_model``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from a3bench.errors import ResultError
from a3bench.report.fmt import ci, delta, eps_text, md_code, md_text, pct
from a3bench.report.load import locate_outcomes
from a3bench.results import different_model, verify_run_ids
from a3bench.schema import Outcomes, ResultRecord, outcome_problems, read_outcomes, read_record
from a3bench.stats import discordant, mcnemar_exact

DEFAULT_MAX_DROP = 1.0  # percentage points
_EPS_TOL = 1e-9


@dataclass
class McNemar:
    """Paired comparison of per-example robustness: b examples robust in the baseline
    but broken now, c broken in the baseline but robust now."""

    newly_broken: int  # b
    newly_robust: int  # c
    both_robust: int
    both_broken: int
    p_value: float


@dataclass
class CheckResult:
    current: ResultRecord
    baseline: ResultRecord
    current_path: Path
    baseline_path: Path
    max_drop: float
    reasons: list[str] = field(default_factory=list)  # why it fails; empty = pass
    notes: list[str] = field(default_factory=list)  # worth knowing, not failing
    new_flags: list[str] = field(default_factory=list)
    resolved_flags: list[str] = field(default_factory=list)
    mcnemar: McNemar | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def clean_delta(self) -> float:
        return self.current.clean_acc - self.baseline.clean_acc

    @property
    def robust_delta(self) -> float:
        return self.current.robust_acc - self.baseline.robust_acc


def compare_outcomes(base: Outcomes, cur: Outcomes) -> McNemar:
    """Raises ResultError when the two files do not cover the same examples."""
    if base.n != cur.n:
        raise ResultError(f"different examples: {base.path} has {base.n}, {cur.path} has {cur.n}")
    if base.indices is not None and cur.indices is not None and base.indices != cur.indices:
        raise ResultError(f"different examples: the indices in {base.path} and {cur.path} differ")
    if base.labels is not None and cur.labels is not None and base.labels != cur.labels:
        raise ResultError(f"different examples: the labels in {base.path} and {cur.path} differ")
    pairs = list(zip(base.robust, cur.robust))
    b, c = discordant(base.robust, cur.robust)
    return McNemar(
        newly_broken=b,
        newly_robust=c,
        both_robust=sum(1 for x, y in pairs if x and y),
        both_broken=sum(1 for x, y in pairs if not x and not y),
        p_value=mcnemar_exact(b, c),
    )


def _require_comparable(cur: ResultRecord, base: ResultRecord) -> None:
    if cur.dataset != base.dataset:
        raise ResultError(f"different datasets: {cur.dataset} vs baseline {base.dataset}")
    if cur.norm != base.norm or abs(cur.eps - base.eps) > _EPS_TOL:
        raise ResultError(f"different threat models: {cur.norm} eps {eps_text(cur)} vs baseline {base.norm} eps {eps_text(base)}")
    if cur.n_examples != base.n_examples:
        raise ResultError(f"different examples: {cur.n_examples} vs baseline {base.n_examples}")


def read_checked(path: Path) -> tuple[ResultRecord, Outcomes | None, Path | None]:
    """A record that agrees with itself (its schema's ranges), with its outcomes (the
    numbers recomputed from them) and with its sidecars (one run id); else a ResultError
    naming the file and the field."""
    record = read_record(path)
    problems = verify_run_ids(path)
    if problems:
        raise ResultError(problems[0])
    opath = locate_outcomes(record, path)
    outcomes = read_outcomes(opath) if opath is not None else None
    if outcomes is not None:
        problems = outcome_problems(record, outcomes)
        if problems:
            raise ResultError(f"{path} disagrees with its outcomes {opath.name}: {problems[0]}")
    return record, outcomes, opath


def check(
    current: str | os.PathLike,
    baseline: str | os.PathLike,
    max_drop: float = DEFAULT_MAX_DROP,
    allow_different_model: bool = False,
) -> CheckResult:
    if not (max_drop >= 0 and math.isfinite(max_drop)):
        raise ResultError(f"--max-drop must be a number ≥ 0, got {max_drop}")
    cur_path, base_path = Path(current), Path(baseline)
    cur, cur_outcomes, cur_o = read_checked(cur_path)
    base, base_outcomes, base_o = read_checked(base_path)
    _require_comparable(cur, base)
    res = CheckResult(cur, base, cur_path, base_path, max_drop)
    other = different_model(cur.model, base.model)
    if other is not None:
        if not allow_different_model:
            raise ResultError(f"different models: {other}; pass --allow-different-model to compare them anyway")
        res.notes.append(f"different models ({other}): compared because --allow-different-model was given")

    if cur_outcomes is not None and base_outcomes is not None:
        res.mcnemar = compare_outcomes(base_outcomes, cur_outcomes)
    else:
        missing = [str(p) for p, o in ((base_path, base_o), (cur_path, cur_o)) if o is None]
        res.notes.append(f"no per-example comparison: no outcomes file beside {' and '.join(missing)}")
    if cur.seed != base.seed:
        res.notes.append(f"seeds differ ({cur.seed} vs baseline {base.seed}): random starts differ too")
    if cur.attacks != base.attacks:
        res.notes.append(f"attack suites differ: {', '.join(cur.attacks) or '—'} vs baseline {', '.join(base.attacks) or '—'}")

    # A small epsilon keeps a drop of exactly max_drop (e.g. 5 examples of 500 at 1.0) passing.
    for label, d, before, after in (
        ("clean accuracy", res.clean_delta, base.clean_acc, cur.clean_acc),
        ("worst-case robust accuracy", res.robust_delta, base.robust_acc, cur.robust_acc),
    ):
        if -d > max_drop + 1e-9:
            res.reasons.append(f"{label} dropped {-d:.2f} points ({before:.2f} → {after:.2f}), more than the {max_drop:g} allowed")

    base_flags = {f.name for f in base.flags}
    for f in cur.flags:
        if f.name not in base_flags:
            res.new_flags.append(f.name)
            res.reasons.append(f"new flag {f.name} ({f.severity.value}): {' '.join(f.message.split())}")
    cur_flags = {f.name for f in cur.flags}
    res.resolved_flags = [f.name for f in base.flags if f.name not in cur_flags]

    if cur.verdict.rank > base.verdict.rank:
        res.reasons.append(f"verdict worsened: {base.verdict.value} → {cur.verdict.value}" + (f" ({cur.verdict_reason})" if cur.verdict_reason else ""))
    return res


def _flag_list(names: list[str]) -> str:
    return ", ".join(md_code(n) for n in names) or "—"


def render_summary(res: CheckResult) -> str:
    """A markdown diff for a CI job summary (``$GITHUB_STEP_SUMMARY``)."""
    cur, base = res.current, res.baseline
    status = "✅ passed" if res.passed else "❌ failed"
    lines = [
        f"## a3bench check: {status}",
        "",
        f"{md_code(res.current_path)} against baseline {md_code(res.baseline_path)} — {md_text(cur.dataset)}, {md_text(cur.norm)} eps {md_text(eps_text(cur))}, "
        f"{cur.n_examples} examples, tolerance {res.max_drop:g} points.",
        "",
        "| | Baseline | Current | Δ |",
        "|---|---:|---:|---:|",
        f"| Clean accuracy (%) | {pct(base.clean_acc)} | {pct(cur.clean_acc)} | {delta(res.clean_delta)} |",
        f"| AutoAttack (%) | {pct(base.autoattack_acc)} | {pct(cur.autoattack_acc)} | "
        f"{delta(cur.autoattack_acc - base.autoattack_acc) if cur.autoattack_acc is not None and base.autoattack_acc is not None else '—'} |",
        f"| Worst case (%) [95% CI] | {ci(base)} | {ci(cur)} | {delta(res.robust_delta)} |",
        f"| Verdict | {md_text(base.verdict)} | {md_text(cur.verdict)} | {'worse' if cur.verdict.rank > base.verdict.rank else ''} |",
        f"| Flags | {_flag_list([f.name for f in base.flags])} | {_flag_list([f.name for f in cur.flags])} | "
        + md_text(" ".join([f"+{n}" for n in res.new_flags] + [f"−{n}" for n in res.resolved_flags]))
        + " |",
    ]
    base_attacks = {a.name: a for a in base.per_attack}
    cur_attacks = {a.name: a for a in cur.per_attack}
    names = [a.name for a in base.per_attack] + [n for n in cur_attacks if n not in base_attacks]
    if names:
        lines += ["", "| Attack | Baseline robust after (%) | Current (%) | Δ |", "|---|---:|---:|---:|"]
        for n in names:
            b, c = base_attacks.get(n), cur_attacks.get(n)
            bv, cv = (b.robust_acc if b else None), (c.robust_acc if c else None)
            d = delta(cv - bv) if bv is not None and cv is not None else "—"
            lines.append(f"| {md_text(n)} | {pct(bv)} | {pct(cv)} | {d} |")
    if res.mcnemar is not None:
        m = res.mcnemar
        lines += [
            "",
            f"**Per example:** {m.newly_broken} newly broken, {m.newly_robust} newly robust "
            f"({m.both_robust} robust in both, {m.both_broken} in neither); exact McNemar p = {m.p_value:.4g}"
            + (" — unlikely to be chance." if m.p_value < 0.05 else "."),
        ]
    if res.reasons:
        lines += ["", "**Why it failed:**", ""] + [f"- {md_text(r)}" for r in res.reasons]
    if res.notes:
        lines += ["", "**Notes:**", ""] + [f"- {md_text(n)}" for n in res.notes]
    return "\n".join(lines) + "\n"


def render_error_summary(message: str, current: str | os.PathLike, baseline: str | os.PathLike) -> str:
    return f"## a3bench check: ⚠️ could not compare\n\n{md_code(current)} against baseline {md_code(baseline)}: {md_text(message)}\n"
