"""``a3bench report [RESULTS_DIR ...] [--out FILE] [--format md|html|robustbench|term]``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from a3bench.cli.common import console, fail, handle_errors, print_table

# The format names and what each writes, without importing the formats (``--help`` stays instant).
from a3bench.report.formats import FORMAT_MODULES

FORMAT_HELP = "; ".join(f"{name}: {what}" for name, (_, what) in FORMAT_MODULES.items())


@handle_errors
def report_command(
    results: Optional[List[Path]] = typer.Argument(None, help="Result folders or record files (default: results/). Folders are searched recursively; a record found twice (results/ and runs/) is shown behind the model's best record, labelled by folder."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="md: the leaderboard file (default <first folder>/LEADERBOARD.md); html: the site's folder (default site/); robustbench: the folder that gets model_info/ (default ./robustbench); term: none."
    ),
    fmt: str = typer.Option("md", "--format", help=FORMAT_HELP + "."),
    robustbench: Optional[Path] = typer.Option(None, "--robustbench", help="RobustBench's model_info folder: its published rows join the tables of the same dataset and threat model, marked as published."),
    docs_url: str = typer.Option("docs/diagnostics.md", "--docs-url", help="md: where flag explanations live, a path (made relative to each output) or a URL; where that path does not exist, reports name `a3bench flags NAME` instead. The site explains flags on its own pages."),
    no_model_reports: bool = typer.Option(False, "--no-model-reports", help="md: write only the leaderboard, not reports/<dataset>_<norm>_<model>.md."),
    rank_all: bool = typer.Option(False, "--rank-all", help="Rank every evaluation together. By default only those at least as strong as AutoAttack are ranked; weaker ones are listed apart."),
) -> None:
    """Leaderboards (RobustBench style), per-model reports, a static site, a RobustBench export, or the boards in the terminal."""
    from rich.markup import escape

    from a3bench.report.generate import NoResults, generate_report

    fmt = fmt.lower()
    try:
        output = generate_report(results or [Path("results")], out, fmt, docs_url, model_reports=not no_model_reports,
                                 robustbench=robustbench, rank_all=rank_all)
    except NoResults as e:
        # Nothing to report is not malformed input, but a CI step must still notice it.
        fail(str(e), code=1)
    con = console(stderr=True)
    for w in output.warnings:
        con.print(f"[yellow]warning[/]: {escape(w)}", soft_wrap=True)
    n = len(output.results)
    published = f", {len(output.published)} published entries read" if output.published else ""
    if output.documents:
        _show(output.documents)
    elif output.leaderboard is None:
        root = Path(out) if out is not None else Path("robustbench")
        con.print(escape(f"wrote {len(output.reports)} RobustBench model_info file(s) under {root / 'model_info'}"), soft_wrap=True)
    elif fmt == "html":
        con.print(escape(f"wrote the site {output.leaderboard} ({n} result(s){published}) and {len(output.reports)} model page(s)"), soft_wrap=True)
    else:
        extra = f" and {len(output.reports)} model report(s) in {output.leaderboard.parent / 'reports'}" if output.reports else ""
        con.print(escape(f"wrote {output.leaderboard} ({n} result(s){published}){extra}"), soft_wrap=True)


def _show(pages: list) -> None:
    con = console()
    for page in pages:
        print_page(con, page)


def print_page(con, page) -> None:
    """A report page on ``con``; tables at their natural width outside a terminal (a log is not 80 columns)."""
    from rich.table import Table

    from a3bench.report.render_term import render

    for item in render(page):
        print_table(con, item) if isinstance(item, Table) else con.print(item)
