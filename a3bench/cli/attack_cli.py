"""``a3bench attack``: the worst-case cascade on one model, a rich table and a JSON record.

A thin wrapper over :func:`a3bench.eval.runner.evaluate`; docs/attacks.md has the details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from a3bench.cli import options
from a3bench.cli.common import console, esc, handle_errors, print_table

@handle_errors
def attack_command(
    model: Optional[str] = options.MODEL,
    dataset: Optional[str] = options.DATASET,
    data_dir: Optional[Path] = options.DATA_DIR,
    eps: Optional[str] = typer.Option(None, "--eps", help="Budget: 8/255, 0.1, 2e-3 (default: the checkpoint's training eps, else 8/255 CIFAR, 0.1 Fashion-MNIST, 0.3 MNIST)."),
    norm: str = options.NORM,
    suite: Optional[str] = typer.Option(None, "--suite", help="A named suite of attacks (a3bench attacks lists them and what they run; default quick)."),
    attacks: Optional[str] = typer.Option(None, "--attacks", help="Comma-separated attacks, e.g. 'pgd-100:loss=dlr:restarts=5,apgd-t,square'; commas inside one attack's own spec go in brackets or quotes (docs/attacks.md)."),
    n_examples: Optional[int] = options.N_EXAMPLES,
    batch_size: int = options.BATCH_SIZE,
    device: str = options.DEVICE,
    seed: int = options.SEED,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Record path (default results/<dataset>/<norm>/<model>.json; runs/… when that holds a different evaluation)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run with the same settings (or with more attacks after the finished ones)."),
    audit: bool = typer.Option(False, "--audit", help="After the cascade, audit the suite's attacks (binarization test, indicators of attack failure; docs/audit.md): <record>.audit.json beside the record, flags in the verdict."),
    audit_n: int = typer.Option(100, "--audit-n", help="Examples the audit runs on (the first N of those evaluated)."),
    keep_state: bool = typer.Option(False, "--keep-state", help="Keep the resume state after the record is written: a later --resume with more attacks after these extends this evaluation."),
    no_probe: bool = typer.Option(False, "--no-probe", help="Skip the convergence probe (docs/diagnostics.md#not-converged)."),
    no_adv: bool = typer.Option(False, "--no-adv", help="Keep no adversarial examples (by default the point that broke each example is kept in <record>.adv.pt, for a3bench verify; 3.1 KB per broken Fashion-MNIST example, docs/verify.md)."),
    draws: int = typer.Option(10, "--draws", help="Fresh forward passes per verdict when the model turns out to be randomised (majority rule)."),
    engine: str = options.ENGINE,
    name: Optional[str] = typer.Option(None, "--name", help="The label boards show for this model (default: its card's name or file name); the default record path is named after it, so two own models never share a record."),
    max_passes: Optional[int] = typer.Option(None, "--max-passes", help="The most forward + backward passes the escalation may spend (projected before it runs; what does not fit is left out and flagged escalation-capped). Default: no cap."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar (CI logs); the summary is still printed."),
) -> None:
    """Attack a model with a suite (worst case over attacks, per-example) and write a JSON record.

    Under torchrun (torchrun --nproc_per_node N -m a3bench attack ...) the batches are
    shared among the processes; rank 0 writes the record (docs/scale.md).
    """
    from a3bench.attacks.registry import resolve
    from a3bench.cli.progress import AttackDrawer
    from a3bench.cli.options import check_counts, load_model_and_dataset, print_label_notes
    from a3bench.device import resolve_device
    from a3bench.errors import AttackError
    from a3bench.eval.distributed import current_shard
    from a3bench.eval.runner import AttackOptions, evaluate
    from a3bench.results import check_output_path, default_result_path, model_identity, place
    from a3bench.threat import ThreatModel, default_eps, parse_eps, parse_norm

    # Validate everything cheap before loading anything heavy.
    norm_v = parse_norm(norm).value
    eps_v = parse_eps(eps) if eps is not None else None
    plan = resolve(suite=suite, attacks=attacks)
    check_counts(batch_size, n_examples)
    if audit and audit_n < 1:
        raise AttackError(f"--audit-n must be ≥ 1, got {audit_n}")
    # every option of the run, checked once, before anything heavy
    opts = AttackOptions(n_examples=n_examples or None, seed=seed, batch_size=batch_size, device=device, draws=draws,
                         spec=model, data_dir=data_dir, engine=engine, out=out, resume=resume, probe=not no_probe,
                         keep_state=keep_state, audit=audit_n if audit else None, max_passes=max_passes, name=name,
                         save_adv=not no_adv)
    if out is not None:
        check_output_path(out)
    dev = resolve_device(device)
    opts.device = dev
    main_rank = current_shard(dev).is_main
    quiet = quiet or not main_rank

    loaded, ds_name, data = load_model_and_dataset(model, dataset, data_dir, norm_v, dev)
    if eps_v is None:
        eps_v = default_eps(ds_name, norm_v, loaded.meta)
        if eps_v is None:
            raise AttackError(f"no customary eps for {ds_name} ({norm_v}): pass --eps")
    threat = ThreatModel(norm_v, eps_v)
    con = console()
    err = console(stderr=True)
    if out is None:
        n_eff = len(data) if not n_examples else min(n_examples, len(data))
        settings = {"suite": plan.suite, "attacks": list(plan.names), "eps": threat.eps, "norm": norm_v,
                    "n_examples": n_eff, "seed": seed}
        # never replace a different (often longer) evaluation, or another model's record, by default
        placed = place(default_result_path(ds_name, norm_v, name or loaded.name), settings, model_identity(loaded, model))
        out = opts.out = placed.path
        if placed.note and main_rank:
            err.print(esc(placed.note), soft_wrap=True)
    if not quiet:
        err.print(f"[bold]{esc(loaded.name)}[/] on {esc(ds_name)} ({esc(threat.label)}), {len(plan.attacks)} attack(s): "
                  f"{esc(', '.join(a.name for a in plan.attacks))}")
    drawer = None if quiet else AttackDrawer(err)
    try:
        result = evaluate(loaded, data, threat, plan, options=opts, progress=drawer)
    finally:
        if drawer is not None:
            drawer.close()
    if not main_rank:
        return
    print_summary(con, result.record)
    print_label_notes(con, data.info, loaded)
    con.print(f"record -> {esc(result.path)}", soft_wrap=True)


def print_summary(con, record) -> None:
    """The table every run ends with: clean, each attack, worst case with its 95 % CI."""
    from rich.table import Table

    from a3bench.stats import wilson_interval

    n = record.n_examples or 1
    table = Table(title=esc(f"{record.name} · {record.dataset} · {record.norm} eps={record.eps_text} · n={record.n_examples} · seed {record.seed}"))
    table.add_column("attack", justify="left", no_wrap=True)  # "pgd-50:loss=cw" whole, never folded
    for col in ("acc %", "95% CI", "broken", "of", "sec", "fwd/ex", "bwd/ex"):
        table.add_column(col, justify="right", no_wrap=True)

    def ci(acc: float) -> str:
        lo, hi = wilson_interval(round(acc * n / 100), n)
        return f"{lo:.1f}-{hi:.1f}"

    table.add_row("clean", f"{record.clean_acc:.2f}", ci(record.clean_acc), "", "", "", "1", "0")
    for a in record.per_attack:
        if a.status == "skipped":
            table.add_row(f"[dim]{esc(a.name)}[/]", "[dim]skipped[/]", "", "", "", "", "", "")
            continue
        table.add_row(esc(a.name), _acc(a.robust_acc), ci(a.robust_acc) if a.robust_acc is not None else "", str(a.broken), str(a.n_attacked), f"{a.seconds:.1f}",
                      f"{a.forward_passes / n:.1f}", f"{a.backward_passes / n:.1f}")
    p = record.probe
    if p is not None and p.n_attacked:
        table.add_row(f"[dim]probe {esc(p.attack)}[/]", "[dim]diagnostic[/]", "", str(p.broken), str(p.n_attacked), f"{p.seconds:.1f}",
                      f"{p.forward_passes / n:.1f}", f"{p.backward_passes / n:.1f}")
    lo, hi = record.robust_acc_ci
    c = record.compute
    table.add_section()
    table.add_row("[bold]worst case[/]", f"[bold]{record.robust_acc:.2f}[/]", f"[bold]{lo:.1f}-{hi:.1f}[/]", "", "",
                  f"{c.get('seconds', 0):.1f}", f"{c.get('forward_passes_per_example', 0):.1f}", f"{c.get('backward_passes_per_example', 0):.1f}")
    print_table(con, table)
    for a in record.per_attack:
        if a.status in ("skipped", "failed"):
            con.print(f"[dim]{esc(a.name)} {a.status}: {esc(a.note)}[/]")
    if p is not None and p.note:
        con.print(f"[dim]probe: {esc(p.note)}[/]")
    for note in record.notes:
        con.print(f"[dim]note: {esc(note)}[/]")
    if record.audit:
        a = record.audit
        rate = "—" if a.get("pass_rate") is None else f"{a['pass_rate']:.1f} %"
        con.print(esc(f"audit: binarization test pass rate {rate} on {a.get('n_testable')} testable example(s) "
                      f"({a.get('n_not_testable')} not testable) -> {a.get('file')}"))
    rnd = (record.compute or {}).get("randomised")
    if rnd:
        con.print(esc(f"randomised model: each verdict over {rnd['draws']} fresh draws ({rnd['rule']}); "
                      f"expected robust accuracy over draws {rnd['expected_robust_acc']:.2f} %"))
    if record.autoattack_acc is not None:
        con.print(f"AutoAttack accuracy: {record.autoattack_acc:.2f} %" + (f" (reported: {record.reported:.2f} %)" if record.reported is not None else ""))
    for f in record.flags:
        colour = "red" if f.severity == "error" else "yellow"
        con.print(f"[{colour}]{f.severity}[/] {esc(f.name)}: {esc(f.message)}")
    colour = {"reliable": "green", "not-evaluated-fully": "cyan", "suspicious": "yellow", "unreliable": "red"}.get(record.verdict, "white")
    con.print(f"verdict: [{colour}]{record.verdict}[/] ({esc(record.verdict_reason)})")
    if record.flags:
        con.print("what each flag means and what to run next: a3bench flags " + esc(record.flags[0].name))


def _acc(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
