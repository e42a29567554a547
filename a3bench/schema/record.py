"""The result record ``results/<dataset>/<norm>/<model>.json`` and what it holds: flags,
per-attack rows, the probe, the evaluation's strength, the audit and adversarial-point
summaries, and the checks that refuse a record out of its ranges (docs/results.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from a3bench.errors import ResultError
from a3bench.io import write_json_atomic
from a3bench.schema.base import AttackKind, AttackStatus, SCHEMA_VERSION, Severity, Verdict, _from_dict, _plain, _read, _short

if TYPE_CHECKING:
    from a3bench.schema.outcomes import Outcomes

# --------------------------------------------------------------------------- the result record


@dataclass
class Flag:
    """A diagnostic that fired (docs/architecture.md#diagnostics-and-the-verdict); see docs/diagnostics.md#<name>."""

    name: str
    severity: Severity
    message: str
    value: float | None = None

    def __post_init__(self) -> None:
        self.severity = Severity(self.severity)


@dataclass
class AttackRecord:
    """One attack of the worst-case cascade."""

    name: str
    robust_acc: float | None  # cumulative: % of all examples still robust after this attack
    broken: int = 0  # examples this attack broke (that every earlier attack had survived)
    n_attacked: int = 0  # examples it ran on (those still robust when it started)
    seconds: float = 0.0
    forward_passes: int = 0
    backward_passes: int = 0
    status: AttackStatus = AttackStatus.RAN
    note: str | None = None  # why it was skipped or failed, or anything worth knowing
    group: str | None = None  # the composite name it came from ("autoattack"), if any
    config: dict[str, Any] = field(default_factory=dict)  # the options that define the attack
    kind: AttackKind = AttackKind.WHITE_BOX

    def __post_init__(self) -> None:
        self.status, self.kind = AttackStatus(self.status), AttackKind(self.kind)


@dataclass
class ProbeRecord:
    """The convergence probe (docs/diagnostics.md#not-converged): diagnostic only, it never
    changes the worst case; its passes count in the record's compute."""

    attack: str
    n_attacked: int
    broken: int
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0
    note: str | None = None


@dataclass
class Strength:
    """How strong the evaluation behind a record was (docs/report.md#evaluation-strength),
    derived from its ``per_attack`` by :func:`a3bench.eval.strength.evaluation_strength`.

    ``complete``: AutoAttack ran completely — every component ran, none skipped or failed —
    in the version the model needs (``standard``; ``rand`` for a randomised model). Only a
    complete evaluation can be ``reliable`` and is ranked on a leaderboard by default."""

    suite: str | None = None
    attacks: list[str] = field(default_factory=list)  # the attacks that ran, in cascade order
    autoattack: str | None = None  # the AutoAttack version that ran completely ("standard", "rand"), if any
    randomised: bool = False  # the model's outputs change between identical passes: it needs "rand"
    complete: bool = False


@dataclass
class ResultRecord:
    """One evaluation: a superset of RobustBench's ``model_info`` fields (docs/architecture.md#the-record)."""

    # RobustBench model_info fields
    name: str
    dataset: str
    eps: float
    clean_acc: float
    robust_acc: float  # worst case over the whole suite
    link: str | None = None
    authors: str | None = None
    additional_data: bool = False
    number_forward_passes: int = 1
    venue: str | None = None
    architecture: str | None = None
    reported: float | None = None  # the paper's number, when the model card gives one
    autoattack_acc: float | None = None
    footnote: str | None = None
    # a3bench fields
    schema_version: int = SCHEMA_VERSION
    norm: str = "Linf"
    eps_text: str = ""
    n_examples: int = 0
    seed: int = 0
    suite: str | None = None
    attacks: list[str] = field(default_factory=list)  # the names asked for (a suite's as of this run)
    notes: list[str] = field(default_factory=list)  # what a3bench changed in the plan, and why
    per_attack: list[AttackRecord] = field(default_factory=list)
    probe: ProbeRecord | None = None
    audit: dict[str, Any] | None = None  # the attack audit's summary (docs/audit.md) and its file, when one ran
    adv: dict[str, Any] | None = None  # the adversarial examples kept (AdvSummary); None: none kept (--no-adv, older records)
    diagnostics: dict[str, Any] = field(default_factory=dict)  # gradient check, where a gradient lies, escalation
    robust_acc_ci: list[float] = field(default_factory=list)  # 95 % Wilson interval, percent
    flags: list[Flag] = field(default_factory=list)
    verdict: Verdict = Verdict.RELIABLE
    verdict_reason: str = ""
    compute: dict[str, Any] = field(default_factory=dict)  # seconds, forward/backward passes (total and per example)
    a3: dict[str, Any] | None = None  # n_layers, n_parameters, config — None for models without A3
    model: dict[str, Any] = field(default_factory=dict)  # spec, source, path, parameters, sha256
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, git SHA, device, command, time
    outcomes_file: str | None = None
    # How strong the evaluation was; derived from per_attack (records older than the field
    # have none stored, and a stored one must agree with per_attack).
    strength: Strength | None = None
    # shared with its outcomes and audit, written together (docs/results.md); which file it is, not what it says
    run_id: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        from a3bench.eval.strength import evaluation_strength

        self.verdict = Verdict(self.verdict)
        self.strength = evaluation_strength(self)  # what per_attack says, whatever was passed

    def to_dict(self) -> dict:
        from a3bench.eval.strength import evaluation_strength

        self.strength = evaluation_strength(self)  # per_attack may have changed since
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Any) -> "ResultRecord":
        if not isinstance(d, dict):
            raise ResultError("a result record must be a JSON object")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ResultError(f"result schema_version {_short(d.get('schema_version'))} is not {SCHEMA_VERSION}")
        rec = _from_dict(cls, d, "")
        if d.get("strength") is not None and _from_dict(Strength, d["strength"], "strength") != rec.strength:
            raise ResultError(f"strength {_short(d['strength'])} does not agree with per_attack")
        _check_record(rec)
        return rec


