"""A model's report as data: every section one result has, built once for every format.

The markdown report (``reports/<dataset>_<norm>_<model>.md``), the site's model page and
the terminal show the same :class:`~a3bench.report.doc.Page`; what differs between them —
where a link goes, whether a flag's explanation is inlined — is a :class:`PageLinks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from a3bench.eval.strength import is_external, shortfall, shown_verdict
from a3bench.io import safe_name
from a3bench.report import doc
from a3bench.report.doc import Cell, Column, Table, TableRow, text
from a3bench.report.flag_docs import flag_doc
from a3bench.report.fmt import DASH, a3_short, ci, compute_per_example, count, delta, duration, eps_text, number, parameters, pct
from a3bench.report.load import LoadedResult, LoadedSweep
from a3bench.schema import Flag

NOT_BOUND = "The worst-case number is an upper bound on true robustness; see the diagnostics below."
WEAK = "The evaluation is weaker than AutoAttack: its number is not ranked with full evaluations."


@dataclass
class PageLinks:
    """Where a model page's links go in the format being written."""

    flag_href: Callable[[str], str | None] = lambda name: None  # a flag's explanation
    paper_href: Callable[[str | None], str | None] = lambda link: link  # which record links become links
    plot: str | None = None  # the eps curve, relative to the page
    record: str = ""  # the record file as the page names it
    sweep_file: str = ""  # the sweep file as the page names it
    explain_flags: bool = False  # put the start of each flag's explanation on the page
    more_label: str = "What this means"  # the text of the link to a flag's explanation
    generated_by: str = "a3bench report"
    back: doc.Link | None = None
    extra: dict = field(default_factory=dict)


def _kv(rows: list[tuple[str, doc.Text | str]]) -> Table:
    return Table([Column(""), Column("")], [TableRow([Cell.of(k), Cell.of(v)]) for k, v in rows], headless=True)


def total_time(res: LoadedResult) -> str:
    """The record's total time; when it is less than the sum of its attacks' times (a record
    resumed before a3bench counted time across resumes), the sum, said so."""
    r = res.record
    total = number((r.compute or {}).get("seconds"))
    parts = sum(number(a.seconds) or 0.0 for a in r.per_attack)
    if total is not None and parts > total + 1.0:
        return f"{duration(parts)} (the attacks' times; the record's own total, {duration(total)}, counts only since the last resume)"
    return duration(total)


def header(res: LoadedResult, links: PageLinks) -> list:
    r = res.record
    verdict, reason = shown_verdict(r)
    out: list = [doc.Heading(1, text(f"{res.model_id} — {r.dataset}, {r.norm} eps {eps_text(r)}")),
                 doc.Para(text(f"{r.dataset} · {r.norm} eps = {eps_text(r)} · {r.n_examples} test examples · seed {r.seed}"), "meta")]
    paper = links.paper_href(r.link)
    if r.name and r.name != res.model_id:
        out.append(doc.Para(text(doc.Link(r.name, paper), f", {r.authors}" if r.authors else "", f" ({r.venue})" if r.venue else "")))
    elif paper:
        out.append(doc.Para(text(doc.Link(paper, paper))))
    banner = text("Verdict: ", doc.VerdictMark(verdict), f" — {reason}" if reason else "")
    if verdict == "not-evaluated-fully":
        banner += text(" ", WEAK)
    elif verdict != "reliable":
        banner += text(" ", NOT_BOUND)
    out.append(doc.Banner(verdict, banner))
    return out


def summary(res: LoadedResult) -> doc.Section:
    r = res.record
    verdict, reason = shown_verdict(r)
    strength = r.strength
    asked = f" ({', '.join(map(str, r.attacks))})" if r.attacks else ""
    if is_external(r):
        how = "an external evaluation: its adversarial examples were re-checked here by a3bench verify (docs/verify.md)"
    elif strength is not None and strength.complete:
        how = f"AutoAttack {strength.autoattack} ran completely" + (" (the model is randomised)" if strength.randomised else "")
    else:
        how = shortfall(strength) if strength is not None else DASH
    rows = [
        ("Clean accuracy", f"{pct(r.clean_acc)} %"),
        ("AutoAttack accuracy", f"{pct(r.autoattack_acc)} %" if r.autoattack_acc is not None else DASH),
        ("Worst-case robust accuracy [95 % CI]", f"{ci(r)} %"),
        ("Reported (paper)", f"{r.reported:.2f} % (Δ {delta(r.robust_acc - r.reported)})" if r.reported is not None else DASH),
        ("Verdict", text(doc.VerdictMark(verdict), f": {reason}" if reason else "")),
        ("Evaluation strength", how),
        ("Examples / seed", f"{r.n_examples} / {r.seed}"),
        ("Suite", (r.suite or DASH) + asked),
        ("Attacks that ran", ", ".join(strength.attacks) if strength and strength.attacks else "none"),
        ("Architecture", r.architecture or DASH),
        ("A3", a3_short(r)),
        ("Parameters", count(parameters(r))),
        ("Extra training data", "yes" if r.additional_data else "no"),
        ("Forward passes per prediction", str(r.number_forward_passes)),
        ("Compute per example", compute_per_example(r)),
        ("Total time", total_time(res)),
    ]
    return doc.Section("Summary", [_kv(rows)], "summary")


