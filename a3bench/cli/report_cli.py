"""``a3bench report [RESULTS_DIR ...] [--out FILE] [--format md|html|robustbench]``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from a3bench.cli.common import console, fail, handle_errors


@handle_errors
def report_command(
    results: Optional[List[Path]] = typer.Argument(None, help="Result folders or record files (default: results/). Folders are searched recursively; a record found twice (results/ and runs/) is shown twice, labelled by folder."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="md: the leaderboard file (default <first folder>/LEADERBOARD.md); html: the site's folder (default site/); robustbench: the folder that gets model_info/ (default ./robustbench)."
    ),
    fmt: str = typer.Option("md", "--format", help="md (leaderboard + per-model reports) | html (a static site: index, one page per model) | robustbench (model_info export)."),
    robustbench: Optional[Path] = typer.Option(None, "--robustbench", help="RobustBench's model_info folder: its published rows join the tables of the same dataset and threat model, marked as published."),
    docs_url: str = typer.Option("docs/diagnostics.md", "--docs-url", help="md: where flag explanations live, a path (made relative to each output) or a URL. The site explains flags on its own pages."),
    no_model_reports: bool = typer.Option(False, "--no-model-reports", help="md: write only the leaderboard, not reports/<dataset>_<norm>_<model>.md."),
) -> None:
    """Leaderboards (RobustBench style), per-model reports, a static site, or a RobustBench export."""
    from rich.markup import escape

    from a3bench.report.generate import NoResults, generate_report

    try:
        output = generate_report(results or [Path("results")], out, fmt.lower(), docs_url, model_reports=not no_model_reports, robustbench=robustbench)
    except NoResults as e:
        # Nothing to report is not malformed input, but a CI step must still notice it.
        fail(str(e), code=1)
    con = console(stderr=True)
    for w in output.warnings:
        con.print(f"[yellow]warning[/]: {escape(w)}", soft_wrap=True)
    n = len(output.results)
    if output.leaderboard is None:
        root = Path(out) if out is not None else Path("robustbench")
        con.print(escape(f"wrote {len(output.reports)} RobustBench model_info file(s) under {root / 'model_info'}"), soft_wrap=True)
        return
    published = f", {len(output.published)} published entries read" if output.published else ""
    if fmt.lower() == "html":
        con.print(escape(f"wrote the site {output.leaderboard} ({n} result(s){published}) and {len(output.reports)} model page(s)"), soft_wrap=True)
        return
    extra = f" and {len(output.reports)} model report(s) in {output.leaderboard.parent / 'reports'}" if output.reports else ""
    con.print(escape(f"wrote {output.leaderboard} ({n} result(s){published}){extra}"), soft_wrap=True)