# Records round accuracies to 4 decimals: two numbers that should agree may differ by that.
_TOL = 1e-3


def _in(value: float | None, where: str, low: float = 0.0, high: float = 100.0) -> None:
    if value is not None and not low <= value <= high:
        raise ResultError(f"{where} must be in [{low:g}, {high:g}], got {_short(value)}")


def _at_least(value: float | int | None, where: str, low: float = 0) -> None:
    if value is not None and value < low:
        raise ResultError(f"{where} must be ≥ {low:g}, got {_short(value)}")


@dataclass
class AuditSummary:
    """What ``record.audit`` holds (:meth:`AuditResult.summary` and the file's name): read
    only to check its shape; the record keeps the object as it is."""

    file: str | None = None
    pass_rate: float | None = None
    pass_rate_ci: list[float] | None = None
    n_testable: int = 0
    n_not_testable: int = 0
    per_attack: dict[str, float | None] = field(default_factory=dict)
    control_pass_rate: float | None = None
    indicators: dict[str, int | None] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def check_audit_summary(data: dict[str, Any]) -> None:
    """``record.audit`` (or an audit's summary) in its ranges; ResultError naming the field otherwise."""
    a = _from_dict(AuditSummary, data, "audit")
    _in(a.pass_rate, "audit.pass_rate")
    _in(a.control_pass_rate, "audit.control_pass_rate")
    for name, rate in a.per_attack.items():
        _in(rate, f"audit.per_attack.{name}")
    _at_least(a.n_testable, "audit.n_testable")
    _at_least(a.n_not_testable, "audit.n_not_testable")
    for name, count in a.indicators.items():
        _at_least(count, f"audit.indicators.{name}")
    if a.pass_rate_ci is not None:
        _check_interval(a.pass_rate_ci, a.pass_rate, "audit.pass_rate_ci")


@dataclass
class AdvSummary:
    """What ``record.adv`` holds: the file of adversarial examples beside the record
    (``<stem>.adv.pt``, docs/results.md#adversarial-examples-advpt), how many points it
    holds and for how many broken examples (those an attack broke, not the clean
    misclassifications). ``points`` < ``broken`` when the run resumed a state from before
    a3bench kept points: the others cannot be re-checked."""

    file: str | None = None
    points: int = 0
    broken: int = 0


def _check_adv_summary(data: dict[str, Any]) -> None:
    a = _from_dict(AdvSummary, data, "adv")
    _at_least(a.points, "adv.points")
    _at_least(a.broken, "adv.broken")
    if a.points > a.broken:
        raise ResultError(f"adv.points ({a.points}) exceeds adv.broken ({a.broken})")


def _check_interval(ci: list[float], value: float | None, where: str) -> None:
    if len(ci) != 2:
        raise ResultError(f"{where} must be [low, high], got {_short(ci)}")
    lo, hi = ci
    _in(lo, f"{where}[0]")
    _in(hi, f"{where}[1]")
    if lo > hi + _TOL:
        raise ResultError(f"{where} is inverted: [{lo:g}, {hi:g}]")
    if value is not None and not lo - _TOL <= value <= hi + _TOL:
        raise ResultError(f"{where} [{lo:g}, {hi:g}] does not contain its value {value:g}")


