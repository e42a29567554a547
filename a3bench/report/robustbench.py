"""Export results as RobustBench ``model_info`` JSON files, in RobustBench's own layout:
``<out>/model_info/<dataset>/<threat_model>/<Model_Name>.json``.

RobustBench's files keep numbers as strings ("89.69", eps "8/255"); its readers
(``robustbench.utils.list_available_models``, the leaderboard template) call
``float()`` on ``clean_acc`` and on the first of ``external`` / ``autoattack_acc``
present, and read ``name``, ``link``, ``venue``, ``architecture``, ``authors``,
``additional_data``. ``external`` holds a stronger (adaptive) evaluation's accuracy
when it is below AutoAttack's, as in RobustBench's own files; ``unreliable`` marks
entries whose evaluation is known to be unsound.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from a3bench.io import safe_name, write_json_atomic
from a3bench.report.fmt import eps_text
from a3bench.report.load import LoadedResult

# RobustBench's BenchmarkDataset and ThreatModel values (robustbench.model_zoo.enums).
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
ROBUSTBENCH_THREATS = ("Linf", "L2")


def _acc(v: float) -> str:
    # RobustBench rounds to two decimals: str(round(accuracy * 100, 2)).
    return str(round(float(v), 2))


def model_info(res: LoadedResult) -> dict[str, Any]:
    """One result as a RobustBench model_info dict (field order as in RobustBench's files)."""
    r = res.record
    info: dict[str, Any] = {
        "link": r.link or "",
        "name": r.name or res.model_id,
        "authors": r.authors or "",
        "additional_data": bool(r.additional_data),
        "number_forward_passes": int(r.number_forward_passes),
        "dataset": r.dataset,
        "venue": r.venue or "N/A",  # what RobustBench's own Standard.json uses for unpublished models
        "architecture": r.architecture or "",
        "eps": eps_text(r),
        "clean_acc": _acc(r.clean_acc),
    }
    if r.reported is not None:
        info["reported"] = _acc(r.reported)
    if r.autoattack_acc is not None:
        info["autoattack_acc"] = _acc(r.autoattack_acc)
    notes = [r.footnote] if r.footnote else []
    # RobustBench ranks by "external" when present, so it must hold our worst case whenever
    # that is lower than AutoAttack's (or AutoAttack was not run at all).
    if r.autoattack_acc is None or round(r.robust_acc, 2) < round(r.autoattack_acc, 2):
        info["external"] = _acc(r.robust_acc)
        suite = f" ({', '.join(r.attacks)})" if r.attacks else ""
        notes.append(f"{_acc(r.robust_acc)}% robust accuracy is from a3bench's adaptive worst case{suite} on {r.n_examples} examples.")
    if r.flags:
        notes.append(f"a3bench diagnostics: {r.verdict} ({', '.join(f.name for f in r.flags)}).")
    if notes:
        info["footnote"] = " ".join(notes)
    info["unreliable"] = r.verdict == "unreliable"
    return info


def export_path(res: LoadedResult, out_dir: str | os.PathLike) -> Path:
    r = res.record
    return Path(out_dir) / "model_info" / r.dataset / r.norm / f"{safe_name(res.model_id)}.json"


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
