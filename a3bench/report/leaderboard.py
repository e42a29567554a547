"""RobustBench-style leaderboards: one table per (dataset, norm, eps), one row per model,
sorted by worst-case robust accuracy (the lowest over the whole attack suite)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable

from tabulate import tabulate

from a3bench.report.fmt import (
    DASH,
    Markup,
    a3_short,
    ci,
    compute_per_example,
    count,
    delta,
    eps_text,
    parameters,
    pct,
)
from a3bench.report.load import LoadedResult

COLUMNS = [
    "Rank",
    "Model",
    "Clean (%)",
    "AutoAttack (%)",
    "Worst case (%) [95% CI]",
    "Verdict",
    "Flags",
    "Reported (%)",
    "Architecture",
    "A3",
    "Extra data",
    "Params",
    "Compute / example",
]
# Right-align numbers, left-align text, as RobustBench's tables do.
_ALIGN = ("right", "left", "right", "right", "right", "left", "left", "right", "left", "left", "center", "right", "right")

DEFAULT_DOCS_URL = "docs/diagnostics.md"


@dataclass
class Group:
    dataset: str
    norm: str
    eps: float
    rows: list[LoadedResult] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.norm}, eps = {eps_text(self.rows[0].record)}"


def sort_key(res: LoadedResult) -> tuple:
    r = res.record
    return (-r.robust_acc, -r.clean_acc, res.model_id)


def group_results(results: list[LoadedResult]) -> list[Group]:
    """Groups by (dataset, norm, eps), each sorted by worst-case accuracy, best first."""
    groups: dict[tuple, Group] = {}
    for res in results:
        r = res.record
        key = (r.dataset, r.norm, round(r.eps, 12))
        groups.setdefault(key, Group(r.dataset, r.norm, r.eps)).rows.append(res)
    for g in groups.values():
        g.rows.sort(key=sort_key)
    return [groups[k] for k in sorted(groups)]


def flags_cell(res: LoadedResult, m: Markup, docs_url: str) -> str:
    if not res.record.flags:
        return DASH
    marks = {"error": "✗", "warning": "⚠"}
    return ", ".join(f"{marks.get(f.severity, '')} {m.link(f.name, f'{docs_url}#{f.name}')}" for f in res.record.flags)


def verdict_cell(res: LoadedResult, m: Markup) -> str:
    v = res.record.verdict
    return m.bold(v) if v == "unreliable" else m.text(v)


def reported_cell(res: LoadedResult) -> str:
    r = res.record
    if r.reported is None:
        return DASH
    # The gap is measured minus reported: negative when our attacks found more than the paper's.
    return f"{r.reported:.2f} (Δ {delta(r.robust_acc - r.reported)})"


def model_cell(res: LoadedResult, m: Markup, report_href: str | None) -> str:
    cell = m.link(res.model_id, res.record.link)
    if report_href:
        cell += " · " + m.link("report", report_href)
    return cell


def row(rank: int, res: LoadedResult, m: Markup, docs_url: str, report_href: str | None) -> list[str]:
    r = res.record
    return [
        str(rank),
        model_cell(res, m, report_href),
        pct(r.clean_acc),
        pct(r.autoattack_acc),
        ci(r),
        verdict_cell(res, m),
        flags_cell(res, m, docs_url),
        reported_cell(res),
        m.text(r.architecture or DASH),
        m.text(a3_short(r)),
        "yes" if r.additional_data else "no",
        count(parameters(r)),
        compute_per_example(r),
    ]


def group_table(
    group: Group,
    m: Markup,
    docs_url: str = DEFAULT_DOCS_URL,
    report_href: Callable[[LoadedResult], str | None] | None = None,
) -> str:
    rows = [row(i + 1, res, m, docs_url, report_href(res) if report_href else None) for i, res in enumerate(group.rows)]
    fmt = "github" if m.kind == "md" else "unsafehtml"  # cells are escaped by Markup already
    headers = COLUMNS if m.kind == "md" else [html.escape(c) for c in COLUMNS]
    return tabulate(rows, headers=headers, tablefmt=fmt, colalign=_ALIGN, disable_numparse=True)


INTRO = (
    "Worst case: robust accuracy against the whole attack suite, an example counting as robust only "
    "if every attack failed on it; the interval is a 95 % Wilson interval over the evaluated examples. "
    "Verdict: what the gradient-masking diagnostics concluded (reliable / suspicious / unreliable); "
    "a flagged number is an upper bound, not a measurement. Reported: the paper's number, with the "
    "gap to our worst case. Compute: forward / backward passes and time per evaluated example."
)


def render_markdown(
    results: list[LoadedResult],
    docs_url: str = DEFAULT_DOCS_URL,
    report_href: Callable[[LoadedResult], str | None] | None = None,
) -> str:
    m = Markup("md")
    parts = ["# a3bench leaderboard", "", INTRO, ""]
    for g in group_results(results):
        n = sorted({res.record.n_examples for res in g.rows})
        parts += [f"## {g.title}", "", f"{len(g.rows)} model(s), {', '.join(map(str, n))} examples each.", ""]
        parts += [group_table(g, m, docs_url, report_href), ""]
        notes = [f"- {res.model_id}: {' '.join(res.record.footnote.split())}" for res in g.rows if res.record.footnote]
        if notes:
            parts += ["Notes:", "", *notes, ""]
    parts.append("_Generated by `a3bench report`._")
    return "\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
"""


def render_html(
    results: list[LoadedResult],
    docs_url: str = DEFAULT_DOCS_URL,
    report_href: Callable[[LoadedResult], str | None] | None = None,
) -> str:
    m = Markup("html")
    body = ["<h1>a3bench leaderboard</h1>", f"<p>{html.escape(INTRO)}</p>"]
    for g in group_results(results):
        body += [f"<h2>{html.escape(g.title)}</h2>", group_table(g, m, docs_url, report_href)]
        for res in g.rows:
            if res.record.footnote:
                body.append(f"<p><small>{html.escape(res.model_id)}: {html.escape(res.record.footnote)}</small></p>")
    body.append("<p><em>Generated by a3bench report.</em></p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>a3bench leaderboard</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
