"""``--format md``: ``LEADERBOARD.md`` and one report per model in ``reports/`` beside it.

Links are relative (to the docs, the records, the plots), so the tree can be browsed on
GitHub or on disk. A flag links to its section of docs/diagnostics.md when that file
exists where ``--docs-url`` says (a URL, or a path relative to the working directory:
the repository); elsewhere — a pip install — the report names the command that explains
it, ``a3bench flags NAME``, instead of a link to nothing.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from a3bench.io import safe_name, write_text_atomic
from a3bench.report import render_md
from a3bench.report.fmt import external_href, safe_href
from a3bench.report.formats import ReportFormat, ReportJob, ReportOutput, first_folder
from a3bench.report.leaderboard import BoardLinks, group_results, leaderboard_page
from a3bench.report.load import LoadedResult, LoadedSweep
from a3bench.report.sections import PageLinks, model_page


def report_filename(res: LoadedResult) -> str:
    r = res.record
    return f"{safe_name(r.dataset)}_{safe_name(r.norm)}_{safe_name(res.model_id)}.md"


def rel(target: Path, start: Path) -> str:
    """A link from a file in ``start`` to ``target`` that survives moving both together."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def docs_link(docs_url: str, from_dir: Path) -> str:
    """A URL stays as it is; a path (relative to the working directory) becomes relative
    to the folder of the file that links to it, so the link works on GitHub and on disk."""
    if "://" in docs_url:
        return docs_url
    return rel(Path(docs_url), from_dir)


def docs_exist(docs_url: str) -> bool:
    """A URL is taken as given; a path must name a file, or every link to it is dead."""
    return "://" in docs_url or Path(docs_url.split("#", 1)[0]).is_file()


def link_from(link: str | None, from_dir: Path) -> str | None:
    """A record's link (a card's ``link: model_zoo/<name>`` is a path relative to the working
    directory) as a file in ``from_dir`` links it: a URL as it is, a path that names a file
    or folder made relative to ``from_dir``; None for a path that names nothing (a dead
    link) and for anything that is not an http(s) URL or a relative path."""
    if not isinstance(link, str) or not link:
        return None
    if external_href(link) or (link.startswith("#") and safe_href(link)):
        return link
    target = safe_href(link) and Path(link)
    return docs_link(link, from_dir) if target and target.exists() else None


def local_links(res: LoadedResult, from_dir: Path) -> LoadedResult:
    """``res`` with its record's link rewritten by :func:`link_from`."""
    return dataclasses.replace(res, record=dataclasses.replace(res.record, link=link_from(res.record.link, from_dir)))


def plot_inside(sweep: LoadedSweep) -> Path | None:
    """The sweep's plot when it is a PNG file in the sweep's own folder; None otherwise. A
    sweep file names its plot, so a hostile one could name any file on disk: a report never
    shows or copies one from elsewhere."""
    p = sweep.plot
    if p is None or not p.resolve().is_relative_to(sweep.path.parent.resolve()):
        return None
    with open(p, "rb") as f:
        return p if f.read(8) == b"\x89PNG\r\n\x1a\n" else None


def flag_href(docs_url: str, from_dir: Path):
    base = docs_link(docs_url, from_dir) if docs_exist(docs_url) else None
    return lambda name: f"{base}#{name}" if base else None


def render_model_report(res: LoadedResult, report_dir: Path, docs_url: str) -> str:
    """The markdown for one result; ``report_dir`` is where the file will be written
    (links to the plot and the record are relative to it)."""
    plot = plot_inside(res.sweep) if res.sweep is not None else None
    links = PageLinks(flag_href=flag_href(docs_url, report_dir), plot=rel(plot, report_dir) if plot else None,
                      record=rel(res.path, report_dir), sweep_file=rel(res.sweep.path, report_dir) if res.sweep else "")
    return render_md.render(model_page(local_links(res, report_dir), links))


def write(job: ReportJob) -> ReportOutput:
    out = job.out
    out_dir = out.parent
    reports_dir = out_dir / "reports"
    hrefs: dict[int, str] = {}
    written: list[Path] = []
    if job.model_reports:
        names: set[str] = set()
        for res in job.results:
            name = report_filename(res)
            if name in names:  # two eps for the same model and norm
                name = name[:-3] + f"_eps{res.record.eps:.6g}.md"
            names.add(name)
            path = reports_dir / name
            write_text_atomic(path, render_model_report(res, reports_dir, job.docs_url))
            hrefs[id(res)] = rel(path, out_dir)
            written.append(path)
    flags = flag_href(job.docs_url, out_dir)
    links = BoardLinks(report=lambda res: hrefs.get(id(res)), flag=lambda res, name: flags(name),
                       paper=lambda link: link_from(link, out_dir))
    page = leaderboard_page(group_results(job.results, job.published, job.rank_all), links)
    write_text_atomic(out, render_md.render(page))
    return ReportOutput(out, written)


FORMAT = ReportFormat("md", write, lambda paths: first_folder(paths) / "LEADERBOARD.md", out_is="file")
