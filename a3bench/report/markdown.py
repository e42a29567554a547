"""The per-model markdown report: everything one result says, for one reader."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from a3bench.report.fmt import DASH, Markup, a3_short, ci, compute_per_example, count, delta, duration, eps_text, md_code, md_href, number, parameters, pct
from a3bench.io import safe_name
from a3bench.report.load import LoadedResult, LoadedSweep

_M = Markup("md")


def report_filename(res: LoadedResult) -> str:
    r = res.record
    return f"{safe_name(r.dataset)}_{safe_name(r.norm)}_{safe_name(res.model_id)}.md"


def _rel(target: Path, start: Path) -> str:
    """A link from a file in ``start`` to ``target`` that survives moving both together."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _table(rows: list[list], headers: list[str], align: tuple[str, ...] | None = None) -> str:
    return tabulate(rows, headers=headers, tablefmt="pipe", colalign=align, disable_numparse=True)


def plot_inside(sweep: LoadedSweep) -> Path | None:
    """The sweep's plot when it is a PNG file in the sweep's own folder; None otherwise. A
    sweep file names its plot, so a hostile one could name any file on disk: a report never
    shows or copies one from elsewhere."""
    p = sweep.plot
    if p is None or not p.resolve().is_relative_to(sweep.path.parent.resolve()):
        return None
    with open(p, "rb") as f:
        return p if f.read(8) == b"\x89PNG\r\n\x1a\n" else None


def _summary(res: LoadedResult) -> list[str]:
    r = res.record
    rows = [
        ["Clean accuracy", f"{pct(r.clean_acc)} %"],
        ["AutoAttack accuracy", f"{pct(r.autoattack_acc)} %" if r.autoattack_acc is not None else DASH],
        ["Worst-case robust accuracy [95 % CI]", f"{ci(r)} %"],
        ["Reported (paper)", f"{r.reported:.2f} % (Δ {delta(r.robust_acc - r.reported)})" if r.reported is not None else DASH],
        ["Verdict", _M.bold(r.verdict) + (f": {_M.text(r.verdict_reason)}" if r.verdict_reason else "")],
        ["Examples / seed", _M.text(f"{r.n_examples} / {r.seed}")],
        ["Suite", _M.text((r.suite or DASH) + (f" ({', '.join(map(str, r.attacks))})" if r.attacks else ""))],
        ["Architecture", _M.text(r.architecture or DASH)],
        ["A3", _M.text(a3_short(r))],
        ["Parameters", count(parameters(r))],
        ["Extra training data", "yes" if r.additional_data else "no"],
        ["Forward passes per prediction", _M.text(r.number_forward_passes)],
        ["Compute per example", compute_per_example(r)],
        ["Total time", duration(number((r.compute or {}).get("seconds")))],
    ]
    return [_table(rows, ["", ""], ("left", "left")), ""]


def _per_attack(res: LoadedResult) -> list[str]:
    r = res.record
    if not r.per_attack:
        return ["No per-attack results in this record.", ""]
    rows = []
    for a in r.per_attack:
        rows.append(
            [
                _M.text(a.name),
                _M.text(a.status),
                _M.text(a.n_attacked),
                _M.text(a.broken),
                pct(a.robust_acc),
                duration(a.seconds),
                count(a.forward_passes),
                count(a.backward_passes),
                _M.text(a.note or ""),
            ]
        )
    headers = ["Attack", "Status", "Attacked", "Broken", "Robust after (%)", "Time", "Forward", "Backward", "Note"]
    intro = (
        "Attacks run in this order, each only on the examples every earlier attack failed on; "
        "*Robust after* is the cumulative robust accuracy over all examples."
    )
    align = ("left", "left", "right", "right", "right", "right", "right", "right", "left")
    return [intro, "", _table(rows, headers, align), ""]


