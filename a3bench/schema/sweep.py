"""The eps sweep ``<model>.sweep.json`` (docs/sweep.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from a3bench.errors import ResultError
from a3bench.io import write_json_atomic
from a3bench.schema.base import SWEEP_SCHEMA_VERSION, _from_dict, _plain, _read, _short
from a3bench.schema.record import Flag

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
