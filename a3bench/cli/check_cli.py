"""``a3bench check RESULT --baseline BASELINE [--max-drop POINTS] [--summary FILE]``.

Exit 0: no regression; 1: a regression (one line per reason); 2: the two results cannot
be compared (missing or malformed file, a record that disagrees with its schema's ranges,
its outcomes or its run id, another dataset, threat model, example set or model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from a3bench.cli.common import console, esc, fail, handle_errors


def _append(path: Path, text: str) -> None:
    # Append, as $GITHUB_STEP_SUMMARY expects: several steps may write to it. Opened without
    # blocking: a FIFO nobody reads is an error line, not a hang.
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text + "\n")


@handle_errors
def check_command(
    result: Path = typer.Argument(..., help="The new result record (results/<dataset>/<norm>/<model>.json)."),
    baseline: Path = typer.Option(..., "--baseline", help="The committed baseline record to compare with."),
    max_drop: float = typer.Option(1.0, "--max-drop", help="Largest allowed drop of clean or worst-case accuracy, in percentage points."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Append a markdown diff here (e.g. $GITHUB_STEP_SUMMARY)."),
    allow_different_model: bool = typer.Option(False, "--allow-different-model", help="Compare records of different models (weights or spec); refused otherwise."),
) -> None:
    """Gate CI on robustness: fail when accuracy dropped, a flag appeared or the verdict worsened.

    Exit 1 means a regression and nothing else: a record that cannot be trusted or
    compared, or anything unexpected, is exit 2 with one line.
    """
    try:
        _check(result, baseline, max_drop, summary, allow_different_model)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - never exit 1 (a regression) for a failure of a3bench itself
        from a3bench.errors import A3BenchError, one_line

        if isinstance(e, A3BenchError):
            raise
        fail(f"could not compare: {type(e).__name__}: {one_line(e)}")


def _check(result: Path, baseline: Path, max_drop: float, summary: Path | None, allow_different_model: bool) -> None:
    from a3bench.errors import ResultError
    from a3bench.report.check import check, render_error_summary, render_summary

    try:
        res = check(result, baseline, max_drop, allow_different_model=allow_different_model)
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
        con.print(f"[dim]note: {esc(note)}[/]", soft_wrap=True)
    if res.passed:
        con.print(f"[green]pass[/]: {esc(line)}", soft_wrap=True)
        return
    con.print(f"[red]fail[/]: {esc(line)}", soft_wrap=True)
    for reason in res.reasons:
        con.print(f"  - {esc(reason)}", soft_wrap=True)
    raise typer.Exit(1)