def _check_record(rec: "ResultRecord") -> None:
    """A record's numbers within their ranges and consistent with each other; the first
    that is not is a ResultError naming the field (``check`` and ``report`` read nothing else)."""
    _in(rec.clean_acc, "clean_acc")
    _in(rec.robust_acc, "robust_acc")
    if rec.robust_acc > rec.clean_acc + _TOL:
        raise ResultError(f"accuracies out of order: robust_acc {rec.robust_acc:g} must be ≤ clean_acc {rec.clean_acc:g}")
    _in(rec.autoattack_acc, "autoattack_acc")
    _in(rec.reported, "reported")
    _at_least(rec.eps, "eps")
    _at_least(rec.n_examples, "n_examples")
    _at_least(rec.seed, "seed")
    _at_least(rec.number_forward_passes, "number_forward_passes")
    if rec.robust_acc_ci:
        _check_interval(rec.robust_acc_ci, rec.robust_acc, "robust_acc_ci")
    for i, a in enumerate(rec.per_attack):
        where = f"per_attack[{i}]"
        _in(a.robust_acc, f"{where}.robust_acc")
        for name in ("broken", "n_attacked", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(a, name), f"{where}.{name}")
        if a.broken > a.n_attacked:
            raise ResultError(f"{where}.broken ({a.broken}) exceeds its n_attacked ({a.n_attacked})")
        if a.robust_acc is None and a.status is AttackStatus.RAN and rec.n_examples:
            raise ResultError(f"{where}.robust_acc is missing for an attack that ran")
        if a.robust_acc is not None and a.robust_acc < rec.robust_acc - _TOL:
            raise ResultError(f"{where}.robust_acc {a.robust_acc:g} is below the worst case robust_acc {rec.robust_acc:g}")
    p = rec.probe
    if p is not None:
        for name in ("n_attacked", "broken", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(p, name), f"probe.{name}")
        if p.broken > p.n_attacked:
            raise ResultError(f"probe.broken ({p.broken}) exceeds its n_attacked ({p.n_attacked})")
    if rec.audit is not None:
        check_audit_summary(rec.audit)
    if rec.adv is not None:
        _check_adv_summary(rec.adv)
        if rec.adv.get("broken", 0) > rec.n_examples:
            raise ResultError(f"adv.broken ({rec.adv.get('broken')}) exceeds n_examples ({rec.n_examples})")
    for key in ("sha256", "spec", "name"):
        if rec.model.get(key) is not None and not isinstance(rec.model.get(key), str):
            raise ResultError(f"model.{key}: expected a string, got {_short(rec.model.get(key))}")


def outcome_problems(record: "ResultRecord", outcomes: "Outcomes") -> list[str]:
    """Where a record disagrees with its own per-example outcomes (the numbers are
    recomputed from them): [] when it agrees. Each problem names the field."""
    problems: list[str] = []
    n = outcomes.n
    if n != record.n_examples:
        return [f"n_examples: the record says {record.n_examples}, its outcomes hold {n} examples"]
    if not n:
        return []

    def pct(k: int) -> float:
        return 100.0 * k / n

    robust = pct(sum(outcomes.robust))
    if abs(robust - record.robust_acc) > _TOL * 5:
        problems.append(f"robust_acc: the record says {record.robust_acc:g} %, its outcomes give {robust:.4g} %")
    if outcomes.clean_correct is not None:
        clean = pct(sum(outcomes.clean_correct))
        if abs(clean - record.clean_acc) > _TOL * 5:
            problems.append(f"clean_acc: the record says {record.clean_acc:g} %, its outcomes give {clean:.4g} %")
    if outcomes.broken_by is not None:
        counts = outcomes.broken_counts()
        for i, a in enumerate(record.per_attack):
            if a.status is not AttackStatus.SKIPPED and counts.get(a.name, 0) != a.broken:
                problems.append(f"per_attack[{i}].broken: the record says {a.name} broke {a.broken}, "
                                f"its outcomes say {counts.get(a.name, 0)}")
                break
        broken = sum(k for by, k in counts.items() if by != "clean")
        if record.adv is not None and record.adv.get("broken") != broken:
            problems.append(f"adv.broken: the record says an attack broke {record.adv.get('broken')} example(s), "
                            f"its outcomes say {broken}")
    return problems


def write_record(path: str | os.PathLike, record: ResultRecord) -> None:
    write_json_atomic(path, record.to_dict())


def read_record(path: str | os.PathLike) -> ResultRecord:
    return _read(ResultRecord, path, "result record")
