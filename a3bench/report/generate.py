"""``a3bench report`` as a library call: read results, write the leaderboard, the
per-model reports, or a RobustBench export."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from a3bench.errors import ResultError
from a3bench.io import write_text_atomic
from a3bench.report.leaderboard import DEFAULT_DOCS_URL, render_html, render_markdown
from a3bench.report.load import LoadedResult, load_results
from a3bench.report.markdown import render_model_report, report_filename
from a3bench.report.robustbench import export_robustbench

FORMATS = ("md", "html", "robustbench")


class NoResults(ResultError):
    """The folders hold no result record (not an unreadable one: nothing to report)."""


@dataclass
class ReportOutput:
    leaderboard: Path | None  # None for the RobustBench export
    reports: list[Path] = field(default_factory=list)  # per-model markdown, or model_info JSONs
    results: list[LoadedResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_out(paths: Sequence[str | os.PathLike], fmt: str) -> Path:
    """results/LEADERBOARD.md (or leaderboard.html) in the first folder; ./robustbench for the export."""
    first = Path(paths[0]) if paths else Path("results")
    base = first if first.is_dir() else first.parent
    if fmt == "robustbench":
        return Path("robustbench")
    return base / ("LEADERBOARD.md" if fmt == "md" else "leaderboard.html")


def docs_link(docs_url: str, from_dir: Path) -> str:
    """A URL stays as it is; a path (relative to the working directory) becomes relative
    to the folder of the file that links to it, so the link works on GitHub and on disk."""
    if "://" in docs_url:
        return docs_url
    return Path(os.path.relpath(Path(docs_url).resolve(), from_dir.resolve())).as_posix()


def local_links(res: LoadedResult, from_dir: Path) -> LoadedResult:
    """The model link of a card (``link: model_zoo/<name>``) is a path relative to the working
    directory when it names a file or folder there: rewrite it relative to ``from_dir`` (the
    folder of the file that links to it). URLs, anchors and absolute paths stay as they are."""
    link = res.record.link
    if not link or "://" in link or link.startswith(("#", "/", "mailto:")) or not Path(link).exists():
        return res
    return dataclasses.replace(res, record=dataclasses.replace(res.record, link=docs_link(link, from_dir)))


def generate_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    fmt: str = "md",
    docs_url: str = DEFAULT_DOCS_URL,
    model_reports: bool = True,
) -> ReportOutput:
    if fmt not in FORMATS:
        raise ResultError(f"unknown report format {fmt!r} (valid: {', '.join(FORMATS)})")
    paths = list(paths) or ["results"]
    results, warnings = load_results(paths)
    if not results:
        where = ", ".join(str(p) for p in paths)
        raise NoResults(f"no result records found in {where} (run `a3bench attack` first; *.outcomes.json, *.state.json and *.sweep.json are not records)")
    out = Path(out) if out is not None else default_out(paths, fmt)

    if fmt == "robustbench":
        written, more = export_robustbench(results, out)
        return ReportOutput(None, written, results, warnings + more)

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

    render = render_markdown if fmt == "md" else render_html
    linked = [local_links(res, out_dir) for res in results]
    hrefs = {id(new): hrefs[id(old)] for new, old in zip(linked, results) if id(old) in hrefs}
    write_text_atomic(out, render(linked, docs_link(docs_url, out_dir), href))
    return ReportOutput(out, written, results, warnings)
