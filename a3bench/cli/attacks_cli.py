"""``a3bench attacks``: every registered attack and suite, one line each, and what each
suite runs. The same suite lines are the ``--suite`` help of ``a3bench attack``."""

from __future__ import annotations

from a3bench.cli.common import Command, console, handle_errors


@handle_errors
def attacks_command() -> None:
    """List the registered attacks and suites (names for --attacks and --suite), one line each."""
    from a3bench.attacks.registry import list_attacks, list_suites

    con = console()
    attacks, suites, default = list_attacks(), list_suites(), default_suite()
    labels = {name: name + (" (default)" if name == default else "") for name in suites}
    width = max(map(len, [*attacks, *labels.values()])) + 2

    def line(text: str) -> None:  # one line each, whatever the width: long ones wrap in the terminal, not in logs
        con.print(text, markup=False, soft_wrap=True)

    line("attacks (a3bench attack --attacks NAME,NAME:option=value,...; options: docs/attacks.md)")
    for name, help_text in attacks.items():
        line(f"  {name:<{width}}{help_text}")
    line("")
    line("suites (a3bench attack --suite NAME): their attacks run in this order, as one worst-case cascade")
    for name, (names, help_text) in suites.items():
        line(f"  {labels[name]:<{width}}{', '.join(names)}  — {help_text}")


def default_suite() -> str | None:
    """The suite ``a3bench attack`` runs when given neither --suite nor --attacks."""
    from a3bench.attacks.registry import resolve

    return resolve().suite


def suites_help() -> str:
    """``--suite``'s help from the registry: each suite and the attacks it runs."""
    from a3bench.attacks.registry import list_suites

    default = default_suite()
    parts = [f"{name}{' (default)' if name == default else ''}: {', '.join(names)}" for name, (names, _) in list_suites().items()]
    return "A named suite of attacks, run in order as one cascade — " + "; ".join(parts) + ". a3bench attacks lists them."


class AttackCommand(Command):
    """``a3bench attack``: its ``--suite`` help lists the suites' contents, read from the
    registry when the help is shown (importing the attacks would slow every other command)."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.params:
            if param.name == "suite":
                param.help = suites_help()
        return super().format_help(ctx, formatter)
