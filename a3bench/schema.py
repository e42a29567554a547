"""Every file a3bench writes and reads back, in one place (docs/results.md).

- the result record ``results/<dataset>/<norm>/<model>.json`` (:class:`ResultRecord`),
- the per-example outcomes beside it ``<model>.outcomes.json`` (:class:`Outcomes`),
- the eps sweep ``<model>.sweep.json`` (:class:`SweepRecord`),
- the resume state of a running evaluation ``<model>.state.json`` (:class:`ResumeState`),
- the model card ``model_zoo/<name>/card.yaml`` (:class:`ModelCard`).

Each is a dataclass that is written with ``to_dict`` and read back with the same class's
``from_dict``, which checks every field's type: numbers are finite numbers (never strings,
booleans, NaN or infinity), enums are one of their values, lists hold what they should.
A file that fails is a :class:`~a3bench.errors.ResultError` with one line naming the file
and the field, so ``report`` and ``check`` never compute with garbage and a CI gate cannot
be passed by a broken record. Readers ignore keys they do not know (files may grow).

Nothing here imports torch: reports and CI gates stay light.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence

from a3bench.errors import ResultError, one_line
from a3bench.io import read_regular_bytes, write_json_atomic
from a3bench.stats import wilson_interval

SCHEMA_VERSION = 1
SWEEP_SCHEMA_VERSION = 1
STATE_VERSION = 1
MAX_FILE_BYTES = 512 * 1024 * 1024  # a record, outcomes or sweep file larger than this is not ours


# --------------------------------------------------------------------------- enums (strings at the edge)


class StrEnum(str, Enum):
    """An enum whose members are their string values everywhere: in JSON, in f-strings, in ==."""

    __str__ = str.__str__
    __format__ = str.__format__


class Verdict(StrEnum):
    """What the diagnostics concluded about an evaluation (docs/diagnostics.md), best first:
    ``rank`` orders them (a CI gate fails when it rises). ``not-evaluated-fully``: no flag
    fired, but the evaluation was weaker than AutoAttack (:class:`Strength`), so its number
    is not one to rank or cite; it is never shown as reliable."""

    RELIABLE = "reliable"
    NOT_EVALUATED_FULLY = "not-evaluated-fully"
    SUSPICIOUS = "suspicious"
    UNRELIABLE = "unreliable"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


class Severity(StrEnum):
    WARNING = "warning"  # → suspicious
    ERROR = "error"  # → unreliable


class AttackStatus(StrEnum):
    RAN = "ran"
    SKIPPED = "skipped"  # does not apply to the model (a note says why)
    FAILED = "failed"  # raised an error; what it broke before stands


class AttackKind(StrEnum):
    """What an attack is, for diagnostics and the runner: they ask this, never the name.

    - ``white-box``: gradients of the deployed model (PGD, APGD, FAB, BPDA ...).
    - ``black-box``: queries only (Square, SPSA): immune to misleading gradients.
    - ``transfer``: crafted on another model or another mode of this one, judged here.
    - ``eot``: gradients averaged over the randomness of a randomised model.
    """

    WHITE_BOX = "white-box"
    BLACK_BOX = "black-box"
    TRANSFER = "transfer"
    EOT = "eot"


# --------------------------------------------------------------------------- typed reading


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(m.value for m in tp)
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp``; a ResultError names ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ResultError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else ResultError(f"{where}: {_short(value)} is not {' or '.join(_type_name(a) for a in args)}")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {_short(value)}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ResultError(f"{where}: expected an object, got {_short(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            raise ResultError(f"{where}: {_short(value)} is not {_type_name(tp)}") from None
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ResultError(f"{where}: expected a finite number, got {_short(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResultError(f"{where}: expected an integer, got {_short(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ResultError(f"{where}: expected true or false, got {_short(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ResultError(f"{where}: expected a string, got {_short(value)}")
        return value
    raise TypeError(f"schema: no reader for {tp!r}")  # a bug in this module, not in the file


def _short(value: Any) -> str:
    return one_line(repr(value), limit=60)


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ResultError(f"{where or cls.__name__}: expected an object, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ResultError(f"{where or cls.__name__}: missing field {f.name!r}")
    return cls(**kwargs)


def _plain(obj: Any) -> Any:
    """A dataclass / enum tree as plain JSON values (enums as their strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Strict JSON from ``path``: a regular file of at most MAX_FILE_BYTES (a device, a FIFO
    or a huge file is refused before it is read, :func:`~a3bench.io.read_regular_bytes`);
    NaN and infinity are refused, so are numbers of thousands of digits and deep nesting."""
    data = read_regular_bytes(path, MAX_FILE_BYTES, what, ResultError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultError(f"{path} is not a text file (not an a3bench {what})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        raise ResultError(f"{path} is not valid JSON: {one_line(e, 120)}") from None


def _read(cls: type, path: str | os.PathLike, what: str) -> Any:
    data = read_json(path, what)
    try:
        return cls.from_dict(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None


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


# --------------------------------------------------------------------------- per-example outcomes


@dataclass
class Outcomes:
    """Per example, in evaluation order (``<stem>.outcomes.json``).

    ``robust[i]``: classified correctly and no attack broke it. Written files hold every
    field; a reader also accepts a file with only ``robust`` or only ``clean_correct`` +
    ``broken_by`` (then ``robust`` is derived) — without ``indices`` two files cannot be
    shown to cover the same examples.
    """

    robust: list[bool]
    indices: list[int] | None = None  # positions in the dataset's test split
    labels: list[int] | None = None
    clean_pred: list[int] | None = None
    clean_correct: list[bool] | None = None
    broken_by: list[str | None] | None = None  # "clean" if misclassified without attack; None if robust
    adv_pred: list[int | None] | None = None  # deployed prediction on the adversarial example that broke it
    adv_distance: list[float | None] | None = None  # its distance to x in the threat model's norm
    # randomised models (docs/architecture.md#the-judge): the share of fresh draws that classify the final
    # adversarial example (or x) correctly; None for deterministic models
    correct_share: list[float | None] | None = None
    run_id: str | None = field(default=None, compare=False)  # the record's (docs/results.md): not an outcome
    path: Path | None = field(default=None, compare=False, metadata={"json": False})

    @property
    def n(self) -> int:
        return len(self.robust)

    def broken_counts(self) -> dict[str, int]:
        """How many examples each attack broke (first breaker only, as the cascade records)."""
        counts: dict[str, int] = {}
        for ok, by in zip(self.clean_correct or [True] * self.n, self.broken_by or []):
            if ok and by is not None:
                counts[by] = counts.get(by, 0) + 1
        return counts

    def to_dict(self) -> dict:
        d = _plain(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: Any) -> "Outcomes":
        if not isinstance(d, dict):
            raise ResultError("an outcomes file must be a JSON object")
        if "robust" not in d:
            if "clean_correct" not in d or "broken_by" not in d:
                raise ResultError("needs 'robust' or both 'clean_correct' and 'broken_by'")
            d = dict(d)
            cc = _coerce(d["clean_correct"], list[bool], "clean_correct")
            bb = _coerce(d["broken_by"], list[str | None], "broken_by")
            if len(cc) != len(bb):
                raise ResultError("'clean_correct' and 'broken_by' differ in length")
            d["robust"] = [c and b is None for c, b in zip(cc, bb)]
        out = _from_dict(cls, d, "")
        for f in dataclasses.fields(cls):
            v = getattr(out, f.name)
            if isinstance(v, list) and len(v) != out.n:
                raise ResultError(f"{f.name!r} has {len(v)} entries, expected {out.n}")
        if out.clean_correct is not None and out.broken_by is not None:
            for i, (r, c, b) in enumerate(zip(out.robust, out.clean_correct, out.broken_by)):
                if r != (c and b is None):
                    raise ResultError(f"robust[{i}] is {str(r).lower()}, but clean_correct and broken_by say otherwise")
        for i, share in enumerate(out.correct_share or []):
            if share is not None and not 0 <= share <= 1:
                raise ResultError(f"correct_share[{i}] must be in [0, 1], got {_short(share)}")
        return out


def write_outcomes(path: str | os.PathLike, outcomes: Outcomes) -> None:
    write_json_atomic(path, outcomes.to_dict())


def read_outcomes(path: str | os.PathLike) -> Outcomes:
    out = _read(Outcomes, path, "outcomes file")
    out.path = Path(path)
    return out


# --------------------------------------------------------------------------- eps sweeps


@dataclass
class SweepPerExample:
    indices: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    clean_correct: list[bool] = field(default_factory=list)
    broken_at: dict[str, list[float | None]] = field(default_factory=dict)  # per curve: smallest eps of the grid found non-robust
    min_norm: list[float | None] | None = None  # FAB's smallest breaking perturbation (None: none found)


@dataclass
class SweepRecord:
    """One eps sweep (``<model>.sweep.json``). ``curves`` maps each attack (and
    ``worst-case`` when there are several) to robust accuracy in percent, one value per eps
    (None: the attack does not apply)."""

    model: str
    dataset: str
    norm: str
    eps: list[float]
    curves: dict[str, list[float | None]]
    schema_version: int = SWEEP_SCHEMA_VERSION
    eps_text: list[str] = field(default_factory=list)
    worst_case: list[float] = field(default_factory=list)
    plot: str | None = None  # file name of the PNG beside the JSON
    flags: list[Flag] = field(default_factory=list)
    clean_acc: float | None = None
    n_examples: int = 0
    seed: int = 0
    cascade: bool = True
    batch_size: int = 256
    attacks: dict[str, list[str]] = field(default_factory=dict)  # curve name -> the attack steps behind it
    skipped: dict[str, str] = field(default_factory=dict)  # curve name -> why it did not run
    failed: dict[str, str] = field(default_factory=dict)  # curve name -> the error that stopped it (what it broke stands)
    compute: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    per_example: SweepPerExample = field(default_factory=SweepPerExample)

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Any) -> "SweepRecord":
        if not isinstance(d, dict):
            raise ResultError("a sweep file must be a JSON object")
        if d.get("schema_version") != SWEEP_SCHEMA_VERSION:
            raise ResultError(f"sweep schema_version {_short(d.get('schema_version'))} is not {SWEEP_SCHEMA_VERSION}")
        rec = _from_dict(cls, d, "")
        for name, values in rec.curves.items():
            if len(values) != len(rec.eps):
                raise ResultError(f"curve {name!r} must have one value per eps ({len(rec.eps)})")
        return rec


def write_sweep(path: str | os.PathLike, sweep: SweepRecord) -> None:
    write_json_atomic(path, sweep.to_dict())


def read_sweep(path: str | os.PathLike) -> SweepRecord:
    return _read(SweepRecord, path, "sweep file")


# --------------------------------------------------------------------------- resume state


@dataclass
class ResumeState:
    """A running evaluation, saved atomically after every batch (``<stem>.state.json``).

    ``identity`` pins what the numbers depend on (weights, examples, threat, seed, batch
    size); ``attacks`` the cascade so far. Resuming is refused when the identity differs,
    or when the finished attacks are not the first attacks of the new plan, so two
    evaluations are never mixed; a plan that only adds attacks after them extends it.
    """

    identity: dict[str, Any]
    clean_pred: list[int]
    broken_by: list[str | None]
    adv_pred: list[int | None]
    adv_distance: list[float | None]
    finished: list[AttackRecord] = field(default_factory=list)  # in cascade order
    current: dict[str, Any] | None = None  # {"index", "todo", "batches_done", "record", "unconfirmed"}
    flags: list[Flag] = field(default_factory=list)
    unconfirmed: dict[str, int] = field(default_factory=dict)
    aa_warnings: list[str] = field(default_factory=list)
    violations: dict[str, int] = field(default_factory=dict)  # only when not strict
    correct_share: list[float | None] | None = None  # randomised models: share of draws still correct
    nonfinite: int = 0  # verdicts whose logits were not finite (clean pass and re-checks)
    diagnostics: dict[str, Any] = field(default_factory=dict)  # gradient check and lie location, before the cascade
    escalation: dict[str, Any] | None = None  # the escalation plan, once one fired (its attacks join the plan)
    rising: list[int] = field(default_factory=list)  # examples whose loss still rose at the end of the probed PGD
    elapsed: float = 0.0  # seconds the evaluation has run so far, over every session that resumed it
    state_version: int = STATE_VERSION

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Any) -> "ResumeState":
        if not isinstance(d, dict):
            raise ResultError("a resume state must be a JSON object")
        if d.get("state_version") != STATE_VERSION:
            raise ResultError(f"state version {_short(d.get('state_version'))}, not {STATE_VERSION}")
        state = _from_dict(cls, d, "")
        n = len(state.clean_pred)
        if not (len(state.broken_by) == len(state.adv_pred) == len(state.adv_distance) == n):
            raise ResultError("per-example lists differ in length")
        _check_state(state, n)
        return state


@dataclass
class CurrentAttack:
    """``state.current``: the attack that was running (the runner keeps it as a plain object)."""

    index: int
    todo: list[int]
    record: AttackRecord
    batches_done: int = 0
    unconfirmed: int = 0
    unit: int | None = None  # examples per batch of this attack (a state from before units: --batch-size)


@dataclass
class EscalationState:
    """``state.escalation``: what was added when the gradients were found to lie
    (docs/diagnostics.md#escalation)."""

    attacks: list[str] = field(default_factory=list)
    reason: str | None = None
    triggers: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    max_passes: int | None = None
    withdrawn: str | None = None


def _check_state(state: "ResumeState", n: int) -> None:
    """Every part of an (edited) resume state the runner reads, in range; ``current`` and
    the identity's attack list normalised to what the runner wrote."""
    attacks = state.identity.get("attacks")
    if attacks is not None:
        _coerce(attacks, list[dict[str, Any]], "identity.attacks")
        for i, a in enumerate(state.finished):  # the finished attacks are the plan's first ones, by name too
            if i < len(attacks) and a.name != attacks[i].get("name"):
                raise ResultError(f"finished[{i}].name {_short(a.name)} is not the plan's attack {_short(attacks[i].get('name'))}")
    for i, k in enumerate(state.rising):
        if not 0 <= k < n:
            raise ResultError(f"rising[{i}] = {k} is not an example of this run (0…{n - 1})")
    if state.correct_share is not None:
        if len(state.correct_share) != n:
            raise ResultError("correct_share differs in length from the per-example lists")
        for i, v in enumerate(state.correct_share):
            if v is not None and not 0 <= v <= 1:
                raise ResultError(f"correct_share[{i}] must be in [0, 1], got {_short(v)}")
    for i, v in enumerate(state.adv_distance):
        _at_least(v, f"adv_distance[{i}]")
    for name, table in (("unconfirmed", state.unconfirmed), ("violations", state.violations)):
        for key, count in table.items():
            _at_least(count, f"{name}.{key}")
    _at_least(state.nonfinite, "nonfinite")
    for i, a in enumerate(state.finished):
        for name in ("broken", "n_attacked", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(a, name), f"finished[{i}].{name}")
        _in(a.robust_acc, f"finished[{i}].robust_acc")
        if a.robust_acc is None and a.status is AttackStatus.RAN and n:
            raise ResultError(f"finished[{i}].robust_acc is missing for an attack that ran")
    if state.escalation is not None:
        _from_dict(EscalationState, state.escalation, "escalation")
    if state.current is not None:
        cur = _from_dict(CurrentAttack, state.current, "current")
        if cur.index != len(state.finished):
            raise ResultError(f"current.index {cur.index} is not the attack after the {len(state.finished)} finished one(s)")
        for i, k in enumerate(cur.todo):
            if not 0 <= k < n:
                raise ResultError(f"current.todo[{i}] = {k} is not an example of this run (0…{n - 1})")
        if len(set(cur.todo)) != len(cur.todo):
            raise ResultError("current.todo lists an example twice")
        _at_least(cur.batches_done, "current.batches_done")
        bs = cur.unit if cur.unit is not None else state.identity.get("batch_size")
        if cur.unit is not None and cur.unit < 1:
            raise ResultError(f"current.unit must be ≥ 1, got {cur.unit}")
        if isinstance(bs, int) and not isinstance(bs, bool) and bs > 0 and cur.batches_done > -(-len(cur.todo) // bs):
            raise ResultError(f"current.batches_done {cur.batches_done} is more than its {len(cur.todo)} example(s) make")
        _at_least(cur.unconfirmed, "current.unconfirmed")
        for name in ("broken", "n_attacked", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(cur.record, name), f"current.record.{name}")
        state.current = {"index": cur.index, "todo": cur.todo, "batches_done": cur.batches_done,
                         "record": _plain(cur.record), "unconfirmed": cur.unconfirmed,
                         **({"unit": cur.unit} if cur.unit is not None else {})}


def write_state(path: str | os.PathLike, state: ResumeState) -> None:
    write_json_atomic(path, state.to_dict())


def read_state(path: str | os.PathLike) -> ResumeState:
    try:
        return _read(ResumeState, path, "resume state")
    except ResultError as e:
        raise ResultError(f"{e}; delete it to start over") from None


# --------------------------------------------------------------------------- model cards


@dataclass
class ModelCard:
    """``model_zoo/<name>/card.yaml``: what a zoo model is, for records and leaderboards.

    Known fields are typed; anything else a card carries (training details, a defense's
    own settings) is kept in ``extra`` as it is.
    """

    name: str | None = None
    description: str | None = None
    architecture: str | None = None
    dataset: str | None = None
    link: str | None = None
    authors: str | list[str] | None = None
    venue: str | None = None
    additional_data: bool = False
    number_forward_passes: int = 1
    reported: float | None = None
    footnote: str | None = None
    threat_model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> "ModelCard":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ResultError("a model card must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        card = _from_dict(cls, {k: v for k, v in d.items() if k in known}, "")
        card.extra = {str(k): v for k, v in d.items() if k not in known}
        if not 1 <= card.number_forward_passes <= 1_000_000:
            raise ResultError(f"number_forward_passes must be in 1…1000000, got {card.number_forward_passes}")
        return card

    @property
    def authors_text(self) -> str | None:
        return ", ".join(self.authors) if isinstance(self.authors, list) else self.authors


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read a card.yaml: bounded YAML (:mod:`a3bench.limits`: size, aliases and expanded size
    capped, plain data only), then every field a3bench reads typed."""
    from a3bench.limits import check_plain, read_yaml

    data = read_yaml(Path(path), ResultError)
    check_plain(data, str(path), ResultError)
    try:
        return ModelCard.from_dict(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None


# --------------------------------------------------------------------------- attack audits


AUDIT_SCHEMA_VERSION = 1
INDICATOR_NAMES = ("unconstrained_failure", "silent_success", "non_converging")


@dataclass(frozen=True)
class AuditSettings:
    """The choices the papers leave open (docs/audit.md says why each value).

    Binarization test: ``n_inner`` inner points per example, uniform in the eps-ball ∩
    [0,1]; the boundary point at ``boundary_radius``·eps from x; the readout is a
    class-balanced, L2-regularised (``readout_l2``) logistic regression on standardised
    features, solved by ``readout_steps`` Newton steps, its threshold then moved halfway
    between the highest class-0 score and the boundary point's score. ``n_control`` more
    uniform points per example, not used for the fit, measure how often a random point
    of the ball is already class 1 (the pass rate an attack gets for free). ``draws``:
    forward passes averaged (features) and majority-voted (the verdict) when the model is
    randomised.

    Indicators: the unbounded eps is the box's diameter (Linf: upper−lower; L2: that ×
    √dimension). Non-converging loss: over the last ``window`` fraction of the iterations
    (at least 2) the best loss still rose by more than ``rise`` of its total rise;
    needs ``min_steps`` iterations.
    """

    n_inner: int = 31
    n_control: int = 4
    boundary_radius: float = 0.99
    readout_steps: int = 20
    readout_l2: float = 1e-3
    draws: int = 8
    window: float = 0.1
    rise: float = 0.05
    min_steps: int = 5

    def __post_init__(self) -> None:
        if self.n_inner < 1 or self.readout_steps < 1 or self.draws < 1 or self.min_steps < 2 or self.n_control < 0:
            raise ResultError("audit settings: n_inner, readout_steps, draws must be ≥ 1, n_control ≥ 0, min_steps ≥ 2")
        if not 0 < self.boundary_radius <= 1:
            raise ResultError(f"audit settings: boundary_radius must be in (0, 1], got {self.boundary_radius}")
        if not 0 < self.window < 1 or self.rise < 0:
            raise ResultError("audit settings: window must be in (0, 1) and rise ≥ 0")


@dataclass
class BinarizationTest:
    """One attack's binarization test. ``passed[i]`` is None where example i is not testable."""

    attack: str
    status: str = "ran"  # "ran" | "skipped" (does not apply to the binary model) | "failed" (raised)
    note: str | None = None
    passed: list[bool | None] = field(default_factory=list)
    n_testable: int = 0
    n_passed: int = 0
    pass_rate: float | None = None  # percent of the testable examples
    pass_rate_ci: list[float] | None = None  # 95 % Wilson interval, percent
    seconds: float = 0.0
    forward_passes: int = 0
    backward_passes: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def finish(self, testable: Sequence[bool]) -> None:
        self.n_testable = sum(bool(t) for t in testable)
        self.n_passed = sum(bool(p) for p in self.passed)
        self.pass_rate = self.pass_rate_ci = None
        if self.status == "ran" and self.n_testable:
            self.pass_rate = round(100.0 * self.n_passed / self.n_testable, 4)
            self.pass_rate_ci = [round(v, 4) for v in wilson_interval(self.n_passed, self.n_testable)]


@dataclass
class Indicators:
    """One attack's indicators of failure, per example (None: not audited — misclassified
    when clean — or, for a whole list, not available for this attack)."""

    attack: str
    status: str = "ran"
    note: str | None = None
    unbounded_eps: float | None = None
    attacked: list[bool] = field(default_factory=list)  # correctly classified: what the attack ran on
    bounded_success: list[bool | None] = field(default_factory=list)
    unconstrained_failure: list[bool | None] = field(default_factory=list)
    silent_success: list[bool | None] | None = None  # None: the attack gives no loss trace
    non_converging: list[bool | None] | None = None
    seconds: float = 0.0
    forward_passes: int = 0
    backward_passes: int = 0

    def count(self, name: str) -> int | None:
        values = getattr(self, name)
        return None if values is None else sum(bool(v) for v in values)

    @property
    def n_attacked(self) -> int:
        return sum(self.attacked)


@dataclass
class AuditResult:
    """What ``a3bench audit`` writes (``<model>.audit.json``, layout in docs/audit.md)."""

    name: str | None
    dataset: str | None
    norm: str
    eps: float
    seed: int
    n_examples: int
    indices: list[int]
    settings: AuditSettings
    features: str  # what the binary readout reads (FeatureMap.description)
    randomized: bool
    testable: list[bool]
    binarization: list[BinarizationTest]
    suite: BinarizationTest | None  # an example passes when any attack that ran passes it
    control: BinarizationTest | None  # "random-point": a uniform point of the ball, no attack
    indicators: list[Indicators]
    flags: list[Flag] = field(default_factory=list)
    compute: dict[str, float] = field(default_factory=dict)
    schema_version: int = AUDIT_SCHEMA_VERSION
    kind: str = "audit"
    run_id: str | None = None  # the record's, when written by attack --audit (docs/results.md#run-ids-a-record-and-its-sidecars-change-together)
    model: dict[str, Any] = field(default_factory=dict)  # sha256 and spec of the audited model, as in a record

    @property
    def n_testable(self) -> int:
        return sum(self.testable)

    def summary(self) -> dict[str, Any]:
        """The few numbers a record and a leaderboard row carry (docs/audit.md)."""
        s = self.suite
        return {
            "pass_rate": None if s is None else s.pass_rate,
            "pass_rate_ci": None if s is None else s.pass_rate_ci,
            "n_testable": self.n_testable,
            "n_not_testable": self.n_examples - self.n_testable,
            "per_attack": {b.attack: b.pass_rate for b in self.binarization},
            "control_pass_rate": None if self.control is None else self.control.pass_rate,
            "indicators": {name: self.examples_with(name) for name in INDICATOR_NAMES},
            "flags": [f.name for f in self.flags],
        }

    def examples_with(self, indicator: str) -> int | None:
        """How many examples trigger ``indicator`` for at least one attack (None: available for none)."""
        lists = [getattr(i, indicator) for i in self.indicators if i.status == "ran" and getattr(i, indicator) is not None]
        if not lists:
            return None
        return sum(any(bool(values[k]) for values in lists) for k in range(self.n_examples))

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        return {"schema_version": d.pop("schema_version"), "kind": d.pop("kind"), **d}

    @classmethod
    def from_dict(cls, d: Any) -> "AuditResult":
        if not isinstance(d, dict) or d.get("kind") != "audit":
            raise ResultError("not an audit file (kind != 'audit')")
        if d.get("schema_version") != AUDIT_SCHEMA_VERSION:
            raise ResultError(f"audit schema_version {_short(d.get('schema_version'))} is not {AUDIT_SCHEMA_VERSION}")
        return _from_dict(cls, d, "")


def write_audit(path: str | os.PathLike, result: AuditResult) -> None:
    write_json_atomic(path, result.to_dict())


def read_audit(path: str | os.PathLike) -> AuditResult:
    return _read(AuditResult, path, "audit file")


# --------------------------------------------------------------------------- where the files go


# Paths, sidecar suffixes and the runs/ rule live in a3bench/results.py; these names are
# kept here for the code that imported them from the schema.
_MOVED = ("AUXILIARY_SUFFIXES", "default_result_path", "outcomes_path", "audit_path", "state_path", "settings_differ")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from a3bench import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
