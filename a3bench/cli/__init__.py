"""The a3bench command line: one thin wrapper per command over a library function.

Heavy imports (torch, robustbench) happen inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from a3bench.cli import attack_cli, models_cli, train_cli
from a3bench.cli import audit_cli, check_cli, report_cli, sweep_cli

app = typer.Typer(
    name="a3bench",
    help="Train A3-defended classifiers and evaluate them honestly.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # every command inherits it
)
app.command("train")(train_cli.train_command)
app.command("attack")(attack_cli.attack_command)
app.command("models")(models_cli.models_command)
app.command("report")(report_cli.report_command)
app.command("check")(check_cli.check_command)
app.command("sweep-eps")(sweep_cli.sweep_command)
app.command("audit")(audit_cli.audit_command)


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
    app()
