"""The per-model markdown report: everything one result says, for one reader."""

from __future__ import annotations

import os
from pathlib import Path

from tabulate import tabulate

from a3bench.report.fmt import DASH, Markup, a3_short, ci, compute_per_example, count, delta, eps_text, parameters, pct
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
    return tabulate(rows, headers=headers, tablefmt="github", colalign=align, disable_numparse=True)


def _summary(res: LoadedResult) -> list[str]:
    r = res.record
    rows = [
        ["Clean accuracy", f"{pct(r.clean_acc)} %"],
        ["AutoAttack accuracy", f"{pct(r.autoattack_acc)} %" if r.autoattack_acc is not None else DASH],
        ["Worst-case robust accuracy [95 % CI]", f"{ci(r)} %"],
        ["Reported (paper)", f"{r.reported:.2f} % (Δ {delta(r.robust_acc - r.reported)})" if r.reported is not None else DASH],
        ["Verdict", f"**{r.verdict}**" + (f": {_M.text(r.verdict_reason)}" if r.verdict_reason else "")],
        ["Examples / seed", f"{r.n_examples} / {r.seed}"],
        ["Suite", _M.text(r.suite or DASH) + (f" ({', '.join(r.attacks)})" if r.attacks else "")],
        ["Architecture", _M.text(r.architecture or DASH)],
        ["A3", _M.text(a3_short(r))],
        ["Parameters", count(parameters(r))],
        ["Extra training data", "yes" if r.additional_data else "no"],
        ["Forward passes per prediction", str(r.number_forward_passes)],
        ["Compute per example", compute_per_example(r)],
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
                a.status,
                str(a.n_attacked),
                str(a.broken),
                pct(a.robust_acc),
                f"{a.seconds:.1f}",
                count(a.forward_passes),
                count(a.backward_passes),
                _M.text(a.note or ""),
            ]
        )
    headers = ["Attack", "Status", "Attacked", "Broken", "Robust after (%)", "Seconds", "Forward", "Backward", "Note"]
    intro = (
        "Attacks run in this order, each only on the examples every earlier attack failed on; "
        "*Robust after* is the cumulative robust accuracy over all examples."
    )
    align = ("left", "left", "right", "right", "right", "right", "right", "right", "left")
    return [intro, "", _table(rows, headers, align), ""]


def _breakers(res: LoadedResult) -> list[str]:
    """Which attack broke how many examples, from the record and, when present, the
    per-example outcomes (the two should agree; a mismatch is itself worth seeing)."""
    r = res.record
    from_outcomes = res.outcomes.broken_counts() if res.outcomes is not None and res.outcomes.broken_by is not None else None
    # Shares are of the record's clean-correct count, the denominator its own numbers use.
    n_clean = round(r.clean_acc * r.n_examples / 100) if r.n_examples else None
    if not n_clean and res.outcomes is not None and res.outcomes.clean_correct is not None:
        n_clean = sum(res.outcomes.clean_correct)
    names = [a.name for a in r.per_attack] + sorted(set(from_outcomes or {}) - {a.name for a in r.per_attack})
    if not names:
        return []
    by_record = {a.name: a.broken for a in r.per_attack}
    rows = []
    for name in names:
        b = by_record.get(name)
        o = from_outcomes.get(name, 0) if from_outcomes is not None else None
        shown = b if b is not None else o
        share = f"{100 * shown / n_clean:.1f}" if shown is not None and n_clean else DASH
        rows.append([_M.text(name), DASH if b is None else str(b), DASH if o is None else str(o), share])
    out = ["## Which attack broke how many examples", ""]
    out.append(_table(rows, ["Attack", "Broken (record)", "Broken (outcomes)", "% of clean-correct"], ("left", "right", "right", "right")))
    out.append("")
    if res.outcomes is not None:
        o = res.outcomes
        out.append(f"Per-example outcomes: `{o.path.name}`, {o.n} examples, {sum(o.robust)} robust.")
        if r.n_examples and o.n != r.n_examples:
            out += ["", f"**The outcomes file covers {o.n} examples, the record {r.n_examples}**: one of them is stale."]
        elif from_outcomes is not None and any(by_record.get(k, 0) != v for k, v in from_outcomes.items()):
            out.append("")
            out.append("**The record and the outcomes file disagree on who broke what**: one of them is stale.")
    elif res.outcomes_error:
        out.append(f"Per-example outcomes unusable: {_M.text(res.outcomes_error)}")
    else:
        out.append("No per-example outcomes file beside this record.")
    out.append("")
    return out


def _sweep(found: LoadedSweep, report_dir: Path) -> list[str]:
    sweep = found.record
    out = ["## Robust accuracy against eps", ""]
    if found.plot is not None:
        out += [f"![robust accuracy against eps]({_rel(found.plot, report_dir)})", ""]
    names = list(sweep.curves)
    rows = [[f"{e:.6g}"] + [pct(sweep.curves[n][i]) for n in names] for i, e in enumerate(sweep.eps)]
    out += [_table(rows, ["eps"] + [_M.text(n) for n in names], ("right",) * (len(names) + 1)), ""]
    out.append(f"From `{_rel(found.path, report_dir)}`. A sound evaluation drives accuracy to about 0 at large eps.")
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
        value = f" (value {f.value:.4g})" if f.value is not None else ""
        out.append(f"- **{_M.text(f.name)}** ({f.severity}){value}: {_M.text(f.message)} " + _M.link("What this means", f"{docs_url}#{f.name}"))
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
    out = [f"# {_M.text(res.model_id)} — {r.dataset}, {r.norm} eps {eps_text(r)}", ""]
    if r.name and r.name != res.model_id:
        out += [(_M.link(r.name, r.link) if r.link else _M.text(r.name)) + (f", {_M.text(r.authors)}" if r.authors else "") + (f" ({_M.text(r.venue)})" if r.venue else ""), ""]
    elif r.link:
        out += [_M.link(r.link, r.link), ""]
    if r.verdict != "reliable":
        out += [f"> **{r.verdict}**: the worst-case number is an upper bound on true robustness; see the diagnostics below.", ""]
    out += _summary(res)
    out += ["## Per-attack results", ""] + _per_attack(res)
    out += _breakers(res)
    if res.sweep is not None:
        out += _sweep(res.sweep, report_dir)
    out += _flags(res, docs_url)
    out += _a3(res)
    out += _provenance(res)
    if r.footnote:
        out += ["## Note", "", _M.text(r.footnote), ""]
    out.append(f"_From `{_rel(res.path, report_dir)}`; generated by `a3bench report`._")
    return "\n".join(out) + "\n"
