"""Finding what ``report`` and ``check`` consume: result records, the per-example outcomes
beside them, and eps sweeps. Every file is read by the class that wrote it
(:mod:`a3bench.schema`); this module only finds the files and pairs them up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from a3bench.errors import ResultError
from a3bench.schema import (AUXILIARY_SUFFIXES, Outcomes, ResultRecord, SweepRecord, audit_path, outcomes_path, read_audit, read_outcomes,
                            read_record, read_sweep)

# Directories a scan does not enter: our own RobustBench export uses RobustBench's
# field types (strings for numbers), so it must never be read back as records.
SKIPPED_DIRS = frozenset({"model_info", "reports", ".git", "__pycache__"})


@dataclass
class LoadedSweep:
    """An eps sweep and where it was found."""

    record: SweepRecord
    path: Path

    @property
    def plot(self) -> Path | None:
        """The PNG beside the JSON, when the sweep names one that exists."""
        if not self.record.plot:
            return None
        p = self.path.parent / Path(self.record.plot).name
        return p if p.is_file() else None


@dataclass
class LoadedResult:
    """One record with what was found beside it."""

    record: ResultRecord
    path: Path
    outcomes: Outcomes | None = None
    outcomes_error: str | None = None  # why an outcomes file that exists could not be used
    sweep: LoadedSweep | None = None
    label: str | None = None  # shown instead of the file stem when two records share it
    audit: dict | None = None  # the attack audit's summary: the record's own, or the audit file beside it

    @property
    def model_id(self) -> str:
        """The model's identifier: the record's file stem, which the evaluator derives from
        the model name (results/<dataset>/<norm>/<model>.json)."""
        return self.label or self.path.stem

    @property
    def key(self) -> tuple[str, str, float, str]:
        r = self.record
        return (r.dataset, r.norm, r.eps, self.model_id)


def find_json(paths: Sequence[str | os.PathLike], suffix: str = ".json") -> list[Path]:
    """Every file ending in ``suffix`` under ``paths`` (files are taken as given),
    sorted, skipping auxiliary files and :data:`SKIPPED_DIRS` when scanning folders."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                for name in sorted(files):
                    if not name.endswith(suffix):
                        continue
                    if suffix == ".json" and name.endswith(AUXILIARY_SUFFIXES):
                        continue
                    found.append(Path(root) / name)
        else:
            raise ResultError(f"{p} does not exist")
    return found


def find_sweeps(paths: Sequence[str | os.PathLike]) -> list[Path]:
    return [p for p in find_json([d for d in map(Path, paths) if d.is_dir()], ".sweep.json")]


def locate_outcomes(record: ResultRecord, record_path: Path) -> Path | None:
    """Where the record's outcomes file is, if it exists: the file it names, beside the
    record (a record cannot point elsewhere), else ``<stem>.outcomes.json`` beside it."""
    candidates: list[Path] = []
    if record.outcomes_file:
        candidates.append(record_path.parent / Path(record.outcomes_file).name)
    candidates.append(outcomes_path(record_path))
    return next((c for c in candidates if c.is_file()), None)


def _match_sweep(result: LoadedResult, sweeps: Iterable[LoadedSweep]) -> LoadedSweep | None:
    r = result.record
    names = {result.model_id, str(r.model.get("spec", "")), str(r.model.get("name", "")), r.name} - {""}
    for s in sweeps:
        sr = s.record
        if sr.dataset == r.dataset and sr.norm == r.norm and (sr.model in names or s.path.name == f"{result.model_id}.sweep.json"):
            return s
    return None


def load_results(paths: Sequence[str | os.PathLike], keep_duplicates: bool = False) -> tuple[list[LoadedResult], list[str]]:
    """Read every record under ``paths`` with its outcomes and matching sweep.

    Returns the results and warnings (unusable outcomes files, duplicates skipped).
    An unreadable or invalid record raises :class:`ResultError`. With ``keep_duplicates``,
    a second record of the same model and threat (a user's run beside the committed one)
    is kept and labelled with its folder; the same file found twice is still read once.
    """
    warnings: list[str] = []
    sweeps: list[LoadedSweep] = []
    for sp in find_sweeps(paths):
        try:
            sweeps.append(LoadedSweep(read_sweep(sp), sp))
        except ResultError as e:
            warnings.append(f"sweep skipped: {e}")
    results: list[LoadedResult] = []
    seen: dict[tuple, Path] = {}
    files: set[Path] = set()
    for rp in find_json(paths):
        if rp.resolve() in files:
            continue
        files.add(rp.resolve())
        record = read_record(rp)
        res = LoadedResult(record=record, path=rp)
        first = seen.setdefault(res.key, rp)
        if first != rp:
            if not keep_duplicates:
                warnings.append(f"{rp} skipped: same model and threat as {first}")
                continue
            res.label = f"{rp.stem} ({_folder_label(rp)})"
            warnings.append(f"{rp}: same model and threat as {first}; shown beside it as {res.label!r}")
        op = locate_outcomes(record, rp)
        if op is not None:
            try:
                res.outcomes = read_outcomes(op)
            except ResultError as e:
                res.outcomes_error = str(e)
                warnings.append(f"outcomes ignored: {e}")
        res.sweep = _match_sweep(res, sweeps) or _sweep_beside(rp, warnings)
        res.audit = record.audit or _audit_beside(rp, warnings)
        results.append(res)
    return results, warnings


def _folder_label(path: Path) -> str:
    """The record's folder as the user would type it: relative to the working directory when inside it."""
    try:
        return path.parent.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.parent.as_posix()


def _sweep_beside(record_path: Path, warnings: list[str]) -> LoadedSweep | None:
    p = record_path.with_name(record_path.stem + ".sweep.json")
    if not p.is_file():
        return None
    try:
        return LoadedSweep(read_sweep(p), p)
    except ResultError as e:
        warnings.append(f"sweep skipped: {e}")
        return None


def _audit_beside(record_path: Path, warnings: list[str]) -> dict | None:
    p = audit_path(record_path)
    if not p.is_file():
        return None
    try:
        return {"file": p.name, **read_audit(p).summary()}
    except ResultError as e:
        warnings.append(f"audit skipped: {e}")
        return None
