"""Finding what ``report`` and ``check`` consume: result records, the per-example outcomes
beside them, eps sweeps and attack audits. Every file is read by the class that wrote it
(:mod:`a3bench.schema`); this module finds the files and pairs them up.

A sweep or an audit is shown with a record only when it is about the same evaluation
(docs/report.md#what-is-attached-to-a-record): the same model (sha256 of the weights, when
either file records it), the same folder, the same number of examples and the same eps,
and, for an audit, attacks the record ran. Anything else beside a record is left out
with a warning that says why.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from a3bench.errors import ResultError, one_line
from a3bench.schema import (AUXILIARY_SUFFIXES, AuditSummary, Flag, Outcomes, ResultRecord, SweepRecord, _from_dict, audit_path,
                            check_audit_summary, outcomes_path, read_audit, read_outcomes, read_record, read_sweep)

# Directories a scan does not enter: our own RobustBench export uses RobustBench's
# field types (strings for numbers), so it must never be read back as records.
SKIPPED_DIRS = frozenset({"model_info", "reports", ".git", "__pycache__"})
EPS_TOL = 1e-9


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

    @property
    def attacks(self) -> list[str]:
        return [c for c in self.record.curves if c != "worst-case"]


@dataclass
class AttachedAudit:
    """An attack audit shown with a record, and what it was run with."""

    summary: AuditSummary
    n_examples: int
    attacks: list[str]
    source: str  # "record" (``attack --audit``: part of the run) or the audit file's name
    seed: int | None = None
    flags: list[Flag] = field(default_factory=list)  # the audit's own flags, with their severities where known


@dataclass
class LoadedResult:
    """One record with what was found beside it."""

    record: ResultRecord
    path: Path
    outcomes: Outcomes | None = None
    outcomes_error: str | None = None  # why an outcomes file that exists could not be used
    sweep: LoadedSweep | None = None
    label: str | None = None  # shown instead of the file stem when two records share it
    audit: AttachedAudit | None = None

    @property
    def model_id(self) -> str:
        """The model's identifier: the record's file stem, which the evaluator derives from
        the model name (results/<dataset>/<norm>/<model>.json)."""
        return self.label or self.path.stem

    @property
    def key(self) -> tuple[str, str, float, str]:
        r = self.record
        return (r.dataset, r.norm, r.eps, self.model_id)

    @property
    def names(self) -> set[str]:
        """Every name the model goes by in this record."""
        m = self.record.model or {}
        return {self.path.stem, str(m.get("spec") or ""), str(m.get("name") or ""), self.record.name} - {""}

    @property
    def model_identity(self) -> str:
        """What makes two records records of one model: the weights' sha256, else the spec, else the file name."""
        m = self.record.model or {}
        for key in ("sha256", "spec"):
            if isinstance(m.get(key), str) and m[key]:
                return f"{key}:{m[key]}"
        return f"name:{self.path.stem}"


def model_mismatch(res: LoadedResult, sha256: Any, name: Any) -> str | None:
    """Why a sweep or an audit (its model's sha256 and name) is not of the record's model;
    None when it is: the weights' sha256 when either side records one, else the name."""
    mine = (res.record.model or {}).get("sha256")
    if mine and not sha256:
        return "it does not record which weights it ran on (sha256; made before a3bench recorded them): run it again"
    if mine or sha256:
        return None if isinstance(mine, str) and mine == sha256 else "another model (the weights differ)"
    return None if isinstance(name, str) and name in res.names else f"another model ({name})"


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


# --------------------------------------------------------------------------- sweeps


def sweep_mismatch(res: LoadedResult, s: LoadedSweep) -> str | None:
    """Why the sweep is not about the record's evaluation; None when it is."""
    r, sr = res.record, s.record
    if (sr.dataset, sr.norm) != (r.dataset, r.norm):
        return f"another dataset or norm ({sr.dataset} {sr.norm})"
    why = model_mismatch(res, (sr.model_info or {}).get("sha256"), sr.model)
    if why:
        return why
    if s.path.parent.resolve() != res.path.parent.resolve():
        return f"another folder ({s.path.parent})"
    if sr.n_examples != r.n_examples:
        return f"another number of examples ({sr.n_examples}, the record {r.n_examples})"
    if not any(abs(e - r.eps) <= EPS_TOL for e in sr.eps):
        return f"its eps grid does not hold the record's eps {r.eps:g}"
    return None