@dataclass
class Breakdown:
    """Which attack broke how many examples, from the record and, when present, the
    per-example outcomes (the two should agree; a mismatch is itself worth seeing)."""

    rows: list[tuple[str, int | None, int | None, float | None]]  # attack, by record, by outcomes, % of clean-correct
    outcomes_line: str  # what the outcomes file says, or why there is none
    problem: str | None  # the record and the outcomes file disagree


def breakdown(res: LoadedResult) -> Breakdown | None:
    r = res.record
    from_outcomes = res.outcomes.broken_counts() if res.outcomes is not None and res.outcomes.broken_by is not None else None
    # Shares are of the record's clean-correct count, the denominator its own numbers use.
    n_clean = round(r.clean_acc * r.n_examples / 100) if r.n_examples else None
    if not n_clean and res.outcomes is not None and res.outcomes.clean_correct is not None:
        n_clean = sum(res.outcomes.clean_correct)
    names = [a.name for a in r.per_attack] + sorted(set(from_outcomes or {}) - {a.name for a in r.per_attack})
    if not names:
        return None
    by_record = {a.name: a.broken for a in r.per_attack}
    rows = []
    for name in names:
        b = by_record.get(name)
        o = from_outcomes.get(name, 0) if from_outcomes is not None else None
        shown = b if b is not None else o
        rows.append((name, b, o, 100 * shown / n_clean if shown is not None and n_clean else None))
    problem = None
    if res.outcomes is not None:
        o = res.outcomes
        line = f"Per-example outcomes: {o.path.name}, {o.n} examples, {sum(o.robust)} robust."
        if r.n_examples and o.n != r.n_examples:
            problem = f"The outcomes file covers {o.n} examples, the record {r.n_examples}: one of them is stale."
        elif from_outcomes is not None and any(by_record.get(k, 0) != v for k, v in from_outcomes.items()):
            problem = "The record and the outcomes file disagree on who broke what: one of them is stale."
    elif res.outcomes_error:
        line = f"Per-example outcomes unusable: {res.outcomes_error}"
    else:
        line = "No per-example outcomes file beside this record."
    return Breakdown(rows, line, problem)


def _breakers(res: LoadedResult) -> list[str]:
    b = breakdown(res)
    if b is None:
        return []
    rows = [[_M.text(name), _M.text(DASH if br is None else br), _M.text(DASH if bo is None else bo), DASH if share is None else f"{share:.1f}"]
            for name, br, bo, share in b.rows]
    out = ["## Which attack broke how many examples", ""]
    out.append(_table(rows, ["Attack", "Broken (record)", "Broken (outcomes)", "% of clean-correct"], ("left", "right", "right", "right")))
    out += ["", _M.text(b.outcomes_line)]
    if b.problem:
        out += ["", _M.bold(b.problem)]
    return out + [""]


def _audit(res: LoadedResult) -> list[str]:
    """The attack audit (docs/audit.md): does each attack find an adversarial example known to exist?"""
    a = res.audit
    if not a:
        return []
    out = ["## Attack audit", "",
           "Binarization test (Zimmermann et al. 2022): per example, a variant of the model with an adversarial "
           "example known to be inside the ball; an attack passes when it finds one. Low pass rates mean the attacks, "
           "not the model, stand between this number and a lower one.", ""]
    rate = lambda v: DASH if v is None else f"{v:.1f} %"  # noqa: E731
    rows = [[_M.text(name), rate(v)] for name, v in (a.get("per_attack") or {}).items()]
    rows.append(["**suite** (any attack)", rate(a.get("pass_rate"))])
    rows.append(["random point (no attack)", rate(a.get("control_pass_rate"))])
    out += [_table(rows, ["Attack", "Pass rate"], ("left", "right")), ""]
    out.append(f"{a.get('n_testable', 0)} testable example(s), {a.get('n_not_testable', 0)} not testable"
               + (f"; file {md_code(str(a['file']))}" if a.get("file") else "") + ".")
    ind = a.get("indicators") or {}
    if ind:
        shown = ", ".join(f"{_M.text(k.replace('_', ' '))}: {DASH if v is None else v}" for k, v in ind.items())
        out.append(f"Indicators of attack failure (Pintor et al. 2022), examples affected: {shown}.")
    out.append("")
    return out


