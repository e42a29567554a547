"""RobustBench-style leaderboards: one table per (dataset, norm, eps), one row per model,
sorted by worst-case robust accuracy (the lowest over the whole attack suite).

A row is a result measured here or, with ``--robustbench``, an entry RobustBench publishes.
Ranks are what the 95 % intervals support: a row's rank is a range ("1–3") when its
interval overlaps those of its neighbours, a single number only when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from tabulate import tabulate

from a3bench.stats import wilson_interval
from a3bench.report.fmt import DASH, Markup, ci, delta, eps_text, pct
from a3bench.report.load import LoadedResult
from a3bench.report.robustbench import PublishedEntry

COLUMNS = [
    "Rank",
    "Model",
    "Clean (%)",
    "AutoAttack (%)",
    "Worst case (%) [95% CI]",
    "Verdict",
    "Flags",
    "Audit (%)",
    "Reported (%)",
]
# Right-align numbers, left-align text, as RobustBench's tables do.
_ALIGN = ("right", "left", "right", "right", "right", "left", "left", "right", "right")

DEFAULT_DOCS_URL = "docs/diagnostics.md"
PUBLISHED = "published"


def wilson(acc: float, n: int | None) -> tuple[float, float]:
    """95 % Wilson interval (percent) of an accuracy (percent) over n examples."""
    if not n:
        return (acc, acc)
    return wilson_interval(round(acc * n / 100), n)


@dataclass
class Row:
    """One leaderboard row: a result measured here (``result``) or an entry published by
    RobustBench (``published``), never both."""

    name: str
    clean: float
    robust: float  # worst case here; RobustBench's ranking number (external, else AutoAttack) there
    autoattack: float | None
    interval: tuple[float, float]
    n_examples: int | None
    reported: float | None
    link: str | None
    result: LoadedResult | None = None
    published: PublishedEntry | None = None
    rank: tuple[int, int] = (0, 0)  # best and worst rank the intervals allow

    @property
    def measured(self) -> bool:
        return self.result is not None

    @property
    def rank_text(self) -> str:
        lo, hi = self.rank
        return str(lo) if lo == hi else f"{lo}–{hi}"

    @property
    def tied(self) -> bool:
        return self.rank[0] != self.rank[1]

    @classmethod
    def from_result(cls, res: LoadedResult) -> "Row":
        r = res.record
        interval = tuple(r.robust_acc_ci) if len(r.robust_acc_ci) == 2 else wilson(r.robust_acc, r.n_examples)
        return cls(res.model_id, r.clean_acc, r.robust_acc, r.autoattack_acc, interval, r.n_examples, r.reported, r.link, result=res)

    @classmethod
    def from_published(cls, e: PublishedEntry) -> "Row":
        n = e.n_examples
        interval = wilson(e.robust_acc, n)
        return cls(e.model_id, e.clean_acc, e.robust_acc, e.autoattack_acc, interval, n, e.reported, e.link, published=e)


@dataclass
class Group:
    dataset: str
    norm: str
    eps: float
    eps_label: str
    rows: list[Row] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.norm}, eps = {self.eps_label}"

    @property
    def measured(self) -> list[Row]:
        return [r for r in self.rows if r.measured]

    @property
    def published(self) -> list[Row]:
        return [r for r in self.rows if not r.measured]

    def examples_line(self) -> str:
        """How many examples are behind the table's numbers."""
        n = sorted({r.n_examples for r in self.measured if r.n_examples is not None})
        counts = ", ".join(f"{k:,}" for k in n) or "?"
        line = f"{len(self.measured)} model(s) measured here on {counts} test examples each"
        if self.published:
            pn = sorted({r.n_examples for r in self.published if r.n_examples is not None})
            line += f"; {len(self.published)} published by RobustBench (not measured here; {', '.join(f'{k:,}' for k in pn) or '?'} examples)"
        return line + "."


def sort_key(row: Row) -> tuple:
    # Same worst case: higher clean accuracy first, then measured before published, then name.
    return (-row.robust, -row.clean, not row.measured, row.name)


def assign_ranks(rows: list[Row]) -> None:
    """Each row's rank range: 1 + the rows whose interval lies wholly above its own, to the
    count of rows minus those whose interval lies wholly below. Overlapping intervals make
    a range ("2–4"): the data cannot order those rows."""
    for row in rows:
        lo, hi = row.interval
        better = sum(1 for o in rows if o is not row and o.interval[0] > hi)
        worse = sum(1 for o in rows if o is not row and o.interval[1] < lo)
        row.rank = (better + 1, len(rows) - worse)


def _key(dataset: str, norm: str, eps: float) -> tuple:
    return (dataset, norm, round(eps, 9))


def same_eps(entry: PublishedEntry, eps: float) -> bool:
    """Whether a published entry is at budget ``eps``. A few of RobustBench's files write
    8/255 as "0.031": a decimal of three or more places matches ``eps`` rounded to as many."""
    text = entry.eps_text.strip()
    places = len(text.split(".", 1)[1]) if "." in text and "/" not in text and "e" not in text.lower() else 0
    if places >= 3:
        return round(eps, places) == round(entry.eps, places)
    return abs(entry.eps - eps) <= 1e-9


