"""``a3bench report`` as a library call: read results, write the leaderboard and the
per-model reports (markdown), the static site (html), or a RobustBench export."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from a3bench.errors import ResultError
from a3bench.io import staged_writes, write_text_atomic
from a3bench.report.fmt import external_href, safe_href
from a3bench.report.leaderboard import DEFAULT_DOCS_URL, group_results, render_markdown, unmatched_published
from a3bench.report.load import LoadedResult, load_results
from a3bench.report.markdown import render_model_report, report_filename
from a3bench.report.robustbench import PublishedEntry, export_robustbench, read_published
from a3bench.results import REPORT, OutputLock, check_output, sidecar

FORMATS = ("md", "html", "robustbench")


class NoResults(ResultError):
    """The folders hold no result record (not an unreadable one: nothing to report)."""


@dataclass
class ReportOutput:
    leaderboard: Path | None  # the markdown file or the site's index.html; None for the RobustBench export
    reports: list[Path] = field(default_factory=list)  # per-model markdown or HTML pages, or model_info JSONs
    results: list[LoadedResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published: list[PublishedEntry] = field(default_factory=list)


def default_out(paths: Sequence[str | os.PathLike], fmt: str) -> Path:
    """results/LEADERBOARD.md in the first folder; ./site/ for the site; ./robustbench for the export."""
    first = Path(paths[0]) if paths else Path("results")
    base = first if first.is_dir() else first.parent
    if fmt == "robustbench":
        return Path("robustbench")
    if fmt == "html":
        return Path("site")
    return base / "LEADERBOARD.md"


def site_location(out: Path) -> tuple[Path, str]:
    """``--out`` of the site: a folder (its index.html), or a path ending in .html (that file's
    folder, the file as the index)."""
    if out.suffix.lower() in (".html", ".htm"):
        return out.parent, out.name
    return out, "index.html"


def docs_link(docs_url: str, from_dir: Path) -> str:
    """A URL stays as it is; a path (relative to the working directory) becomes relative
    to the folder of the file that links to it, so the link works on GitHub and on disk."""
    if "://" in docs_url:
        return docs_url
    return Path(os.path.relpath(Path(docs_url).resolve(), from_dir.resolve())).as_posix()


def local_links(res: LoadedResult, from_dir: Path) -> LoadedResult:
    """The model link of a card (``link: model_zoo/<name>``) is a path relative to the working
    directory: rewrite it relative to ``from_dir`` (the folder of the file that links to it)
    when it names a file or folder there, and drop it when it names nothing (a dead link;
    the name stays, as text). URLs stay as they are; anything else is never a link."""
    link = res.record.link
    if not isinstance(link, str) or not link or external_href(link) or link.startswith("#"):
        return res
    target = safe_href(link) and Path(link)
    new = docs_link(link, from_dir) if target and target.exists() else None
    return dataclasses.replace(res, record=dataclasses.replace(res.record, link=new))


def generate_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    fmt: str = "md",
    docs_url: str = DEFAULT_DOCS_URL,
    model_reports: bool = True,
    robustbench: str | os.PathLike | None = None,
) -> ReportOutput:
    """``robustbench``: a RobustBench ``model_info`` folder whose published entries join the
    tables of the same dataset and threat model (md and html)."""
    if fmt not in FORMATS:
        raise ResultError(f"unknown report format {fmt!r} (valid: {', '.join(FORMATS)})")
    if robustbench is not None and fmt == "robustbench":
        raise ResultError("--robustbench adds published rows to a leaderboard (--format md or html), not to an export")
    published = read_published(robustbench) if robustbench is not None else []
    paths = list(paths) or ["results"]
    results, warnings = load_results(paths, keep_duplicates=True)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise NoResults(f"no result records found in {where} (run `a3bench attack` first; *.outcomes.json, *.state.json and *.sweep.json are not records)")
    out = Path(out) if out is not None else default_out(paths, fmt)
    target = check_out(out, fmt)
    warnings += unmatched_published(group_results(results, published), published)
    try:
        # every page is staged and renamed into place at the end, the leaderboard or index
        # last: a full disk leaves the previous report as it was, never pages without an index
        with OutputLock(None, error=ResultError, lock=sidecar(target, REPORT.lock_suffix), target=target), staged_writes():
            return _write(results, warnings, published, out, fmt, docs_url, model_reports)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        raise ResultError(f"cannot write{where}: {e.strerror or e}") from None


def check_out(out: Path, fmt: str) -> Path:
    """--out names what it will be before anything is written: a file for md, a folder (or
    an .html index) for the site and the export; a leaderboard or index already there
    must be one a3bench wrote (a3bench/results.py). Returns the file that names the others."""
    if fmt == "md":
        if out.is_dir():
            raise ResultError(f"--out {out} is a folder; the markdown leaderboard is a file (e.g. {out / 'LEADERBOARD.md'})")
        folder, target = out.parent, out
    elif fmt == "html":
        folder, index = site_location(out)
        target = folder / index
    else:
        folder = out
        target = out / "model_info"
    if folder.exists() and not folder.is_dir():
        raise ResultError(f"--out {out}: {folder} is a file, not a folder")
    if fmt != "robustbench":
        check_output(target, REPORT, error=ResultError)
    elif target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ResultError(f"--out {out}: {target} is not a folder")
    return target


def _write(results: list[LoadedResult], warnings: list[str], published: list[PublishedEntry], out: Path, fmt: str,
           docs_url: str, model_reports: bool) -> ReportOutput:
    if fmt == "robustbench":
        written, more = export_robustbench(results, out)
        return ReportOutput(None, written, results, warnings + more)

    if fmt == "html":
        from a3bench.report.site import write_site

        folder, index = site_location(out)
        site = write_site(results, folder, published, index_name=index)
        return ReportOutput(site.index, site.pages, results, warnings, published)

    out_dir = out.parent
    reports_dir = out_dir / "reports"
    hrefs: dict[int, Path] = {}
    written: list[Path] = []
    if model_reports:
        names: set[str] = set()
        for res in results:
            name = report_filename(res)
            if name in names:  # two eps for the same model and norm
                name = name[:-3] + f"_eps{res.record.eps:.6g}.md"
            names.add(name)
            path = reports_dir / name
            write_text_atomic(path, render_model_report(local_links(res, reports_dir), reports_dir, docs_link(docs_url, reports_dir)))
            hrefs[id(res)] = path
            written.append(path)

    def href(res: LoadedResult) -> str | None:
        p = hrefs.get(id(res))
        return Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix() if p else None

    linked = [local_links(res, out_dir) for res in results]
    hrefs = {id(new): hrefs[id(old)] for new, old in zip(linked, results) if id(old) in hrefs}
    write_text_atomic(out, render_markdown(linked, docs_link(docs_url, out_dir), href, published))
    return ReportOutput(out, written, results, warnings, published)
