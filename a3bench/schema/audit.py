"""The attack audit ``<model>.audit.json`` (docs/audit.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from a3bench.errors import ResultError
from a3bench.io import write_json_atomic
from a3bench.schema.base import _from_dict, _plain, _read, _short
from a3bench.schema.record import Flag
from a3bench.stats import wilson_interval

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
