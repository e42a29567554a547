"""What every command shares: error handling, the console, progress drawing."""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator

import typer
from typer.core import TyperCommand, TyperGroup

# Help written to a pipe or a log (CI, `| less`): rich assumes 80 columns there and cuts a
# long word with "…"; it gets this width instead. A terminal keeps its own width.
HELP_WIDTH = 160


@contextlib.contextmanager
def _help_width() -> Iterator[None]:
    import os
    import sys

    import typer.rich_utils as rich_utils

    explicit = os.environ.get("COLUMNS") or os.environ.get("TERMINAL_WIDTH")
    if explicit or sys.stdout.isatty() or not hasattr(rich_utils, "MAX_WIDTH"):
        yield
        return
    before = rich_utils.MAX_WIDTH
    rich_utils.MAX_WIDTH = HELP_WIDTH
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = before


def _no_value_shown_for_flags(params) -> None:
    """A flag takes no value: no "<bool>" beside it in the help."""
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""


class _Tidy:
    """Flags without a type; help that no log cuts."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _no_value_shown_for_flags(self.params)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            _no_value_shown_for_flags([option])
        return option

    def format_help(self, ctx, formatter) -> None:
        with _help_width():
            return super().format_help(ctx, formatter)


class Command(_Tidy, TyperCommand):
    """Every a3bench command: ``app.command(name, cls=Command)``."""


class Group(_Tidy, TyperGroup):
    """The ``a3bench`` group itself: ``typer.Typer(cls=Group)``."""


def console(stderr: bool = False):
    """The console every command prints with. Its markup is a3bench's own: every string
    that comes from outside (names, paths, cards, notes, exception text) goes in through
    :func:`esc`; emoji codes (``:smile:``) are never expanded."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, emoji=False)


def esc(value: object) -> str:
    """Untrusted text as rich prints it literally: ``[/]evil`` or ``[link=…]`` is text,
    never markup, so it cannot crash a command or hide a terminal link."""
    from rich.markup import escape

    return escape(str(value))


MAX_ERROR_LINE = 2000  # a backstop: messages quote short excerpts (errors.excerpt) of what they refuse


def print_table(con, table) -> None:
    """Print a rich table without cutting names. A terminal keeps its width (columns that
    may not wrap squeeze the others); a log or pipe — CI, where rich assumes 80 columns —
    gets the table at its natural width, so "pgd-50:loss=cw" never becomes "pgd-50:loss=c / w"."""
    if not con.is_terminal:
        need = con.measure(table, options=con.options.update_width(1000)).maximum
        if need > con.width:
            old = con.width
            con.width = need
            try:
                con.print(table)
            finally:
                con.width = old
            return
    con.print(table)


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, a non-zero exit, no traceback (under torchrun, rank > 0 says which rank)."""
    import os

    from a3bench.errors import one_line

    text = one_line(str(message), MAX_ERROR_LINE)
    rank = os.environ.get("RANK", "0") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else "0"
    typer.echo(f"error: {text}" if rank == "0" else f"error: [rank {rank}] {text}", err=True)
    raise typer.Exit(code)


def handle_errors(func: Callable) -> Callable:
    """Turn user-caused errors into one readable line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from a3bench.errors import A3BenchError

        try:
            return func(*args, **kwargs)
        except A3BenchError as e:
            fail(str(e))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        except MemoryError:
            fail("out of memory: lower --batch-size")
        except RuntimeError as e:  # torch reports a failed allocation as a RuntimeError
            if "allocate memory" in str(e) or "out of memory" in str(e).lower():
                fail("out of memory: lower --batch-size or --n-examples")
            raise
        except OSError as e:  # the file system refused (read-only, full, name too long ...): its line
            fail(_os_error_line(e))

    return wrapper


def _os_error_line(e: OSError) -> str:
    from a3bench.errors import excerpt

    where = f" ({excerpt(str(e.filename), 120)})" if e.filename is not None else ""
    return f"{e.strerror or type(e).__name__}{where}"

