"""``a3bench audit``: test the attacks themselves — the binarization test and the
indicators of attack failure — and write ``<model>.audit.json`` beside the model's record.

A thin wrapper over :func:`a3bench.eval.audit.audit`; docs/audit.md has the details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from a3bench.cli import options
from a3bench.cli.common import console, esc, handle_errors


@handle_errors
def audit_command(
    model: Optional[str] = options.MODEL,
    dataset: Optional[str] = options.DATASET,
    data_dir: Optional[Path] = options.DATA_DIR,
    eps: Optional[str] = typer.Option(None, "--eps", help="Budget: 8/255, 0.1, 2e-3 (default: as `a3bench attack`)."),
    norm: str = options.NORM,
    suite: Optional[str] = typer.Option(None, "--suite", help="Audit the attacks of a suite (default quick: pgd-20)."),
    attacks: Optional[str] = typer.Option(None, "--attacks", help="Comma-separated attacks to audit, e.g. 'pgd-20,apgd-ce,square'."),
    n_examples: int = typer.Option(100, "--n-examples", "-n", help="First N test examples (0 = all)."),
    n_inner: int = typer.Option(31, "--n-inner", help="Inner points per example in the binarization test (docs/audit.md)."),
    indicators: bool = typer.Option(True, "--indicators/--no-indicators", help="Also compute the indicators of attack failure."),
    batch_size: int = options.BATCH_SIZE,
    device: str = options.DEVICE,
    seed: int = options.SEED,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Audit path (default: <model>.audit.json in results/<dataset>/<norm>/)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line; the summary is still printed."),
) -> None:
    """Audit attacks on a model: binarization test (Zimmermann et al. 2022) and indicators of attack failure (Pintor et al. 2022)."""
    from a3bench.attacks.registry import resolve
    from a3bench.cli.progress import AuditDrawer
    from a3bench.cli.options import check_counts, load_model_and_dataset, print_label_notes
    from a3bench.errors import AttackError
    from a3bench.eval.audit import AuditSettings, run_audit
    from a3bench.results import AUDIT, OutputLock, check_output, default_audit_path, model_identity, place
    from a3bench.schema import write_audit
    from a3bench.device import resolve_device
    from a3bench.threat import ThreatModel, default_eps, parse_eps, parse_norm

    norm_v = parse_norm(norm).value
    eps_v = parse_eps(eps) if eps is not None else None
    plan = resolve(suite=suite, attacks=attacks)
    check_counts(batch_size, n_examples)
    if n_inner < 1:
        raise AttackError(f"--n-inner must be ≥ 1, got {n_inner}")
    settings = AuditSettings(n_inner=n_inner)
    if out is not None:
        check_output(out, AUDIT)
    dev = resolve_device(device)

    loaded, ds_name, data = load_model_and_dataset(model, dataset, data_dir, norm_v, dev)
    if eps_v is None:
        eps_v = default_eps(ds_name, norm_v, loaded.meta)
        if eps_v is None:
            raise AttackError(f"no customary eps for {ds_name} ({norm_v}): pass --eps")
    if eps_v == 0:
        raise AttackError("--eps 0 leaves nothing to audit: the eps-ball is a single point")
    threat = ThreatModel(norm_v, eps_v)
    identity = model_identity(loaded, model)
    err = console(stderr=True)
    if out is None:
        # an audit written with a record (attack --audit), another model's or another evaluation's is kept
        n_eff = len(data) if not n_examples else min(n_examples, len(data))
        placed = place(default_audit_path(ds_name, norm_v, loaded.name),
                       {"eps": threat.eps, "norm": norm_v, "n_examples": n_eff, "seed": seed, "run_id": None}, identity)
        out = placed.path
        if placed.note:
            err.print(esc(placed.note), soft_wrap=True)
    if not quiet:
        err.print(f"[bold]{esc(loaded.name)}[/] on {esc(ds_name)} ({esc(threat.label)}): auditing "
                  f"{esc(', '.join(a.name for a in plan.attacks))}")

    drawer = None if quiet else AuditDrawer(err)
    try:
        with OutputLock(out, loaded, AUDIT):
            result = run_audit(loaded, data, threat, plan.attacks, n_examples=n_examples or None, seed=seed, batch_size=batch_size,
                               device=dev, settings=settings, indicators=indicators, progress=drawer)
            result.model = identity
            write_audit(out, result)
    finally:
        if drawer is not None:
            drawer.close()
    con = console()
    print_audit(con, result)
    print_label_notes(con, data.info, loaded)
    con.print(f"audit -> {esc(out)}", soft_wrap=True)


def print_audit(con, result) -> None:
    """One row per attack: binarization pass rate with its 95 % CI, then each indicator's count."""
    from rich.table import Table

    from a3bench.threat import format_eps

    table = Table(title=esc(f"audit · {result.name} · {result.dataset} · {result.norm} eps={format_eps(result.eps)} · "
                            f"n={result.n_examples} ({result.n_testable} testable) · seed {result.seed}"),
                  caption="suite: an example passes when any attack passes it; control: a random point of the ball, "
                          "no attack; unbnd: unconstrained attack failures; silent: silent successes; "
                          "nonconv: non-converging losses")
    table.add_column("attack", justify="left", no_wrap=True)
    # binarization: pass rate, its 95 % CI, passed/testable; indicators: examples triggering each
    for col in ("pass%", "95% CI", "passed", "unbnd", "silent", "nonconv", "sec"):
        table.add_column(col, justify="right", no_wrap=True)
    inds = {i.attack: i for i in result.indicators}

    def count(ind, name: str) -> str:
        if ind is None or ind.status != "ran":
            return ""
        c = ind.count(name)
        return "n/a" if c is None else f"{c}/{ind.n_attacked}"

    names = [b.attack for b in result.binarization] or [i.attack for i in result.indicators]
    tests = {b.attack: b for b in result.binarization}
    for name in names:
        b, ind = tests.get(name), inds.get(name)
        if b is not None and b.status != "ran":
            rate, ci, passed = f"[dim]{b.status}[/]", "", ""
        elif b is not None and b.pass_rate is not None:
            rate, ci, passed = f"{b.pass_rate:.1f}", _ci(b.pass_rate_ci), f"{b.n_passed}/{b.n_testable}"
        else:
            rate = ci = passed = ""
        seconds = (b.seconds if b else 0.0) + (ind.seconds if ind else 0.0)
        table.add_row(esc(name), rate, ci, passed, count(ind, "unconstrained_failure"), count(ind, "silent_success"),
                      count(ind, "non_converging"), f"{seconds:.1f}")
    for row in (result.suite, result.control):
        if row is not None and row.pass_rate is not None:
            if row is result.suite:
                table.add_section()
            label = "[bold]suite[/]" if row is result.suite else "[dim]control[/]"
            table.add_row(label, f"{row.pass_rate:.1f}", _ci(row.pass_rate_ci),
                          f"{row.n_passed}/{row.n_testable}", "", "", "", "")
    con.print(table)
    con.print(f"features: {esc(result.features)}" + (" (randomised model)" if result.randomized else ""))
    for b in result.binarization + [i for i in result.indicators]:
        if b.status != "ran":
            con.print(f"[dim]{esc(b.attack)} {esc(b.status)}: {esc(b.note)}[/]")
    for f in result.flags:
        colour = "red" if f.severity == "error" else "yellow"
        con.print(f"[{colour}]{f.severity}[/] {esc(f.name)}: {esc(f.message)}")
    if result.flags:
        con.print("what each flag means and what to run next: a3bench flags " + esc(result.flags[0].name))
    else:
        con.print("[green]no audit flag fired[/]")


def _ci(ci) -> str:
    def short(v: float) -> str:
        return f"{v:.1f}".removesuffix(".0")

    return f"{short(ci[0])}-{short(ci[1])}"
