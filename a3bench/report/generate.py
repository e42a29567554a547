"""``a3bench report`` as a library call: read results, then write them in one of the
output formats (:mod:`a3bench.report.formats`): the markdown leaderboard and per-model
reports, the static site, a RobustBench export, or pages for the terminal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from a3bench.errors import ResultError
from a3bench.report.formats import ReportJob, ReportOutput, format_names, get_format
from a3bench.report.leaderboard import DEFAULT_DOCS_URL, group_results, unmatched_published
from a3bench.report.load import load_results
from a3bench.report.robustbench import read_published

FORMATS = tuple(format_names())
__all__ = ["FORMATS", "NoResults", "ReportOutput", "generate_report"]


class NoResults(ResultError):
    """The folders hold no result record (not an unreadable one: nothing to report)."""


def generate_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    fmt: str = "md",
    docs_url: str = DEFAULT_DOCS_URL,
    model_reports: bool = True,
    robustbench: str | os.PathLike | None = None,
    rank_all: bool = False,
) -> ReportOutput:
    """``robustbench``: a RobustBench ``model_info`` folder whose published entries join the
    tables of the same dataset and threat model. ``rank_all``: rank every evaluation
    together, whatever its strength (by default those weaker than AutoAttack are listed
    apart)."""
    form = get_format(fmt)
    if robustbench is not None and not form.takes_published:
        raise ResultError(f"--robustbench adds published rows to a leaderboard, not to --format {fmt}")
    published = read_published(robustbench) if robustbench is not None else []
    paths = list(paths) or ["results"]
    results, warnings = load_results(paths, keep_duplicates=True)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise NoResults(f"no result records found in {where}: run `a3bench attack` first "
                        "(*.outcomes.json, *.state.json and *.sweep.json are not records)")
    out_path = Path(out) if out is not None else form.default_out([Path(p) for p in paths])
    form.check_out(out_path)
    warnings += unmatched_published(group_results(results, published), published)
    job = ReportJob(results, out_path, published, docs_url, model_reports, rank_all)
    try:
        output = form.write(job)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise ResultError(f"cannot write{where}: {e.strerror or e}") from None
    output.warnings = warnings + output.warnings
    output.results, output.published = results, published
    return output