def _sweep(found: LoadedSweep, report_dir: Path) -> list[str]:
    sweep = found.record
    out = ["## Robust accuracy against eps", ""]
    plot = plot_inside(found)
    if plot is not None:
        out += [f"![robust accuracy against eps]({md_href(_rel(plot, report_dir))})", ""]
    names = list(sweep.curves)
    rows = [[f"{e:.6g}"] + [pct(sweep.curves[n][i]) for n in names] for i, e in enumerate(sweep.eps)]
    out += [_table(rows, ["eps"] + [_M.text(n) for n in names], ("right",) * (len(names) + 1)), ""]
    out.append(f"From {md_code(_rel(found.path, report_dir))}. A sound evaluation drives accuracy to about 0 at large eps.")
    for f in sweep.flags:
        out.append(f"- sweep flag **{_M.text(f.name)}**: {_M.text(f.message)}")
    out.append("")
    return out


def _flags(res: LoadedResult, docs_url: str) -> list[str]:
    r = res.record
    out = ["## Diagnostics", ""]
    if not r.flags:
        return out + ["No diagnostic flag fired.", ""]
    for f in r.flags:
        value = f" (value {number(f.value):.4g})" if number(f.value) is not None else ""
        out.append(f"- {_M.bold(f.name)} ({_M.text(f.severity)}){value}: {_M.text(f.message)} " + _M.link("What this means", f"{docs_url}#{f.name}"))
    return out + [""]


def _a3(res: LoadedResult) -> list[str]:
    a3 = res.record.a3
    if not a3:
        return []
    out = ["## A3 configuration", ""]
    rows = [[_M.text(str(k)), _M.text(str(v))] for k, v in a3.items() if k != "config"]
    cfg = a3.get("config")
    if isinstance(cfg, dict):
        rows += [[_M.text(f"config.{k}"), _M.text(str(v))] for k, v in cfg.items()]
    return out + [_table(rows, ["Setting", "Value"], ("left", "left")), ""]


def _provenance(res: LoadedResult) -> list[str]:
    r = res.record
    items = {**{f"model.{k}": v for k, v in (r.model or {}).items()}, **(r.provenance or {})}
    if not items:
        return []
    rows = [[_M.text(str(k)), _M.text(str(v))] for k, v in items.items()]
    return ["## Provenance", "", _table(rows, ["", ""], ("left", "left")), ""]


def render_model_report(res: LoadedResult, report_dir: Path, docs_url: str) -> str:
    """The markdown for one result; ``report_dir`` is where the file will be written
    (links to the plot and the record are relative to it)."""
    r = res.record
    out = [f"# {_M.text(f'{res.model_id} — {r.dataset}, {r.norm} eps {eps_text(r)}')}", ""]
    if r.name and r.name != res.model_id:
        out += [(_M.link(r.name, r.link) if r.link else _M.text(r.name)) + (f", {_M.text(r.authors)}" if r.authors else "") + (f" ({_M.text(r.venue)})" if r.venue else ""), ""]
    elif r.link:
        out += [_M.link(r.link, r.link), ""]
    if r.verdict != "reliable":
        out += [f"> {_M.bold(r.verdict)}: the worst-case number is an upper bound on true robustness; see the diagnostics below.", ""]
    out += _summary(res)
    out += ["## Per-attack results", ""] + _per_attack(res)
    out += _breakers(res)
    if res.sweep is not None:
        out += _sweep(res.sweep, report_dir)
    out += _audit(res)
    out += _flags(res, docs_url)
    out += _a3(res)
    out += _provenance(res)
    if r.footnote:
        out += ["## Note", "", _M.text(r.footnote), ""]
    out.append(f"From {md_code(_rel(res.path, report_dir))}; generated by `a3bench report`.")
    return "\n".join(out) + "\n"
