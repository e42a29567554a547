"""RobustBench's ``model_info`` format, both ways.

Export: results as RobustBench ``model_info`` JSON files, in RobustBench's own layout:
``<out>/model_info/<dataset>/<threat_model>/<Model_Name>.json``.

Import: RobustBench's published entries (a ``model_info`` folder of its repository), so
that a leaderboard can place a3bench's measured rows among them.

RobustBench's files keep numbers as strings ("89.69", eps "8/255"); its readers
(``robustbench.utils.list_available_models``, the leaderboard template) call
``float()`` on ``clean_acc`` and on the first of ``external`` / ``autoattack_acc``
present, and read ``name``, ``link``, ``venue``, ``architecture``, ``authors``,
``additional_data``. ``external`` holds a stronger (adaptive) evaluation's accuracy
when it is below AutoAttack's, as in RobustBench's own files; ``unreliable`` marks
entries whose evaluation is known to be unsound.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a3bench.errors import ResultError, one_line
from a3bench.eval.strength import is_external
from a3bench.io import inside, safe_name, write_json_atomic
from a3bench.schema import read_json
from a3bench.report.fmt import eps_text, external_href
from a3bench.report.formats import ReportFormat, ReportJob, ReportOutput
from a3bench.report.load import LoadedResult

# RobustBench's BenchmarkDataset and ThreatModel values (robustbench.model_zoo.enums).
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
ROBUSTBENCH_THREATS = ("Linf", "L2")
# RobustBench evaluates on the whole test set of CIFAR and on 5,000 ImageNet images: the n
# behind a published number, used for its 95 % interval beside ours.
PUBLISHED_N_EXAMPLES = {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000}


# --------------------------------------------------------------------------- export


def _acc(v: float) -> str:
    # RobustBench rounds to two decimals: str(round(accuracy * 100, 2)).
    return str(round(float(v), 2))


def model_info(res: LoadedResult) -> dict[str, Any]:
    """One result as a RobustBench model_info dict (field order as in RobustBench's files)."""
    r = res.record
    info: dict[str, Any] = {
        # RobustBench's pages make `link` a hyperlink: only a URL, never a path of this checkout.
        "link": external_href(r.link) or "",
        "name": r.name or res.model_id,
        "authors": r.authors or "",
        "additional_data": bool(r.additional_data),
        "number_forward_passes": int(r.number_forward_passes),
        "dataset": r.dataset,
        "venue": r.venue or "N/A",  # what RobustBench's own Standard.json uses for unpublished models
        "architecture": r.architecture or "",
        "eps": eps_text(r),
        "clean_acc": _acc(r.clean_acc),
        "reported": _acc(r.reported) if r.reported is not None else "",  # "" as in RobustBench's files without one
    }
    if r.autoattack_acc is not None:
        info["autoattack_acc"] = _acc(r.autoattack_acc)
    notes = [r.footnote] if r.footnote else []
    # RobustBench ranks by "external" when present, so it must hold our worst case whenever
    # that is lower than AutoAttack's (or AutoAttack was not run at all).
    if r.autoattack_acc is None or round(r.robust_acc, 2) < round(r.autoattack_acc, 2):
        info["external"] = _acc(r.robust_acc)
        ran = r.strength.attacks if r.strength is not None else []  # the attacks that ran, not those skipped
        suite = f" ({', '.join(ran)})" if ran else ""
        if is_external(r):
            notes.append(f"{_acc(r.robust_acc)}% robust accuracy is from an external evaluation on {r.n_examples} examples, "
                         "its adversarial examples re-checked by a3bench verify.")
        else:
            notes.append(f"{_acc(r.robust_acc)}% robust accuracy is from a3bench's adaptive worst case{suite} on {r.n_examples} examples.")
    if r.flags:
        notes.append(f"a3bench diagnostics: {r.verdict} ({', '.join(f.name for f in r.flags)}).")
    if notes:
        info["footnote"] = " ".join(notes)
    info["unreliable"] = r.verdict == "unreliable"
    return info


def export_path(res: LoadedResult, out_dir: str | os.PathLike) -> Path:
    """``<out_dir>/model_info/<dataset>/<norm>/<model>.json``, every part made a safe file
    name: a record whose dataset is ``/etc`` or ``../..`` still lands under ``out_dir``."""
    r = res.record
    folder = inside(out_dir, "model_info", r.dataset, r.norm)
    path = folder / f"{safe_name(res.model_id)}.json"
    if not path.resolve().is_relative_to(Path(out_dir).resolve()):  # belt and braces: symlinks
        raise ResultError(f"{res.path}: refusing to write {path}, outside {out_dir}")
    return path


def export_robustbench(results: list[LoadedResult], out_dir: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Write one model_info JSON per result; returns the paths and warnings (datasets or
    threat models RobustBench has no leaderboard for are exported but warned about)."""
    written: list[Path] = []
    warnings: list[str] = []
    for res in results:
        r = res.record
        if r.dataset not in ROBUSTBENCH_DATASETS:
            warnings.append(f"{res.model_id}: RobustBench has no {r.dataset!r} leaderboard (it has {', '.join(ROBUSTBENCH_DATASETS)})")
        if r.norm not in ROBUSTBENCH_THREATS:
            warnings.append(f"{res.model_id}: RobustBench has no {r.norm!r} threat model")
        path = export_path(res, out_dir)
        if path in written:
            warnings.append(f"{path} written twice (two eps for one model and norm): the last one wins")
        write_json_atomic(path, model_info(res))
        written.append(path)
    return written, warnings


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class PublishedEntry:
    """One entry of RobustBench's leaderboard as RobustBench publishes it: numbers measured
    by RobustBench or the paper's authors, not by a3bench."""

    model_id: str  # RobustBench's model name: the file stem (Carmon2019Unlabeled)
    dataset: str
    threat_model: str  # Linf, L2, corruptions
    name: str  # the paper's title
    link: str
    authors: str
    venue: str
    architecture: str
    additional_data: bool
    number_forward_passes: int
    eps: float | None  # None for corruptions
    eps_text: str
    clean_acc: float
    autoattack_acc: float | None
    external: float | None  # a stronger evaluation than AutoAttack, when RobustBench lists one
    reported: float | None  # the paper's own number
    corruptions_acc: float | None
    unreliable: bool
    footnote: str
    path: Path

    @property
    def robust_acc(self) -> float | None:
        """RobustBench's ranking number: ``external`` when present, else AutoAttack's."""
        return self.external if self.external is not None else self.autoattack_acc

    @property
    def n_examples(self) -> int | None:
        return PUBLISHED_N_EXAMPLES.get(self.dataset)


_MISSING = (None, "", "null", "none", "n/a", "-")


def _number(data: dict, key: str, path: Path, required: bool = False) -> float | None:
    """RobustBench's numbers are strings ("89.69"); a few files hold "" or "null" for an
    unknown one. Anything else that is not a finite number is malformed."""
    v = data.get(key)
    if isinstance(v, str) and v.strip().lower() in _MISSING or v is None:
        if required:
            raise ResultError(f"{path}: {key!r} is missing")
        return None
    if isinstance(v, bool):
        raise ResultError(f"{path}: {key!r} must be a number, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        raise ResultError(f"{path}: {key!r} must be a number, got {one_line(repr(v), 40)}") from None
    if not math.isfinite(x):
        raise ResultError(f"{path}: {key!r} must be finite, got {one_line(repr(v), 40)}")
    if not 0 <= x <= 100:
        raise ResultError(f"{path}: {key!r} must be a percentage in [0, 100], got {x:.6g}")
    return x


def _eps(v: Any, path: Path) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise ResultError(f"{path}: eps must be a number or a fraction, got {one_line(repr(v), 40)}")
    text = str(v).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            x = float(num) / float(den)
        else:
            x = float(text)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ResultError(f"{path}: eps {text[:40]!r} is not a number or a fraction") from None
    if not (math.isfinite(x) and x >= 0):
        raise ResultError(f"{path}: eps {text[:40]!r} is not a budget")
    return x


def _text(data: dict, key: str, path: Path) -> str:
    """A text field; anything else (a list, an object) is refused, not printed."""
    v = data.get(key)
    if v is None:
        return ""
    if isinstance(v, dict | list):
        raise ResultError(f"{path}: {key!r} must be text, got a JSON {type(v).__name__}")
    return " ".join(str(v).split())[:1000]


def read_published_entry(path: str | os.PathLike, dataset: str, threat_model: str) -> PublishedEntry:
    path = Path(path)
    data = read_json(path, "RobustBench model_info file")  # bounded, strict: no NaN, no nesting that overflows the stack
    if not isinstance(data, dict):
        raise ResultError(f"{path}: a model_info file must be a JSON object")
    passes = data.get("number_forward_passes", 1)
    if isinstance(passes, bool) or not isinstance(passes, int) or not 1 <= passes <= 1_000_000:
        raise ResultError(f"{path}: 'number_forward_passes' must be an integer in 1…1000000")
    return PublishedEntry(
        model_id=path.stem,
        dataset=dataset,
        threat_model=threat_model,
        name=_text(data, "name", path),
        link=_text(data, "link", path),
        authors=_text(data, "authors", path),
        # RobustBench writes HTML line breaks into a few venues ("GitHub,<br>Oct 2019").
        venue=re.sub(r",?\s*<br\s*/?>\s*", ", ", _text(data, "venue", path)),
        architecture=_text(data, "architecture", path),
        additional_data=bool(data.get("additional_data", False)),
        number_forward_passes=passes,
        eps=_eps(data.get("eps"), path),
        eps_text=_text(data, "eps", path),
        clean_acc=_number(data, "clean_acc", path, required=True),
        autoattack_acc=_number(data, "autoattack_acc", path),
        external=_number(data, "external", path),
        reported=_number(data, "reported", path),
        corruptions_acc=_number(data, "corruptions_acc", path),
        unreliable=bool(data.get("unreliable", False)),
        footnote=_text(data, "footnote", path),
        path=path,
    )


def model_info_root(folder: str | os.PathLike) -> Path:
    """The folder that holds ``<dataset>/<threat_model>/*.json``: ``folder`` itself, or its
    ``model_info/`` (a RobustBench checkout, or an a3bench export)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultError(f"--robustbench {folder}: not a folder (give RobustBench's model_info folder)")
    return folder / "model_info" if (folder / "model_info").is_dir() else folder


def read_published(folder: str | os.PathLike) -> list[PublishedEntry]:
    """Every entry of a RobustBench ``model_info`` folder (all datasets and threat models,
    corruptions included), sorted by dataset, threat model and name."""
    root = model_info_root(folder)
    entries = []
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for tm_dir in sorted(p for p in ds_dir.iterdir() if p.is_dir()):
            for path in sorted(tm_dir.glob("*.json")):
                entries.append(read_published_entry(path, ds_dir.name, tm_dir.name))
    if not entries:
        raise ResultError(f"--robustbench {folder}: no <dataset>/<threat_model>/*.json files (RobustBench's model_info layout)")
    return entries


# --------------------------------------------------------------------------- the output format


def _write(job: ReportJob) -> ReportOutput:
    written, warnings = export_robustbench(job.results, job.out)
    return ReportOutput(None, written, warnings=warnings)


FORMAT = ReportFormat("robustbench", _write, lambda paths: Path("robustbench"), out_is="folder", takes_published=False)
