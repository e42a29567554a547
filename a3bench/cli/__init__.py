"""The a3bench command line: one thin wrapper per command over a library function.

Heavy imports (torch, robustbench) happen inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from a3bench.cli import attack_cli, attacks_cli, models_cli, train_cli
from a3bench.cli import audit_cli, check_cli, flags_cli, report_cli, sweep_cli, verify_cli
from a3bench.cli.common import Command, Group

app = typer.Typer(
    name="a3bench",
    help="Train A3-defended classifiers and evaluate them honestly.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},  # every command inherits it
)
app.command("train", cls=Command)(train_cli.train_command)
app.command("attack", cls=attacks_cli.AttackCommand)(attack_cli.attack_command)
app.command("attacks", cls=Command)(attacks_cli.attacks_command)
app.command("models", cls=Command)(models_cli.models_command)
app.command("report", cls=Command)(report_cli.report_command)
app.command("check", cls=Command)(check_cli.check_command)
app.command("sweep-eps", cls=Command)(sweep_cli.sweep_command)
app.command("audit", cls=Command)(audit_cli.audit_command)
app.command("flags", cls=Command)(flags_cli.flags_command)
app.command("verify", cls=Command)(verify_cli.verify_command)


def _version(value: bool) -> None:
    if value:
        from a3bench import __version__

        typer.echo(f"a3bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Train A3-defended classifiers and evaluate them honestly."""


def main() -> None:
    """The console script: a usage error (an unknown option, ``--seed abc``) is one ``error:``
    line and exit 2, like every other bad input, not click's framed box."""
    import sys

    try:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors its own click
    except ImportError:  # pragma: no cover - older typer runs on click itself
        from click.exceptions import NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as e:
        typer.echo(e.ctx.get_help() if e.ctx is not None else "a3bench -h for help")
        sys.exit(0)
    except UsageError as e:
        where = e.ctx.info_name if e.ctx is not None and e.ctx.parent is not None else ""
        hint = f" (see a3bench {where} -h)" if where else " (see a3bench -h)"
        typer.echo(f"error: {' '.join(e.format_message().split())}{hint}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
