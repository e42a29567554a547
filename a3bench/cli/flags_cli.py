"""``a3bench flags [NAME]``: what each diagnostic flag means and what to do about it.

The explanation is docs/diagnostics.md, which ships inside the package
(:mod:`a3bench.bundled`): a pip-installed user reads it here, without the repository.
"""

from __future__ import annotations

from typing import Optional

import typer

from a3bench.cli.common import console, fail, handle_errors, print_table


@handle_errors
def flags_command(
    name: Optional[str] = typer.Argument(None, help="A flag's name, as a record or `a3bench attack` shows it (omit to list every flag)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the flag's section of docs/diagnostics.md as markdown."),
) -> None:
    """What each diagnostic flag means and what to do about it (docs/diagnostics.md, shipped with a3bench)."""
    from rich.table import Table
    from rich.text import Text

    from a3bench.cli.report_cli import print_page
    from a3bench.report.flag_docs import all_flag_docs, flag_doc, flag_page

    con = console()
    if name is None:
        table = Table(title="diagnostic flags (a3bench flags NAME explains one)")
        table.add_column("flag", no_wrap=True)
        table.add_column("severity")
        table.add_column("what it means")
        for d in all_flag_docs():
            table.add_row(Text(d.name), Text(d.severity or ""), Text(d.summary))  # Text: never parsed as markup
        print_table(con, table)
        return
    d = flag_doc(name)
    if d is None:
        import difflib

        from a3bench.errors import excerpt

        close = difflib.get_close_matches(name, [x.name for x in all_flag_docs()], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        fail(f"no flag named {excerpt(name)}{hint}; `a3bench flags` lists them")
    if markdown:
        typer.echo(f"## {d.name}\n{d.markdown}")
        return
    print_page(con, flag_page(d))
