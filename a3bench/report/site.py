"""``--format html``: the leaderboard as a self-contained static site.

    <out>/index.html                               one table per (dataset, norm, eps)
    <out>/models/<dataset>_<norm>_<model>.html     one page per result
    <out>/flags/<flag>.html, flags/index.html       what each flag means (docs/diagnostics.md)
    <out>/img/<dataset>_<norm>_<model>.sweep.png   its eps curve, copied in

The pages are the same :class:`~a3bench.report.doc.Page` objects as the markdown, written
by :mod:`a3bench.report.render_html` (Jinja2, autoescape on). The index's tables sort by
any column and a search box filters their rows, with a few lines of inline JavaScript.
Each page carries its CSS and script inline and a Content-Security-Policy that lets it
load nothing from anywhere but the site itself.

Links stay inside the site. The one exception is a paper's http(s) link; a link from a
record or a card that is anything else (``javascript:``, a path of the source checkout)
is shown as text. Every value from a record, a card or RobustBench's files is escaped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from a3bench.io import atomic_write_bytes, safe_name, write_text_atomic
from a3bench.report import doc, render_html
from a3bench.report.doc import text
from a3bench.report.flag_docs import FlagDoc, all_flag_docs, flag_doc, flag_page
from a3bench.report.fmt import external_href
from a3bench.report.formats import ReportFormat, ReportJob, ReportOutput
from a3bench.report.leaderboard import BoardLinks, group_results, leaderboard_page
from a3bench.report.load import LoadedResult
from a3bench.report.markdown import plot_inside
from a3bench.report.robustbench import PublishedEntry
from a3bench.report.sections import PageLinks, model_page

INDEX = "index.html"
MODELS_DIR = "models"
FLAGS_DIR = "flags"
IMG_DIR = "img"
GENERATED_BY = "a3bench report --format html"


@dataclass
class SiteOutput:
    index: Path
    pages: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    flag_pages: list[Path] = field(default_factory=list)


def site_location(out: Path) -> tuple[Path, str]:
    """``--out`` of the site: a folder (its index.html), or a path ending in .html (that file's
    folder, the file as the index)."""
    if out.suffix.lower() in (".html", ".htm"):
        return out.parent, out.name
    return out, INDEX


def _page_names(results: list[LoadedResult]) -> dict[int, str]:
    """A distinct, safe file stem per result: <dataset>_<norm>_<model>[_eps<eps>][_<k>]."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for res in results:
        r = res.record
        stem = f"{safe_name(r.dataset)}_{safe_name(r.norm)}_{safe_name(res.model_id)}"[:180]
        if stem in used:
            stem = f"{stem}_eps{safe_name(f'{r.eps:.6g}')}"
        k, base = 2, stem
        while stem in used:
            stem, k = f"{base}_{k}", k + 1
        used.add(stem)
        names[id(res)] = stem
    return names


def flag_file(name: str) -> str | None:
    """The page of a flag the guide or the registry explains; None for any other name."""
    return f"{safe_name(name)}.html" if flag_doc(name) is not None else None


def flags_index(docs: list[FlagDoc], index_name: str) -> doc.Page:
    rows = [doc.TableRow([doc.Cell.of(doc.Link(d.name, f"{safe_name(d.name)}.html")), doc.Cell.of(d.severity or ""), doc.Cell.of(d.summary)])
            for d in docs]
    table = doc.Table([doc.Column("Flag"), doc.Column("Severity"), doc.Column("What it means")], rows)
    blocks = [doc.Heading(1, text("What each flag means")),
              doc.Para(text("A flag is a diagnostic that fired during an evaluation: any error makes the verdict unreliable, "
                            "any warning suspicious.")), table]
    return doc.Page("Diagnostics — a3bench", blocks, back=doc.Link("← leaderboard", f"../{index_name}"))


def write_site(results: list[LoadedResult], out_dir: str | os.PathLike, published: list[PublishedEntry] | None = None,
               index_name: str = INDEX, rank_all: bool = False) -> SiteOutput:
    """Write the site into ``out_dir``; returns what was written."""
    out = Path(out_dir)
    stems = _page_names(results)
    page_of = {k: f"{MODELS_DIR}/{v}.html" for k, v in stems.items()}
    output = SiteOutput(index=out / index_name)
    docs = all_flag_docs()
    for d in docs:
        path = out / FLAGS_DIR / f"{safe_name(d.name)}.html"
        page = flag_page(d, back=doc.Link("← leaderboard", f"../{index_name}"),
                         footer=text("From docs/diagnostics.md, shipped with a3bench; ", doc.Code(f"a3bench flags {d.name}"), " prints it too."))
        write_text_atomic(path, render_html.render(page))
        output.flag_pages.append(path)
    write_text_atomic(out / FLAGS_DIR / INDEX, render_html.render(flags_index(docs, index_name)))

    def to_flag(name: str) -> str | None:
        f = flag_file(name)
        return f"../{FLAGS_DIR}/{f}" if f else None

    for res in results:
        stem = stems[id(res)]
        image = None
        plot = plot_inside(res.sweep) if res.sweep is not None else None
        if plot is not None:
            target = out / IMG_DIR / f"{stem}.sweep.png"
            data = plot.read_bytes()
            atomic_write_bytes(target, lambda f: f.write(data))
            output.images.append(target)
            image = f"../{IMG_DIR}/{target.name}"
        links = PageLinks(flag_href=to_flag, paper_href=external_href, plot=image, record=res.path.name,
                          sweep_file=res.sweep.path.name if res.sweep else "", explain_flags=True, generated_by=GENERATED_BY,
                          back=doc.Link("← leaderboard", f"../{index_name}"), more_label="More on this flag")
        path = out / MODELS_DIR / f"{stem}.html"
        write_text_atomic(path, render_html.render(model_page(res, links)))
        output.pages.append(path)
    board_links = BoardLinks(report=lambda res: page_of[id(res)], paper=external_href, generated_by=GENERATED_BY,
                             flag=lambda res, name: f"{page_of[id(res)]}#flag-{safe_name(name)}")
    page = leaderboard_page(group_results(results, published or [], rank_all), board_links)
    page.footer = page.footer + text(" ", doc.Link("What each flag means", f"{FLAGS_DIR}/{INDEX}"), ".")
    write_text_atomic(output.index, render_html.render(page, interactive=True))
    return output


def write(job: ReportJob) -> ReportOutput:
    folder, index = site_location(job.out)
    site = write_site(job.results, folder, job.published, index_name=index, rank_all=job.rank_all)
    return ReportOutput(site.index, site.pages)


FORMAT = ReportFormat("html", write, lambda paths: Path("site"), out_is="folder", folder_of=lambda out: site_location(out)[0])
