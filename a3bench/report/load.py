"""Finding and reading what ``report`` and ``check`` consume: result records, the
per-example outcomes beside them, and eps-sweep results.

Records are read through :func:`a3bench.eval.record.read_record` (strict: a malformed
record is a :class:`~a3bench.errors.ResultError`). Outcomes and sweeps are written by
other commands whose formats may grow, so their readers take only the keys they need
and tolerate the rest.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from a3bench.errors import ResultError
from a3bench.eval.record import ResultRecord, outcomes_path, read_record

# Files that sit beside records but are not records.
AUXILIARY_SUFFIXES = (".outcomes.json", ".state.json", ".sweep.json")
# Directories a scan does not enter: our own RobustBench export uses RobustBench's
# field types (strings for numbers), so it must never be read back as records.
SKIPPED_DIRS = frozenset({"model_info", "reports", ".git", "__pycache__"})


@dataclass
class Outcomes:
    """Per-example results of one run, as far as ``report`` and ``check`` need them.

    ``robust[i]`` is true when example i was classified correctly and no attack broke it.
    ``indices`` are the dataset indices of the examples (None when the file lacks them:
    then two runs cannot be shown to cover the same examples).
    """

    path: Path
    robust: list[bool]
    clean_correct: list[bool] | None = None
    broken_by: list[str | None] | None = None
    indices: list[int] | None = None
    labels: list[int] | None = None

    @property
    def n(self) -> int:
        return len(self.robust)

    def broken_counts(self) -> dict[str, int]:
        """How many examples each attack broke (first breaker only, as the cascade records)."""
        counts: dict[str, int] = {}
        if self.broken_by is None:
            return counts
        for ok, by in zip(self.clean_correct or [True] * self.n, self.broken_by):
            if ok and by is not None:
                counts[str(by)] = counts.get(str(by), 0) + 1
        return counts


@dataclass
class Sweep:
    """An eps sweep (``<out_dir>/<model>.sweep.json``, schema_version 1)."""

    path: Path
    model: str
    dataset: str
    norm: str
    eps: list[float]
    curves: dict[str, list[float | None]]
    plot: Path | None = None  # resolved against the sweep file's folder; None when absent
    flags: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoadedResult:
    """One record with what was found beside it."""

    record: ResultRecord
    path: Path
    outcomes: Outcomes | None = None
    outcomes_error: str | None = None  # why an outcomes file that exists could not be used
    sweep: Sweep | None = None
    label: str | None = None  # shown instead of the file stem when two records share it

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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultError(f"{path} is not valid JSON: {e}") from None
    except OSError as e:
        raise ResultError(f"cannot read {path}: {e.strerror}") from None


def _bool_list(data: dict, key: str, path: Path) -> list[bool] | None:
    v = data.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(b, (bool, int)) for b in v):
        raise ResultError(f"{path}: {key!r} must be a list of booleans")
    return [bool(b) for b in v]


def _int_list(data: dict, key: str, path: Path) -> list[int] | None:
    v = data.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise ResultError(f"{path}: {key!r} must be a list of integers")
    return list(v)


def read_outcomes(path: str | os.PathLike) -> Outcomes:
    """Read a ``<stem>.outcomes.json``.

    Needs either ``robust`` (list of bool) or ``clean_correct`` + ``broken_by``
    (robust = clean_correct and broken_by is null); ``indices`` and ``labels`` are
    optional. Other keys (threat, attacks, seed, ...) are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultError(f"outcomes file {path} does not exist")
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ResultError(f"{path}: an outcomes file must be a JSON object")
    clean = _bool_list(data, "clean_correct", path)
    broken_by = data.get("broken_by")
    if broken_by is not None and (not isinstance(broken_by, list) or not all(b is None or isinstance(b, str) for b in broken_by)):
        raise ResultError(f"{path}: 'broken_by' must be a list of attack names or nulls")
    robust = _bool_list(data, "robust", path)
    if robust is None:
        if clean is None or broken_by is None:
            raise ResultError(f"{path}: needs 'robust' or both 'clean_correct' and 'broken_by'")
        if len(clean) != len(broken_by):
            raise ResultError(f"{path}: 'clean_correct' and 'broken_by' differ in length")
        robust = [c and b is None for c, b in zip(clean, broken_by)]
    indices = _int_list(data, "indices", path)
    labels = _int_list(data, "labels", path)
    for name, v in (("clean_correct", clean), ("broken_by", broken_by), ("indices", indices), ("labels", labels)):
        if v is not None and len(v) != len(robust):
            raise ResultError(f"{path}: {name!r} has {len(v)} entries, expected {len(robust)}")
    return Outcomes(path=path, robust=robust, clean_correct=clean, broken_by=broken_by, indices=indices, labels=labels)


