"""``a3bench report [RESULTS_DIR ...] [--out FILE] [--format md|html|robustbench]``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from a3bench.cli.common import console, fail, handle_errors


@handle_errors
def report_command(
    results: Optional[List[Path]] = typer.Argument(None, help="Result folders or record files (default: results/). Folders are searched recursively."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Leaderboard file (default <first folder>/LEADERBOARD.md or leaderboard.html); for robustbench, the folder that gets model_info/ (default ./robustbench)."
    ),
    fmt: str = typer.Option("md", "--format", help="md | html | robustbench"),
    docs_url: str = typer.Option("docs/diagnostics.md", "--docs-url", help="Where flag explanations live: a path (made relative to each output) or a URL."),
    no_model_reports: bool = typer.Option(False, "--no-model-reports", help="Write only the leaderboard, not reports/<dataset>_<norm>_<model>.md."),
) -> None:
    """Leaderboards (RobustBench style) and per-model reports from result records."""
    from a3bench.report.generate import NoResults, generate_report

    try:
        output = generate_report(results or [Path("results")], out, fmt.lower(), docs_url, model_reports=not no_model_reports)
    except NoResults as e:
        # Nothing to report is not malformed input, but a CI step must still notice it.
        fail(str(e), code=1)
    con = console(stderr=True)
    for w in output.warnings:
        con.print(f"[yellow]warning[/]: {w}", soft_wrap=True)
    n = len(output.results)
    if output.leaderboard is None:
        root = Path(out) if out is not None else Path("robustbench")
        con.print(f"wrote {len(output.reports)} RobustBench model_info file(s) under {root / 'model_info'}", soft_wrap=True)
        return
    extra = f" and {len(output.reports)} model report(s) in {output.leaderboard.parent / 'reports'}" if output.reports else ""
    con.print(f"wrote {output.leaderboard} ({n} result(s)){extra}", soft_wrap=True)