def cascade(res: LoadedResult) -> doc.Section:
    r = res.record
    if not r.per_attack:
        return doc.Section("Per-attack results", [doc.Para(text("No per-attack results in this record."))], "cascade")
    cols = [Column("Attack"), Column("Status"), Column("Attacked", "right"), Column("Broken", "right"), Column("Robust after (%)", "right"),
            Column("Time", "right"), Column("Forward", "right"), Column("Backward", "right"), Column("Note")]
    rows = [TableRow([Cell.of(a.name), Cell.of(str(a.status)), Cell.of(str(a.n_attacked)), Cell.of(str(a.broken)), Cell.of(pct(a.robust_acc)),
                      Cell.of(duration(number(a.seconds))), Cell.of(count(number(a.forward_passes))), Cell.of(count(number(a.backward_passes))),
                      Cell.of(a.note or "")]) for a in r.per_attack]
    intro = doc.Para(text("Attacks ran in this order, each only on the examples every earlier attack failed on; ",
                          doc.Emph("Robust after"), " is the cumulative robust accuracy over all examples."))
    notes = [doc.Bullets([text(n) for n in r.notes])] if r.notes else []
    return doc.Section("Per-attack results", [intro, Table(cols, rows)] + ([doc.Para(text("Notes on this run:"))] + notes if notes else []), "cascade")


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
        line = f"Per-example outcomes: {o.path.name if o.path else 'file'}, {o.n} examples, {sum(o.robust)} robust."
        if r.n_examples and o.n != r.n_examples:
            problem = f"The outcomes file covers {o.n} examples, the record {r.n_examples}: one of them is stale."
        elif from_outcomes is not None and any(by_record.get(k, 0) != v for k, v in from_outcomes.items()):
            problem = "The record and the outcomes file disagree on who broke what: one of them is stale."
    elif res.outcomes_error:
        line = f"Per-example outcomes unusable: {res.outcomes_error}"
    else:
        line = "No per-example outcomes file beside this record."
    return Breakdown(rows, line, problem)


def breakers(res: LoadedResult) -> doc.Section | None:
    b = breakdown(res)
    if b is None:
        return None
    cols = [Column("Attack"), Column("Broken (record)", "right"), Column("Broken (outcomes)", "right"), Column("% of clean-correct", "right")]
    rows = [TableRow([Cell.of(name), Cell.of(DASH if br is None else str(br)), Cell.of(DASH if bo is None else str(bo)),
                      Cell.of(DASH if share is None else f"{share:.1f}")]) for name, br, bo, share in b.rows]
    blocks: list = [Table(cols, rows), doc.Para(text(b.outcomes_line))]
    if b.problem:
        blocks.append(doc.Para(text(b.problem), "strong"))
    return doc.Section("Which attack broke how many examples", blocks, "broken-by")


def sweep(found: LoadedSweep, links: PageLinks) -> doc.Section:
    s = found.record
    blocks: list = []
    if links.plot:
        blocks.append(doc.Figure(links.plot, "robust accuracy against eps, one curve per attack"))
    names = list(s.curves)
    cols = [Column("eps", "right")] + [Column(n, "right") for n in names]
    rows = [TableRow([Cell.of(f"{e:.6g}")] + [Cell.of(pct(s.curves[n][i])) for n in names]) for i, e in enumerate(s.eps)]
    blocks.append(Table(cols, rows))
    mode = "cascade" if s.cascade else "every eps on every example"
    blocks.append(doc.Para(text("From ", doc.Code(links.sweep_file or found.path.name),
                                f": {', '.join(found.attacks) or 'no attack'} on {s.n_examples} examples, seed {s.seed} ({mode}). "
                                "A sound evaluation drives accuracy to about 0 at large eps.")))
    if s.flags:
        blocks.append(doc.Bullets([text("sweep flag ", doc.FlagMark(f.name, str(f.severity), links.flag_href(f.name)), f": {f.message}") for f in s.flags]))
    return doc.Section("Robust accuracy against eps", blocks, "eps-curve")


AUDIT_INTRO = ("Binarization test (Zimmermann et al. 2022): per example, a variant of the model with an adversarial example known "
               "to be inside the ball; an attack passes when it finds one. Low pass rates mean the attacks, not the model, stand "
               "between this number and a lower one.")


