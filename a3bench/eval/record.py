"""Result records: one JSON per (model, dataset, threat) — DESIGN §5, docs/results.md.

Numbers are numbers (percentages as 73.71, never "73.71"). Records are written
atomically. Per-example outcomes sit beside the record in ``<stem>.outcomes.json``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from a3bench.errors import ResultError
from a3bench.io import safe_name, write_json_atomic

SCHEMA_VERSION = 1


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
    status: str = "ran"  # "ran" | "skipped" | "failed" (raised an error; what it broke before stands)
    note: str | None = None  # why it was skipped or failed, or anything worth knowing
    group: str | None = None  # the composite name it came from ("autoattack"), if any
    config: dict[str, Any] = field(default_factory=dict)  # the options that define the attack


@dataclass
class Flag:
    """A diagnostic that fired (DESIGN §4); see docs/diagnostics.md#<name>."""

    name: str
    severity: str  # "warning" (suspicious) | "error" (unreliable)
    message: str
    value: float | None = None


@dataclass
class ResultRecord:
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
    attacks: list[str] = field(default_factory=list)
    per_attack: list[AttackRecord] = field(default_factory=list)
    robust_acc_ci: list[float] = field(default_factory=list)  # 95 % Wilson interval, percent
    flags: list[Flag] = field(default_factory=list)
    verdict: str = "reliable"  # reliable | suspicious | unreliable
    verdict_reason: str = ""
    compute: dict[str, Any] = field(default_factory=dict)  # seconds, forward/backward passes (total and per example)
    a3: dict[str, Any] | None = None  # n_layers, n_parameters, config — None for models without A3
    model: dict[str, Any] = field(default_factory=dict)  # spec, source, path, parameters
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, git SHA, device, command, time
    outcomes_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ResultRecord":
        if not isinstance(d, dict):
            raise ResultError("a result record must be a JSON object")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ResultError(f"result schema_version {d.get('schema_version')!r} is not {SCHEMA_VERSION}")
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in d.items() if k in known}
        try:
            data["per_attack"] = [AttackRecord(**a) for a in d.get("per_attack", [])]
            data["flags"] = [Flag(**f) for f in d.get("flags", [])]
            return cls(**data)
        except TypeError as e:
            raise ResultError(f"malformed result record: {e}") from None


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion, in percent."""
    if n == 0:
        return (0.0, 100.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half))


def write_record(path: str | os.PathLike, record: ResultRecord) -> None:
    write_json_atomic(path, record.to_dict())


def read_record(path: str | os.PathLike) -> ResultRecord:
    path = Path(path)
    if not path.is_file():
        raise ResultError(f"result file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{path} is not valid JSON: {e}") from None
    try:
        return ResultRecord.from_dict(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None


def default_result_path(dataset: str, norm: str, model_name: str, root: str | os.PathLike = "results") -> Path:
    return Path(root) / safe_name(dataset) / safe_name(norm) / f"{safe_name(model_name)}.json"


def settings_differ(path: str | os.PathLike, settings: dict) -> list[str]:
    """Which of ``settings`` (record field → value: suite, attacks, eps, norm, n_examples,
    seed) the record at ``path`` was made with differently; [] when there is no record there
    or it is the same evaluation. A list given for a field stored as an object is compared
    with the object's keys (a sweep's curve names). An unreadable file counts as different
    ("record")."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return ["record"]
    if not isinstance(data, dict):
        return ["record"]

    def stored(k, v):
        value = data.get(k)
        return list(value) if isinstance(value, dict) and isinstance(v, list) else value

    return [k for k, v in settings.items() if stored(k, v) != v]


def outcomes_path(record_path: str | os.PathLike) -> Path:
    p = Path(record_path)
    return p.with_name(p.stem + ".outcomes.json")
