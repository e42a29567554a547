"""``a3bench sweep-eps``: robust accuracy against eps, one curve per attack, JSON + markdown + PNG.

A thin wrapper over :func:`a3bench.eval.sweep.sweep_eps`; docs/sweep.md has the details.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from a3bench.cli import options
from a3bench.cli.common import console, esc, handle_errors, print_table


@handle_errors
def sweep_command(
    model: Optional[str] = options.MODEL,
    eps: str = typer.Option(..., "--eps", help="eps values: '0,8/255,16/255' or START:STOP:N (N evenly spaced, ends included), e.g. 0:0.35:8."),
    attacks: Optional[str] = typer.Option(None, "--attacks", help="Comma-separated attacks, one curve each (default pgd-20), e.g. 'pgd-20,apgd-ce,autoattack'."),
    steps: Optional[str] = typer.Option(None, "--steps", help="PGD iteration counts, one curve each: 10,20,100 adds pgd-10, pgd-20, pgd-100."),
    norm: str = options.NORM,
    dataset: Optional[str] = options.DATASET,
    data_dir: Optional[Path] = options.DATA_DIR,
    n_examples: Optional[int] = options.N_EXAMPLES,
    batch_size: int = options.BATCH_SIZE,
    device: str = options.DEVICE,
    seed: int = options.SEED,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default results/<dataset>/<norm>/, or runs/… when that holds a different sweep): <model>.sweep.json, .sweep.md, .sweep.png. A path ending in .json is the sweep file itself (.sweep.md/.sweep.png beside it)."),
    no_cascade: bool = typer.Option(False, "--no-cascade", help="Attack every example at every eps (naive, slower; exposes non-monotone attacks)."),
    min_norm: bool = typer.Option(False, "--min-norm", help="Add the curve fab-min-norm: one minimum-norm FAB run finds each example's smallest breaking eps and prices the whole grid at once (alone unless --attacks/--steps are given)."),
    min_norm_restarts: int = typer.Option(1, "--min-norm-restarts", help="FAB restarts for --min-norm (random starts after the first)."),
    engine: str = options.ENGINE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; the table is still printed."),
) -> None:
    """Robust accuracy against eps for each attack and PGD iteration count (curves, table, plot)."""
    from a3bench.cli.options import check_counts, load_model_and_dataset, print_label_notes
    from a3bench.cli.progress import SweepDrawer
    from a3bench.device import resolve_device
    from a3bench.errors import AttackError
    from a3bench.eval.distributed import current_shard
    from a3bench.eval.sweep import build_curves, save_sweep, sweep_attack_names, sweep_eps, sweep_stem
    from a3bench.results import SWEEP, OutputLock, check_output, default_sweep_dir, model_identity, place
    from a3bench.threat import parse_eps_list, parse_norm

    # Validate everything cheap before loading anything heavy.
    norm_v = parse_norm(norm).value
    eps_list = parse_eps_list(eps)
    if attacks is not None and not attacks.strip():
        raise AttackError("no attacks given (--attacks is empty: name at least one, or leave the option out for pgd-20)")
    names = sweep_attack_names(attacks, steps) if (attacks or steps or not min_norm) else []
    curves = list(build_curves(names)) + (["fab-min-norm"] if min_norm else [])
    if min_norm_restarts < 1:
        raise AttackError(f"--min-norm-restarts must be ≥ 1, got {min_norm_restarts}")
    check_counts(batch_size, n_examples)
    out_file = _sweep_file(out)
    if out_file is not None:
        check_output(out_file, SWEEP)
    elif out is not None and (out.is_symlink() or (out.exists() and not out.is_dir())):
        raise AttackError(f"--out {out} is not a folder (a path ending in .json names the sweep file itself)")
    elif out is not None:
        check_output(out / "sweep.sweep.json", SWEEP)  # the folder: writable, no file on the way
    dev = resolve_device(device)
    main_rank = current_shard(dev).is_main
    quiet = quiet or not main_rank
    loaded, ds_name, data = load_model_and_dataset(model, dataset, data_dir, norm_v, dev)

    con = console()
    err = console(stderr=True)
    stem = sweep_stem(loaded.name)
    if out is not None:
        target = out_file or Path(out) / f"{stem}.sweep.json"
    else:
        # never replace a sweep of a different evaluation, or of another model, by default
        n_eff = len(data) if not n_examples else min(n_examples, len(data))
        placed = place(default_sweep_dir(ds_name, norm_v) / f"{stem}.sweep.json", _settings(eps_list, curves, n_eff, seed, not no_cascade),
                       model_identity(loaded, model), identity_field="model_info")
        target = placed.path
        if placed.note and main_rank:
            err.print(esc(placed.note), soft_wrap=True)
    if not quiet:
        err.print(f"[bold]{esc(loaded.name)}[/] on {esc(ds_name)} ({norm_v}), {len(eps_list)} eps, curves: {esc(', '.join(curves))}"
                  + ("" if not no_cascade else " [dim](naive: no cascade)[/]"))
    with OutputLock(target if main_rank else None, loaded, SWEEP):
        drawer = None if quiet else SweepDrawer(err)
        try:
            result = sweep_eps(loaded, data, norm_v, eps_list, names, n_examples=n_examples or None,
                               seed=seed, batch_size=batch_size, device=dev, progress=drawer, cascade=not no_cascade, spec=model,
                               min_norm=min_norm, min_norm_restarts=min_norm_restarts, data_dir=data_dir, engine=engine)
        finally:
            if drawer is not None:
                drawer.close()
        if not main_rank:
            return
        with _private_matplotlib_config():
            path = save_sweep(result, target)
    print_sweep(con, result)
    print_label_notes(con, data.info, loaded)
    con.print(f"sweep -> {esc(path)} (+ .md, .png)", soft_wrap=True)
    if not path.name.endswith(".sweep.json"):
        err.print(f"note: `a3bench report` knows sweeps by the name *.sweep.json; over this folder it would take {path} "
                  f"for a result record (name it {path.name[:-5]}.sweep.json)", soft_wrap=True, markup=False)


def _settings(eps_list, curves: list[str], n: int, seed: int, cascade: bool) -> dict:
    """What a sweep file records about the evaluation, as the sweep will write it
    (eps deduplicated and sorted; a worst-case curve when there are several)."""
    from a3bench.eval.sweep import WORST_CASE

    eps = sorted({float(f"{float(e):.12g}") for e in eps_list})
    names = list(curves) + ([WORST_CASE] if len(curves) > 1 else [])
    return {"eps": eps, "curves": names, "n_examples": n, "seed": seed, "cascade": cascade}


@contextlib.contextmanager
def _private_matplotlib_config():
    """matplotlib keeps its config and font cache under $HOME unless MPLCONFIGDIR says
    otherwise: a sweep writes nothing outside its --out, so it gets a temporary one."""
    if os.environ.get("MPLCONFIGDIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="a3bench-mpl-") as tmp:
        os.environ["MPLCONFIGDIR"] = tmp
        try:
            yield
        finally:
            os.environ.pop("MPLCONFIGDIR", None)


def _sweep_file(out: Path | None) -> Path | None:
    """``--out x.json`` names the sweep file itself, as ``attack --out r.json`` names the record;
    any other --out is a folder. Checked before any work."""
    from a3bench.errors import AttackError

    if out is None or out.suffix.lower() != ".json":
        return None
    if out.is_dir():
        raise AttackError(f"--out {out} is a folder; a path ending in .json names the sweep file")
    return out


def print_sweep(con, result) -> None:
    """One row per eps, one column per curve; flags below."""
    from rich.table import Table

    from a3bench.eval.sweep import WORST_CASE, eps_labels

    mode = "cascade" if result.cascade else "naive"
    table = Table(title=esc(f"{result.model} · {result.dataset} · {result.norm} · n={result.n_examples} · seed {result.seed} · {mode}"))
    table.add_column("eps", justify="right", no_wrap=True)
    for name in result.curves:
        table.add_column(f"[bold]{esc(name)}[/]" if name == WORST_CASE else esc(name), justify="right", no_wrap=True)
    table.add_column("attacked", justify="right", no_wrap=True)
    table.add_column("sec", justify="right", no_wrap=True)
    for k, label in enumerate(eps_labels(result.eps)):
        c = result.compute["per_eps"][k]
        cells = ["–" if v[k] is None else f"{v[k]:.2f}" for v in result.curves.values()]
        table.add_row(label, *cells, str(sum(c["attacked"].values())), f"{c['seconds']:.1f}")
    print_table(con, table)
    c = result.compute
    con.print(f"clean {result.clean_acc:.2f} % · {c['forward_passes_per_example']:.1f} forward + "
              f"{c['backward_passes_per_example']:.1f} backward passes per example · {c['seconds']:.1f} s")
    if "min_norm" in c:
        m = c["min_norm"]
        con.print(f"fab-min-norm: one FAB run on {m['attacked']} examples for the whole grid, "
                  f"{m['forward_passes']} forward + {m['backward_passes']} backward passes, {m['seconds']:.1f} s")
    for name, why in result.skipped.items():
        con.print(f"[dim]{esc(name)} skipped: {esc(why)}[/]")
    for name, why in result.failed.items():
        con.print(f"[dim]{esc(name)} failed: {esc(why)}[/]")
    for f in result.flags:
        colour = "red" if f.severity == "error" else "yellow"
        con.print(f"[{colour}]{f.severity}[/] {esc(f.name)}: {esc(f.message)}")

