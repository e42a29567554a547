"""``a3bench report`` as a library call: read results, then write them in one of the
output formats (:mod:`a3bench.report.formats`): the markdown leaderboard and per-model
reports, the static site, a RobustBench export, or pages for the terminal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from a3bench.errors import ResultError
from a3bench.io import staged_writes
from a3bench.report.formats import ReportJob, ReportOutput, format_names, get_format
from a3bench.report.leaderboard import DEFAULT_DOCS_URL, group_results, unmatched_published
from a3bench.report.load import load_results
from a3bench.report.robustbench import read_published
from a3bench.results import REPORT, OutputLock, check_output, sidecar

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
    target = _target(form, out_path)
    warnings += unmatched_published(group_results(results, published), published)
    job = ReportJob(results, out_path, published, docs_url, model_reports, rank_all)
    try:
        if target is None:
            output = _write(form, job)
        else:
            # every page is staged and renamed into place at the end, the leaderboard or index
            # last: a full disk leaves the previous report as it was, never pages without an index
            with OutputLock(None, error=ResultError, lock=sidecar(target, REPORT.lock_suffix), target=target), staged_writes():
                output = _write(form, job)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise ResultError(f"cannot write{where}: {e.strerror or e}") from None
    output.warnings = warnings + output.warnings
    output.results, output.published = results, published
    return output


def _write(form, job: ReportJob) -> ReportOutput:
    """The work itself, once --out has passed the guard."""
    return form.write(job)


def _target(form, out: Path | None) -> Path | None:
    """The file that names the others (the leaderboard, the site's index, the export's
    model_info folder), checked by the output guard (a3bench/results.py) before any work:
    a page already there must be one a3bench wrote. None: the format writes nothing."""
    if out is None or form.out_is == "none":
        return None
    if form.name == "html":
        from a3bench.report.site import site_location

        folder, index = site_location(out)
        target = folder / index
    elif form.out_is == "folder":
        target = out / "model_info"
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise ResultError(f"--out {out}: {target} is not a folder")
        return target
    else:
        target = out
    check_output(target, REPORT, error=ResultError)
    return target
