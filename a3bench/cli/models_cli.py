"""``a3bench models [SPEC]``: list architectures and the model zoo, or describe one model."""

from __future__ import annotations

import json
from typing import Optional

import typer

from a3bench.cli.common import console, esc, handle_errors, print_table


@handle_errors
def models_command(
    spec: Optional[str] = typer.Argument(None, help="Zoo name or checkpoint path to describe (omit to list)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
) -> None:
    """List architectures and bundled models, or show one model's metadata (checks the checkpoint)."""
    from rich.table import Table

    from a3bench.models import DEFAULT_MODEL, a3_summary, list_models, list_zoo, load_model
    from a3bench.models.attention import trained_attention_scales

    con = console()
    if spec is None:
        table = Table(title="model zoo (use with --model)", caption="* the default model")
        table.add_column("name", no_wrap=True)  # a name is what users copy: never cut it
        for col in ("architecture", "dataset"):
            table.add_column(col)
        for col in ("clean %", "PGD %", "eps"):
            table.add_column(col, justify="right")
        for name in list_zoo():
            m = load_model(name)
            metrics = m.meta.get("metrics") or {}
            table.add_row(
                esc(name + (" *" if name == DEFAULT_MODEL else "")),
                esc(m.meta.get("architecture")),
                esc(m.dataset),
                _number(metrics.get("clean_acc"), ".2f"),
                _number(metrics.get("pgd_acc"), ".2f"),
                _number(metrics.get("eps"), "g"),
            )
        print_table(con, table)
        con.print(esc("architectures: " + ", ".join(list_models())))
        return
    import dataclasses

    m = load_model(spec)
    summary = a3_summary(m.model)
    info = {
        "name": m.name,
        "source": m.source,
        "path": m.path,
        "dataset": m.dataset,
        "parameters": sum(p.numel() for p in m.model.parameters()),
        "a3_layers": summary.n_layers,
        "a3_parameters": summary.n_parameters,
        "attention_scales": trained_attention_scales(m.model) or None,  # pre-softmax scales a ViT carries
        "meta": {k: v for k, v in m.meta.items() if k != "train"},
        "train_config": m.meta.get("train"),
        "card": {**{k: v for k, v in dataclasses.asdict(m.card).items() if k != "extra"}, **m.card.extra},
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            con.print(f"[bold]{key}[/]: {esc(value)}", soft_wrap=True)


def _number(value: object, spec: str) -> str:
    """A metric from a checkpoint for the table: metadata is untrusted, so anything that is
    not a real number shows as a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return format(value, spec)