def _attach_sweep(res: LoadedResult, sweeps: Iterable[LoadedSweep], warnings: list[str]) -> None:
    """The sweep of this evaluation: in the record's folder, same model, n and eps. A sweep
    that names this model but fails a test is left out, with a warning."""
    for s in sweeps:
        candidate = s.path.name == f"{res.path.stem}.sweep.json" or (s.record.model in res.names and s.record.dataset == res.record.dataset)
        if not candidate:
            continue
        why = sweep_mismatch(res, s)
        if why is None:
            res.sweep = s
            return
        if s.path.parent.resolve() == res.path.parent.resolve() or s.path.name == f"{res.path.stem}.sweep.json":
            warnings.append(f"sweep {s.path} not shown with {res.path}: {why}")


# --------------------------------------------------------------------------- audits


def summary_from(data: Any, where: str) -> AuditSummary:
    """A record's ``audit`` (or an audit's summary) typed and range-checked; ResultError otherwise."""
    known = {k: v for k, v in data.items() if k in AuditSummary.__dataclass_fields__} if isinstance(data, dict) else data
    try:
        s = _from_dict(AuditSummary, known, "audit")
        check_audit_summary(known)
    except ResultError as e:
        raise ResultError(f"{where}: audit: {one_line(e, 160)}") from None
    return s


def _embedded_audit(res: LoadedResult, warnings: list[str]) -> AttachedAudit | None:
    """``attack --audit``: the audit is part of the run (same model and threat); its flags are in the record's."""
    data = res.record.audit
    try:
        s = summary_from(data, str(res.path))
    except ResultError as e:
        warnings.append(f"{e}; the audit is not shown")
        return None
    flags = [f for f in res.record.flags if f.name in set(s.flags)]
    return AttachedAudit(s, s.n_testable + s.n_not_testable, list(s.per_attack), "record", res.record.seed, flags)


def audit_mismatch(res: LoadedResult, audit) -> str | None:
    """Why an audit file is not about the record's evaluation; None when it is."""
    r = res.record
    if (audit.dataset, audit.norm) != (r.dataset, r.norm) or not math.isclose(audit.eps, r.eps, rel_tol=0, abs_tol=EPS_TOL):
        return f"another threat ({audit.dataset} {audit.norm} eps {audit.eps:g})"
    why = model_mismatch(res, (audit.model or {}).get("sha256"), audit.name)
    if why:
        return why
    if audit.n_examples != r.n_examples:
        return f"another number of examples ({audit.n_examples}, the record {r.n_examples})"
    ran = set(r.strength.attacks if r.strength else [])
    other = [b.attack for b in audit.binarization if b.attack not in ran]
    if other:
        return f"it audited attacks this run did not run ({', '.join(other)})"
    return None


def _audit_beside(res: LoadedResult, warnings: list[str]) -> AttachedAudit | None:
    p = audit_path(res.path)
    if not p.is_file():
        return None
    try:
        audit = read_audit(p)
        s = summary_from({"file": p.name, **audit.summary()}, str(p))
    except ResultError as e:
        warnings.append(f"audit skipped: {e}")
        return None
    why = audit_mismatch(res, audit)
    if why is not None:
        warnings.append(f"audit {p} not shown with {res.path}: {why}")
        return None
    return AttachedAudit(s, audit.n_examples, [b.attack for b in audit.binarization], p.name, audit.seed, list(audit.flags))


# --------------------------------------------------------------------------- all of it


def load_results(paths: Sequence[str | os.PathLike], keep_duplicates: bool = False) -> tuple[list[LoadedResult], list[str]]:
    """Read every record under ``paths`` with its outcomes and the sweep and audit of the
    same evaluation.

    Returns the results and warnings (unusable outcomes files, sweeps and audits left
    out, duplicates skipped). An unreadable or invalid record raises :class:`ResultError`.
    With ``keep_duplicates``, a second record of the same model and threat (a user's run
    beside the committed one) is kept and labelled with its folder; the same file found
    twice is still read once.
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
        beside = rp.with_name(rp.stem + ".sweep.json")
        if beside.is_file() and not any(s.path.resolve() == beside.resolve() for s in sweeps):
            try:
                sweeps.append(LoadedSweep(read_sweep(beside), beside))
            except ResultError as e:
                warnings.append(f"sweep skipped: {e}")
        _attach_sweep(res, sweeps, warnings)
        res.audit = _embedded_audit(res, warnings) if record.audit is not None else _audit_beside(res, warnings)
        results.append(res)
    return results, warnings


def _folder_label(path: Path) -> str:
    """The record's folder as the user would type it: relative to the working directory when inside it."""
    try:
        return path.parent.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.parent.as_posix()