def locate_outcomes(record: ResultRecord, record_path: Path) -> Path | None:
    """Where the record's outcomes file is, if it exists: the path it names (absolute,
    or relative to the record's folder), else ``<stem>.outcomes.json`` beside it."""
    candidates: list[Path] = []
    if record.outcomes_file:
        named = Path(record.outcomes_file)
        candidates += [named] if named.is_absolute() else [record_path.parent / named, record_path.parent / named.name]
    candidates.append(outcomes_path(record_path))
    return next((c for c in candidates if c.is_file()), None)


def _finite_or_none(v: Any, path: Path) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ResultError(f"{path}: curve values must be numbers or null, got {v!r}")
    return float(v)


def read_sweep(path: str | os.PathLike) -> Sweep:
    """Read a ``<model>.sweep.json`` (contract in docs/report.md, "Eps sweeps")."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ResultError(f"{path}: a sweep file must be a JSON object")
    if data.get("schema_version") != 1:
        raise ResultError(f"{path}: sweep schema_version {data.get('schema_version')!r} is not 1")
    try:
        eps = [float(e) for e in data["eps"]]
        curves_raw = data["curves"]
        model, dataset, norm = str(data["model"]), str(data["dataset"]), str(data["norm"])
    except (KeyError, TypeError, ValueError) as e:
        raise ResultError(f"{path}: malformed sweep ({e.__class__.__name__}: {e})") from None
    if not isinstance(curves_raw, dict):
        raise ResultError(f"{path}: 'curves' must map attack names to accuracy lists")
    curves: dict[str, list[float | None]] = {}
    for name, values in curves_raw.items():
        if not isinstance(values, list) or len(values) != len(eps):
            raise ResultError(f"{path}: curve {name!r} must have one value per eps ({len(eps)})")
        curves[str(name)] = [_finite_or_none(v, path) for v in values]
    plot = data.get("plot")
    plot_path = (path.parent / plot) if isinstance(plot, str) and plot else None
    flags = [f for f in data.get("flags") or [] if isinstance(f, dict)]
    return Sweep(path=path, model=model, dataset=dataset, norm=norm, eps=eps, curves=curves, plot=plot_path, flags=flags)


def _match_sweep(result: LoadedResult, sweeps: Iterable[Sweep]) -> Sweep | None:
    r = result.record
    names = {result.model_id, str(r.model.get("spec", "")), str(r.model.get("name", "")), r.name} - {""}
    for s in sweeps:
        if s.dataset == r.dataset and s.norm == r.norm and (s.model in names or s.path.name == f"{result.model_id}.sweep.json"):
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
    sweeps: list[Sweep] = []
    for sp in find_sweeps(paths):
        try:
            sweeps.append(read_sweep(sp))
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
        results.append(res)
    return results, warnings


def _folder_label(path: Path) -> str:
    """The record's folder as the user would type it: relative to the working directory when inside it."""
    try:
        return path.parent.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.parent.as_posix()


def _sweep_beside(record_path: Path, warnings: list[str]) -> Sweep | None:
    p = record_path.with_name(record_path.stem + ".sweep.json")
    if not p.is_file():
        return None
    try:
        return read_sweep(p)
    except ResultError as e:
        warnings.append(f"sweep skipped: {e}")
        return None