def group_results(results: Iterable[LoadedResult], published: Iterable[PublishedEntry] = ()) -> list[Group]:
    """Groups by (dataset, norm, eps), each sorted by worst case, best first, and ranked.
    Published entries join only the groups that have a measured row: they are there to
    show where a3bench's results would stand."""
    groups: dict[tuple, Group] = {}
    for res in results:
        r = res.record
        key = _key(r.dataset, r.norm, r.eps)
        groups.setdefault(key, Group(r.dataset, r.norm, r.eps, eps_text(r))).rows.append(Row.from_result(res))
    for e in published:
        if e.eps is None or e.robust_acc is None:
            continue  # corruptions: another threat model
        for g in groups.values():
            if (g.dataset, g.norm) == (e.dataset, e.threat_model) and same_eps(e, g.eps):
                g.rows.append(Row.from_published(e))
                break
    for g in groups.values():
        g.rows.sort(key=sort_key)
        assign_ranks(g.rows)
    return [groups[k] for k in sorted(groups)]


def unmatched_published(groups: list[Group], published: list[PublishedEntry]) -> list[str]:
    """Warnings for measured groups that no published entry matches (``--robustbench`` given)."""
    if not published:
        return []
    return [f"RobustBench publishes no {g.dataset} {g.norm} eps {g.eps_label} entry: that table has only a3bench's rows" for g in groups if not g.published]


def flags_cell(row: Row, m: Markup, docs_url: str) -> str:
    if row.result is None or not row.result.record.flags:
        return DASH
    marks = {"error": "✗", "warning": "⚠"}
    return ", ".join(f"{marks.get(f.severity, '')} {m.link(f.name, f'{docs_url}#{f.name}')}" for f in row.result.record.flags)


def verdict_cell(row: Row, m: Markup) -> str:
    if row.result is None:
        return m.text(PUBLISHED + (" (marked unreliable)" if row.published.unreliable else ""))
    v = row.result.record.verdict
    return m.bold(v) if v == "unreliable" else m.text(v)


def reported_cell(row: Row) -> str:
    if row.reported is None:
        return DASH
    if row.result is None:
        return f"{row.reported:.2f}"
    # The gap is measured minus reported: negative when our attacks found more than the paper's.
    return f"{row.reported:.2f} (Δ {delta(row.robust - row.reported)})"


def worst_cell(row: Row) -> str:
    if row.result is not None:
        return ci(row.result.record)
    lo, hi = row.interval
    return f"{row.robust:.2f} [{lo:.1f}, {hi:.1f}]"


def model_cell(row: Row, m: Markup, report_href: str | None) -> str:
    if row.result is None:
        e = row.published
        return m.link(row.name, e.link) + " · " + m.text(f"{e.venue or 'N/A'}, {PUBLISHED}")
    cell = m.link(row.name, row.link)
    if report_href:
        cell += " · " + m.link("report", report_href)
    return cell


def row_cells(row: Row, m: Markup, docs_url: str, report_href: str | None) -> list[str]:
    return [
        row.rank_text,
        model_cell(row, m, report_href),
        pct(row.clean),
        pct(row.autoattack),
        worst_cell(row),
        verdict_cell(row, m),
        flags_cell(row, m, docs_url),
        audit_cell(row),
        reported_cell(row),
    ]


def audit_cell(row: Row) -> str:
    """The binarization test's pass rate of the suite (docs/audit.md), when an audit ran."""
    audit = row.result.audit if row.result is not None else None
    if not audit or audit.get("pass_rate") is None:
        return DASH
    return f"{audit['pass_rate']:.1f}"


def group_table(
    group: Group,
    m: Markup,
    docs_url: str = DEFAULT_DOCS_URL,
    report_href: Callable[[LoadedResult], str | None] | None = None,
) -> str:
    """The group as a markdown table (tabulate ``pipe``: numbers right-aligned on GitHub)."""
    rows = [row_cells(r, m, docs_url, report_href(r.result) if report_href and r.result else None) for r in group.rows]
    return tabulate(rows, headers=COLUMNS, tablefmt="pipe", colalign=_ALIGN, disable_numparse=True)


INTRO = (
    "Worst case: robust accuracy against the whole attack suite, an example counting as robust only "
    "if every attack failed on it; the interval is a 95 % Wilson interval over the evaluated examples. "
    "Rank: a range (2–4) where the intervals overlap — the data cannot order those rows. "
    "Verdict: what the gradient-masking diagnostics concluded (reliable / suspicious / unreliable); "
    "a flagged number is an upper bound, not a measurement. Audit: the binarization test's pass rate — "
    "how often the suite's attacks found an adversarial example known to exist (docs/audit.md); low means "
    "the attacks, not the model, stand between you and a lower number. Reported: the paper's number, with the "
    "gap to our worst case. Architecture, A3 configuration, parameters and compute are in each model's report."
)

PUBLISHED_NOTE = (
    "Rows marked *published* are RobustBench's own entries, not measured here: its clean accuracy, "
    "its AutoAttack accuracy, its ranking number (a stronger `external` evaluation where it lists one, "
    "else AutoAttack) and the paper's reported number. Their intervals assume RobustBench's test set "
    "(10,000 CIFAR images, 5,000 ImageNet images)."
)


def render_markdown(
    results: list[LoadedResult],
    docs_url: str = DEFAULT_DOCS_URL,
    report_href: Callable[[LoadedResult], str | None] | None = None,
    published: list[PublishedEntry] | None = None,
) -> str:
    m = Markup("md")
    groups = group_results(results, published or [])
    parts = ["# a3bench leaderboard", "", INTRO, ""]
    if any(g.published for g in groups):
        parts += [PUBLISHED_NOTE, ""]
    for g in groups:
        parts += [f"## {m.text(g.title)}", "", g.examples_line(), ""]
        parts += [group_table(g, m, docs_url, report_href), ""]
        notes = [f"- {m.text(r.name)}: {m.text(r.result.record.footnote)}" for r in g.measured if r.result.record.footnote]
        if notes:
            parts += ["Notes:", "", *notes, ""]
    parts.append("_Generated by `a3bench report`._")
    return "\n".join(parts) + "\n"

