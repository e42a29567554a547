"""``a3bench check RESULT --baseline BASELINE [--max-drop POINTS] [--summary FILE]``.

Exit 0: no regression; 1: a regression (one line per reason); 2: the two results cannot
be compared (missing or malformed file, another dataset, threat model or example set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from a3bench.cli.common import console, handle_errors


def _append(path: Path, text: str) -> None:
    # Append, as $GITHUB_STEP_SUMMARY expects: several steps may write to it.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(text + "\n")


@handle_errors
def check_command(
    result: Path = typer.Argument(..., help="The new result record (results/<dataset>/<norm>/<model>.json)."),
    baseline: Path = typer.Option(..., "--baseline", help="The committed baseline record to compare with."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest allowed drop of clean or worst-case accuracy, in percentage points."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Append a markdown diff here (e.g. $GITHUB_STEP_SUMMARY)."),
) -> None:
    """Gate CI on robustness: fail when accuracy dropped, a flag appeared or the verdict worsened."""
    from a3bench.errors import ResultError
    from a3bench.report.check import check, render_error_summary, render_summary

    try:
        res = check(result, baseline, max_drop)
    except ResultError as e:
        if summary is not None:
            _append(summary, render_error_summary(str(e), result, baseline))
        raise
    if summary is not None:
        _append(summary, render_summary(res))

    con = console()
    line = (
        f"clean {res.current.clean_acc:.2f} % ({res.clean_delta:+.2f}), "
        f"worst case {res.current.robust_acc:.2f} % ({res.robust_delta:+.2f}), verdict {res.current.verdict}"
    )
    if res.mcnemar is not None:
        m = res.mcnemar
        line += f"; {m.newly_broken} newly broken, {m.newly_robust} newly robust, McNemar p = {m.p_value:.3g}"
    for note in res.notes:
        con.print(f"[dim]note: {note}[/]", soft_wrap=True)
    if res.passed:
        con.print(f"[green]pass[/]: {line}", soft_wrap=True)
        return
    con.print(f"[red]fail[/]: {line}", soft_wrap=True)
    for reason in res.reasons:
        con.print(f"  - {reason}", soft_wrap=True)
    raise typer.Exit(1)
