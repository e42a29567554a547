"""``a3bench verify RECORD`` and ``a3bench verify --adv FILE.pt --model SPEC --eps E``.

A thin wrapper over :mod:`a3bench.eval.verify`; docs/verify.md has the details. Exit 0:
every claim confirmed; 1: a claim failed (each is named: position, attack, why); 2: bad
input (one ``error:`` line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from a3bench.cli import options
from a3bench.cli.common import console, esc, handle_errors

MODEL_HELP = ("The model to verify with (as attack --model). Default for a record: its own model.spec — a zoo name, a checkpoint "
              "or robustbench:NAME; a spec that would run Python (file.py:factory) is loaded only when given here. "
              "Its weights must be the record's (sha256) unless --allow-different-model.")


@handle_errors
def verify_command(
    record: Optional[Path] = typer.Argument(None, help="A record a3bench attack wrote; its outcomes and <record>.adv.pt sit beside it."),
    adv: Optional[Path] = typer.Option(None, "--adv", help="An external evaluation instead of a record: a torch.save file of adversarial images for the first n test examples (an N×C×H×W tensor, or a dict with key x_adv, RobustBench's, or adv_complete, AutoAttack's). Needs --model and --eps."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="With --adv: the dataset whose first n test examples the images are (default: the one the model was trained on)."),
    data_dir: Optional[Path] = options.DATA_DIR,
    eps: Optional[str] = typer.Option(None, "--eps", help="With --adv: the budget the images claim to keep (8/255, 0.1)."),
    norm: str = typer.Option("Linf", "--norm", help="With --adv: Linf or L2."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With --adv: write the verified row as a record (suite external) with its outcomes and the confirmed points; a3bench report shows it marked external."),
    allow_different_model: bool = typer.Option(False, "--allow-different-model", help="Verify a record with a model whose weights differ from the record's (sha256)."),
    draws: int = typer.Option(10, "--draws", help="With --adv: fresh forward passes per verdict when the model turns out to be randomised (majority rule). A record uses its own."),
    seed: int = options.SEED,
    batch_size: int = options.BATCH_SIZE,
    device: str = options.DEVICE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; the summary is still printed."),
) -> None:
    """Re-check the adversarial examples behind a worst case (forward passes only): each inside the threat model and misclassified.

    Exit 0: every claim confirmed; 1: a claim failed (named); 2: bad input.
    """
    from a3bench.errors import AttackError
    from a3bench.threat import parse_eps, parse_norm

    if (record is None) == (adv is None):
        raise AttackError("give a RECORD, or --adv FILE.pt with --model and --eps (a3bench verify -h)")
    if record is not None:
        given = [name for name, value in (("--dataset", dataset), ("--eps", eps), ("--out", out)) if value is not None]
        if given:
            raise AttackError(f"{', '.join(given)}: only with --adv (a record brings its own dataset, eps and files)")
        _verify_record(record, model, allow_different_model, device, batch_size, data_dir, quiet)
        return
    if model is None:
        raise AttackError("verify --adv needs --model SPEC: the model the adversarial images attack")
    if eps is None:
        raise AttackError("verify --adv needs --eps: the budget the adversarial images claim to keep")
    norm_v, eps_v = parse_norm(norm).value, parse_eps(eps)
    from a3bench.cli.options import check_counts

    check_counts(batch_size, None)
    if draws < 1:
        raise AttackError(f"--draws must be ≥ 1, got {draws}")
    if out is not None:
        from a3bench.results import check_output_path

        check_output_path(out)
    _verify_external(adv, model, dataset, data_dir, norm_v, eps_v, out, draws, seed, batch_size, device, quiet)


def _progress(quiet: bool, what: str):
    """A transient bar on stderr (None: quiet) and the callback that moves it."""
    if quiet:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(esc(what)), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True),
                   transient=True)
    task = bar.add_task(what, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _verify_record(record: Path, model, allow_different_model, device, batch_size, data_dir, quiet) -> None:
    from a3bench.device import resolve_device
    from a3bench.eval.verify import verify_record

    bar, update = _progress(quiet, "verifying")
    try:
        if bar is not None:
            bar.start()
        res = verify_record(record, model=model, allow_different_model=allow_different_model, device=resolve_device(device),
                            batch_size=batch_size, data_dir=data_dir, progress=update)
    finally:
        if bar is not None:
            bar.stop()
    from a3bench.schema import read_record

    rec = read_record(record)
    con = console()
    con.print(esc(f"verify {record}: {rec.name} on {rec.dataset}, {rec.norm} eps={rec.eps_text or rec.eps}, n={res.n}"), soft_wrap=True)
    _print(con, res)
    if res.claimed_robust_acc is not None:
        same = abs(res.robust_acc - res.claimed_robust_acc) < 5e-3
        why = "" if same else " (the close calls: within the randomness of the draws)" if res.passed else " (not confirmed)"
        con.print(esc(f"worst case {res.robust_acc:.2f} % recomputed from the confirmed claims; the record says "
                      f"{res.claimed_robust_acc:.2f} %{why}"), soft_wrap=True)
    _verdict(con, res)


def _verify_external(adv: Path, model, dataset, data_dir, norm, eps, out, draws, seed, batch_size, device, quiet) -> None:
    from a3bench.cli.options import load_model_and_dataset
    from a3bench.device import resolve_device
    from a3bench.eval.verify import verify_external
    from a3bench.threat import ThreatModel

    dev = resolve_device(device)
    loaded, ds_name, data = load_model_and_dataset(model, dataset, data_dir, norm, dev)
    threat = ThreatModel(norm, eps)
    bar, update = _progress(quiet, "verifying")
    try:
        if bar is not None:
            bar.start()
        res = verify_external(adv, loaded, data, threat, spec=model, device=dev, batch_size=batch_size, draws=draws, seed=seed,
                              data_dir=data_dir, out=out, progress=update)
    finally:
        if bar is not None:
            bar.stop()
    con = console()
    r = res.record
    con.print(esc(f"verify {adv}: {r.name} on {ds_name}, {threat.label}, the first n={res.n} test examples"), soft_wrap=True)
    clean_ok = round(r.clean_acc * res.n / 100)
    con.print(esc(f"points: {res.n} image(s); {res.point_claims} judged (of the {clean_ok} example(s) classified correctly clean"
                  + (f", {res.outside} point(s) outside the threat model" if res.outside else "") + ")"), soft_wrap=True)
    con.print(f"broken: [bold]{res.confirmed}[/] of the {res.point_claims} judged")
    _cost(con, res)
    _failures(con, res)
    lo, hi = r.robust_acc_ci
    con.print(esc(f"clean {r.clean_acc:.2f} %, verified robust accuracy {r.robust_acc:.2f} % [{lo:.1f}, {hi:.1f}] (external: an "
                  "upper bound on the true robust accuracy, found by someone else's attack)"), soft_wrap=True)
    if res.path is not None:
        con.print(f"record -> {esc(res.path)} (suite external; a3bench report shows it marked external)", soft_wrap=True)
    _verdict(con, res)


def _print(con, res) -> None:
    what = []
    if res.clean_claims:
        what.append(f"{res.clean_claims} misclassified clean")
    what.append(f"{res.point_claims} adversarial example(s)" + (f" ({len(res.unverifiable)} more without a point)" if res.unverifiable else ""))
    con.print(esc(f"claims: {res.claimed} example(s) broken — {', '.join(what)}"
                  + (f"; {res.outside} point(s) outside the threat model" if res.outside else "")), soft_wrap=True)
    con.print(f"confirmed [bold]{res.confirmed} / {res.claimed}[/] claimed")
    _cost(con, res)
    _failures(con, res)


def _cost(con, res) -> None:
    draws = f"{res.draws} draws (majority rule)" if res.draws > 1 else "1 draw"
    judged = res.forward_passes // max(res.draws, 1)
    con.print(esc(f"cost: {res.forward_passes:,} forward passes ({judged:,} images judged × {draws}), no backward pass, "
                  f"{res.seconds:.1f} s"), soft_wrap=True)


def _failures(con, res) -> None:
    for f in res.failures:
        con.print(f"[red]failed[/]: position {f.position} ({esc(f.attack)}): {esc(f.why)}", soft_wrap=True)
    for f in res.unverifiable:
        con.print(f"[yellow]unverifiable[/]: position {f.position} ({esc(f.attack)}): {esc(f.why)}", soft_wrap=True)
    for f in res.close:
        con.print(f"[yellow]close call[/]: position {f.position} ({esc(f.attack)}): {esc(f.why)} — not confirmed, not refuted "
                  "(the fresh draws do not classify it correctly significantly more often than not)", soft_wrap=True)


def _verdict(con, res) -> None:
    if res.passed and res.close:
        con.print(f"[green]verified[/]: no claim refuted; {len(res.close)} close call(s) on a randomised model not confirmed "
                  "by this vote (docs/verify.md#randomised-models)")
        return
    if res.passed:
        con.print("[green]verified[/]: every claim holds")
        return
    if res.record is not None:
        con.print(f"[red]not verified[/]: {res.outside} point(s) outside the threat model (counted as not broken)")
    else:
        con.print(f"[red]not verified[/]: {len(res.failures) + len(res.unverifiable)} claim(s) do not hold")
    raise typer.Exit(1)
