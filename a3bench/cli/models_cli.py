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

    from rich.text import Text

    con = console()
    if spec is None:
        caption = ("* the default model. clean % and PGD-K %: the training run's last evaluation (PGD with K steps at that eps, "
                   "on the first n test examples), not an a3bench attack record: `a3bench attack --model NAME` gives the worst case")
        table = Table(title="model zoo (use with --model)", caption=caption)
        table.add_column("name", no_wrap=True)  # a name is what users copy: never cut it
        for col in ("architecture", "dataset"):
            table.add_column(col)
        for col in ("clean % (training)", "PGD-K % (training)", "eps", "n"):
            table.add_column(col, justify="right")
        for name in list_zoo():
            m = load_model(name)
            metrics = m.meta.get("metrics") or {}
            steps = _number(metrics.get("pgd_steps"), "d")
            pgd = _number(metrics.get("pgd_acc"), ".2f")
            table.add_row(  # Text: metadata is untrusted, never rich markup
                Text(name + (" *" if name == DEFAULT_MODEL else "")),
                Text(str(m.meta.get("architecture"))),
                Text(str(m.dataset)),
                _number(metrics.get("clean_acc"), ".2f"),
                pgd + (f" (PGD-{steps})" if steps != "—" and pgd != "—" else ""),
                _number(metrics.get("eps"), "g"),
                _number(metrics.get("n_examples"), "d"),
            )
        print_table(con, table)
        con.print(Text("architectures: " + ", ".join(list_models())))
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
        return
    table = Table(title=Text(f"model {m.name}"), show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in _flatten(info):
        table.add_row(Text(key), Text(value))  # Text: a card or a checkpoint's metadata is data, never markup
    print_table(con, table)


def _flatten(value: object, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Nested metadata as ``a.b.c: value`` lines a person reads (never a dict's repr): lists of
    plain values joined by commas, empty values shown as a dash. Depth and width are bounded:
    metadata is untrusted."""
    if isinstance(value, dict) and value and depth < 6:
        out = []
        for k, v in list(value.items())[:200]:
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return out
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list, tuple)) for v in value):
        text = ", ".join(_plain(v) for v in value[:50]) + (f", … ({len(value)} in all)" if len(value) > 50 else "")
        return [(prefix, text or "—")]
    if isinstance(value, (list, tuple)) and depth < 6:
        return [row for i, v in enumerate(value[:50]) for row in _flatten(v, f"{prefix}[{i}]", depth + 1)]
    return [(prefix, _plain(value))]


def _plain(value: object) -> str:
    from a3bench.errors import excerpt

    if value is None or value == {} or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) and len(value) <= 500 else str(value) if isinstance(value, (int, bool)) else excerpt(value, 200)


def _number(value: object, spec: str) -> str:
    """A metric from a checkpoint for the table: metadata is untrusted, so anything that is
    not a real number shows as a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return format(value, spec)