def audit(res: LoadedResult, links: PageLinks) -> doc.Section | None:
    """The attack audit (docs/audit.md), said with what it was run with."""
    a = res.audit
    if a is None:
        return None
    s = a.summary
    rate = lambda v: DASH if v is None else f"{v:.1f} %"  # noqa: E731
    rows = [TableRow([Cell.of(name), Cell.of(rate(v))]) for name, v in s.per_attack.items()]
    rows.append(TableRow([Cell.of(text(doc.Strong("suite"), " (any attack)")), Cell.of(rate(s.pass_rate))]))
    rows.append(TableRow([Cell.of("random point (no attack)"), Cell.of(rate(s.control_pass_rate))]))
    where = "part of this run (attack --audit)" if a.source == "record" else text("file ", doc.Code(a.source))
    run_with = text(f"Audited: {', '.join(a.attacks) or 'no attack'} on the first {a.n_examples} examples",
                    f", seed {a.seed}" if a.seed is not None else "", "; ", where, ". ",
                    f"{s.n_testable} testable example(s), {s.n_not_testable} not testable.")
    blocks: list = [doc.Para(text(AUDIT_INTRO)), Table([Column("Attack"), Column("Pass rate", "right")], rows), doc.Para(run_with)]
    if s.indicators:
        shown = ", ".join(f"{k.replace('_', ' ')}: {DASH if v is None else v}" for k, v in s.indicators.items())
        blocks.append(doc.Para(text(f"Indicators of attack failure (Pintor et al. 2022), examples affected: {shown}.")))
    if a.flags:
        blocks.append(doc.Para(text("The audit's flags: ", doc.joined(doc.FlagMark(f.name, str(f.severity), links.flag_href(f.name)) for f in a.flags))))
    return doc.Section("Attack audit", blocks, "audit")


def audit_only_flags(res: LoadedResult) -> list[Flag]:
    """The audit's flags that are not the record's own (an audit file beside the record)."""
    own = {f.name for f in res.record.flags}
    return [f for f in (res.audit.flags if res.audit else []) if f.name not in own]


def flag_entry(f: Flag, links: PageLinks, note: str = "") -> doc.FlagEntry:
    """A flag with this run's message and where to read what it means: a link where the
    format has one, else the command that prints it (``a3bench flags NAME``)."""
    d = flag_doc(f.name)
    message = f.message + (f" ({note})" if note else "")
    href = links.flag_href(f.name)
    more = text(doc.Link(links.more_label, href)) if href else text("What this means: ", doc.Code(f"a3bench flags {f.name}")) if d else ()
    return doc.FlagEntry(f.name, str(f.severity), message, number(f.value), more, d.lead() if d and links.explain_flags else [],
                         anchor=f"flag-{safe_name(f.name)}")


def flags(res: LoadedResult, links: PageLinks) -> doc.Section:
    r = res.record
    entries = [flag_entry(f, links) for f in r.flags] + [flag_entry(f, links, "from the attack audit") for f in audit_only_flags(res)]
    if not entries:
        return doc.Section("Diagnostics", [doc.Para(text("No diagnostic flag fired."))], "diagnostics")
    return doc.Section("Diagnostics", entries, "diagnostics")


def a3_section(res: LoadedResult) -> doc.Section | None:
    a3 = res.record.a3
    if not a3:
        return None
    rows = [(str(k), str(v)) for k, v in a3.items() if k != "config"]
    cfg = a3.get("config")
    if isinstance(cfg, dict):
        rows += [(f"config.{k}", str(v)) for k, v in cfg.items()]
    table = Table([Column("Setting"), Column("Value")], [TableRow([Cell.of(k), Cell.of(v)]) for k, v in rows])
    return doc.Section("A3 configuration", [table], "a3")


def provenance(res: LoadedResult) -> doc.Section | None:
    r = res.record
    items = {**{f"model.{k}": v for k, v in (r.model or {}).items()}, **(r.provenance or {})}
    if not items:
        return None
    return doc.Section("Provenance", [_kv([(str(k), str(v)) for k, v in items.items()])], "provenance")


def model_page(res: LoadedResult, links: PageLinks) -> doc.Page:
    """Everything one result says, in the order a reader needs it."""
    r = res.record
    sections = [
        summary(res), cascade(res), breakers(res),
        sweep(res.sweep, links) if res.sweep is not None else None,
        audit(res, links), flags(res, links), a3_section(res), provenance(res),
        doc.Section("Note", [doc.Para(text(r.footnote))], "note") if r.footnote else None,
    ]
    blocks = header(res, links) + [s for s in sections if s is not None]
    footer = text("From ", doc.Code(links.record or res.path.name), "; generated by ", doc.Code(links.generated_by), ".")
    return doc.Page(f"{res.model_id} — a3bench", blocks, back=links.back, footer=footer)
