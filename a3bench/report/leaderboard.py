"""RobustBench-style leaderboards: one table per (dataset, norm, eps), one row per model,
sorted by worst-case robust accuracy (the lowest over the whole attack suite).

A row is a model measured here or, with ``--robustbench``, an entry RobustBench publishes.

- Only evaluations at least as strong as AutoAttack (:mod:`a3bench.eval.strength`) are
  ranked; weaker ones are listed apart, below the table (``rank_all`` ranks everything).
- A model with several records gets one row with its best known — lowest — robust
  accuracy among its ranked records, as RobustBench does; the others are listed behind it.
- Ranks are what the 95 % intervals support: a row's rank is a range ("1–3") when its
  interval overlaps those of its neighbours, a single number only when it does not.
- A verified external evaluation (``a3bench verify --adv ... --out``, docs/verify.md) is a
  row of its own beside a3bench's rows of the same group, marked ``external`` and never
  ranked: its points were re-checked here, how hard they were searched for is not known.

The boards are built as a :class:`~a3bench.report.doc.Page` (:func:`leaderboard_page`)
and written as markdown or HTML by the output formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from a3bench.eval.strength import is_external, shown_verdict, strength_label
from a3bench.report import doc
from a3bench.report.doc import Cell, Column, Table, TableRow, text
from a3bench.report.fmt import DASH, ci, delta, eps_text, external_href, pct
from a3bench.report.load import LoadedResult
from a3bench.report.robustbench import PublishedEntry
from a3bench.report.sections import audit_only_flags
from a3bench.stats import wilson_interval

BOARD_COLUMNS = [
    Column("Rank", "right", "number"),
    Column("Model", "left", "text"),
    Column("Suite", "left", "text"),
    Column("n", "right", "number"),
    Column("Clean (%)", "right", "number"),
    Column("AutoAttack (%)", "right", "number"),
    Column("Worst case (%) [95% CI]", "right", "number"),
    Column("Verdict", "left", "text"),
    Column("Flags", "left", None),
    Column("Audit (%)", "right", "number"),
    Column("Reported (%)", "right", "number"),
]
COLUMNS = [c.name for c in BOARD_COLUMNS]

DEFAULT_DOCS_URL = "docs/diagnostics.md"
PUBLISHED = "published"
EXTERNAL = "external"


def wilson(acc: float, n: int | None) -> tuple[float, float]:
    """95 % Wilson interval (percent) of an accuracy (percent) over n examples."""
    if not n:
        return (acc, acc)
    return wilson_interval(round(acc * n / 100), n)


@dataclass
class Row:
    """One leaderboard row: a model measured here (``result``, its best known record) or an
    entry published by RobustBench (``published``), never both."""

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
    rank: tuple[int, int] = (0, 0)  # best and worst rank the intervals allow; (0, 0): not ranked
    others: list[LoadedResult] = field(default_factory=list)  # the model's other records, behind this one

    @property
    def measured(self) -> bool:
        return self.result is not None

    @property
    def external(self) -> bool:
        """A verified external evaluation (docs/verify.md): shown, never ranked."""
        return self.result is not None and is_external(self.result.record)

    @property
    def ranked(self) -> bool:
        return self.rank != (0, 0)

    @property
    def rank_text(self) -> str:
        lo, hi = self.rank
        if not self.ranked:
            return DASH
        return str(lo) if lo == hi else f"{lo}–{hi}"

    @property
    def tied(self) -> bool:
        return self.rank[0] != self.rank[1]

    @property
    def suite(self) -> str:
        if self.result is not None:
            return strength_label(self.result.record.strength)
        return "external" if self.published.external is not None else "AutoAttack"

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
    rows: list[Row] = field(default_factory=list)  # ranked: evaluations at least as strong as AutoAttack
    apart: list[Row] = field(default_factory=list)  # weaker evaluations, not ranked

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.norm}, eps = {self.eps_label}"

    @property
    def measured(self) -> list[Row]:
        return [r for r in self.rows + self.apart if r.measured and not r.external]

    @property
    def external(self) -> list[Row]:
        return [r for r in self.rows + self.apart if r.external]

    @property
    def published(self) -> list[Row]:
        return [r for r in self.rows if not r.measured]

    def examples_line(self) -> str:
        """How many examples are behind the table's numbers."""
        n = sorted({r.n_examples for r in self.measured if r.n_examples is not None})
        counts = ", ".join(f"{k:,}" for k in n) or "?"
        line = f"{len(self.measured)} model(s) measured here on {counts} test examples each"
        weaker = [r for r in self.apart if not r.external]
        if weaker:
            line += f" ({len(weaker)} evaluated with less than AutoAttack, listed apart)"
        if self.external:
            line += f"; {len(self.external)} external evaluation(s), their adversarial examples re-checked here (not ranked)"
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
    text_ = entry.eps_text.strip()
    places = len(text_.split(".", 1)[1]) if "." in text_ and "/" not in text_ and "e" not in text_.lower() else 0
    if places >= 3:
        return round(eps, places) == round(entry.eps, places)
    return abs(entry.eps - eps) <= 1e-9


def _by_robust(res: LoadedResult) -> tuple:
    r = res.record
    return (r.robust_acc, -r.clean_acc, res.model_id)


def model_rows(results: list[LoadedResult], rank_all: bool) -> tuple[list[Row], list[Row]]:
    """(ranked rows, rows apart): one row per model, its best known record in front."""
    models: dict[str, list[LoadedResult]] = {}
    for res in results:
        models.setdefault(res.model_identity, []).append(res)
    ranked, apart = [], []
    for records in models.values():
        full = [r for r in records if r.record.strength is not None and r.record.strength.complete]
        pool = records if rank_all or not full else full
        best = min(pool, key=_by_robust)
        row = Row.from_result(best)
        row.others = sorted((r for r in records if r is not best), key=_by_robust)
        (ranked if rank_all or full else apart).append(row)
    return ranked, apart


def group_results(results: Iterable[LoadedResult], published: Iterable[PublishedEntry] = (), rank_all: bool = False) -> list[Group]:
    """Groups by (dataset, norm, eps), each sorted by worst case, best first, and ranked.
    Published entries join only the groups that have a measured row: they are there to
    show where a3bench's results would stand."""
    members: dict[tuple, list[LoadedResult]] = {}
    groups: dict[tuple, Group] = {}
    for res in results:
        r = res.record
        key = _key(r.dataset, r.norm, r.eps)
        groups.setdefault(key, Group(r.dataset, r.norm, r.eps, eps_text(r)))
        members.setdefault(key, []).append(res)
    for key, g in groups.items():
        own = [r for r in members[key] if not is_external(r.record)]
        g.rows, g.apart = model_rows(own, rank_all)
        # a row each, beside ours: in the ranked table, or apart with ours when none of ours is ranked
        beside = g.rows if g.rows or not g.apart else g.apart
        beside += [Row.from_result(r) for r in members[key] if is_external(r.record)]
    for e in published:
        if e.eps is None or e.robust_acc is None:
            continue  # corruptions: another threat model
        for g in groups.values():
            if (g.dataset, g.norm) == (e.dataset, e.threat_model) and same_eps(e, g.eps):
                g.rows.append(Row.from_published(e))
                break
    for g in groups.values():
        g.rows.sort(key=sort_key)
        g.apart.sort(key=sort_key)
        assign_ranks([r for r in g.rows if not r.external])
    return [groups[k] for k in sorted(groups)]


def unmatched_published(groups: list[Group], published: list[PublishedEntry]) -> list[str]:
    """Warnings for measured groups that no published entry matches (``--robustbench`` given)."""
    if not published:
        return []
    return [f"RobustBench publishes no {g.dataset} {g.norm} eps {g.eps_label} entry: that table has only a3bench's rows" for g in groups if not g.published]


# --------------------------------------------------------------------------- the page


@dataclass
class BoardLinks:
    """Where a board's links go in the format being written."""

    report: Callable[[LoadedResult], str | None] = lambda res: None  # the model's own report or page
    flag: Callable[[LoadedResult, str], str | None] = lambda res, name: None  # a flag of that record
    paper: Callable[[str | None], str | None] = lambda link: link  # which record links become links
    generated_by: str = "a3bench report"


def _model_cell(row: Row, links: BoardLinks) -> Cell:
    if row.result is None:
        e = row.published
        return Cell.of(text(doc.Link(row.name, e.link), f" · {e.venue or 'N/A'}, {PUBLISHED}"), row.name.lower())
    paper = links.paper(row.link)
    label = "paper" if external_href(paper) else "model"  # a card's link is a paper, or the model's own folder
    return Cell.of(text(doc.Link(row.name, links.report(row.result)), (" · ", doc.Link(label, paper)) if paper else None,
                        f" · {EXTERNAL}" if row.external else None), row.name.lower())


def _flags_cell(row: Row, links: BoardLinks) -> Cell:
    if row.result is None:
        return Cell.of(DASH)
    res = row.result
    marks = [doc.FlagMark(f.name, str(f.severity), links.flag(res, f.name)) for f in res.record.flags]
    marks += [doc.FlagMark(f.name, str(f.severity), links.flag(res, f.name), note="audit") for f in audit_only_flags(res)]
    return Cell.of(doc.joined(marks) if marks else DASH)


def _verdict_cell(row: Row) -> Cell:
    if row.result is None:
        v = text(doc.VerdictMark(PUBLISHED), " (marked unreliable)" if row.published.unreliable else "")
        return Cell.of(v, PUBLISHED)
    verdict, _ = shown_verdict(row.result.record)
    return Cell.of(doc.VerdictMark(verdict), verdict)


def _reported_cell(row: Row) -> Cell:
    if row.reported is None:
        return Cell.of(DASH)
    if row.result is None:
        return Cell.of(f"{row.reported:.2f}", row.reported)
    # The gap is measured minus reported: negative when our attacks found more than the paper's.
    return Cell.of(f"{row.reported:.2f} (Δ {delta(row.robust - row.reported)})", row.reported)


def _worst_cell(row: Row) -> Cell:
    if row.result is not None:
        return Cell.of(ci(row.result.record), row.robust)
    lo, hi = row.interval
    return Cell.of(f"{row.robust:.2f} [{lo:.1f}, {hi:.1f}]", row.robust)


def _rank_cell(row: Row, rows: list[Row]) -> Cell:
    title = None
    if row.tied:
        overlap = [o.name for o in rows if o is not row and o.interval[0] <= row.interval[1] and o.interval[1] >= row.interval[0]]
        title = "95 % intervals overlap with: " + ", ".join(overlap)
    return Cell.of(row.rank_text, row.rank[0] if row.ranked else None, title)


def board_row(row: Row, rows: list[Row], links: BoardLinks) -> TableRow:
    audit = row.result.audit if row.result is not None else None
    rate = audit.summary.pass_rate if audit is not None else None
    cells = [
        _rank_cell(row, rows),
        _model_cell(row, links),
        Cell.of(row.suite, row.suite),
        Cell.of(DASH if row.n_examples is None else f"{row.n_examples:,}", row.n_examples),
        Cell.of(pct(row.clean), row.clean),
        Cell.of(pct(row.autoattack), row.autoattack),
        _worst_cell(row),
        _verdict_cell(row),
        _flags_cell(row, links),
        Cell.of(DASH if rate is None else f"{rate:.1f}", rate),
        _reported_cell(row),
    ]
    return TableRow(cells, "measured" if row.measured else "published", row.name)


def board(rows: list[Row], links: BoardLinks, table_id: str | None) -> Table:
    return Table(list(BOARD_COLUMNS), [board_row(r, rows, links) for r in rows], id=table_id)


def _other_records(g: Group, links: BoardLinks) -> list[doc.Text]:
    items = []
    for row in g.rows + g.apart:
        for res in row.others:
            r = res.record
            items.append(text(f"{row.name}: also ", doc.Link(res.model_id, links.report(res)),
                              f", worst case {ci(r)} % ({strength_label(r.strength)}, n = {r.n_examples:,}, {res.path.parent.as_posix()})"))
    return items


INTRO = (
    "Worst case: robust accuracy against the whole attack suite, an example counting as robust only "
    "if every attack failed on it; the interval is a 95 % Wilson interval over the n evaluated examples. "
    "Suite: what ran; only evaluations at least as strong as AutoAttack (standard, or rand for randomised models) "
    "are ranked, weaker ones are listed apart below the table. A model with several records shows its best known "
    "(lowest) worst case; its other records are listed below. "
    "Rank: a range (2–4) where the intervals overlap — the data cannot order those rows. "
    "Verdict: what the gradient-masking diagnostics concluded (reliable / suspicious / unreliable; "
    "not-evaluated-fully when the evaluation was weaker than AutoAttack); "
    "a flagged number is an upper bound, not a measurement. Audit: the binarization test's pass rate — "
    "how often the suite's attacks found an adversarial example known to exist (docs/audit.md); low means "
    "the attacks, not the model, stand between you and a lower number. Reported: the paper's number, with the "
    "gap to our worst case. Architecture, A3 configuration, parameters and compute are in each model's report."
)

PUBLISHED_NOTE = text(
    "Rows marked ", doc.Emph("published"), " are RobustBench's own entries, not measured here: its clean accuracy, "
    "its AutoAttack accuracy, its ranking number (a stronger ", doc.Code("external"), " evaluation where it lists one, "
    "else AutoAttack) and the paper's reported number. Their intervals assume RobustBench's test set "
    "(10,000 CIFAR images, 5,000 ImageNet images)."
)


def leaderboard_page(groups: list[Group], links: BoardLinks) -> doc.Page:
    """The boards, one section per (dataset, norm, eps)."""
    blocks: list = [doc.Heading(1, text("a3bench leaderboard")), doc.Para(text(INTRO))]
    if any(g.published for g in groups):
        blocks.append(doc.Para(PUBLISHED_NOTE))
    for i, g in enumerate(groups):
        blocks += [doc.Heading(2, text(g.title), f"board-{i}-title"), doc.Para(text(g.examples_line()), "meta")]
        if g.rows:
            blocks.append(board(g.rows, links, f"board-{i}"))
        if g.apart:
            blocks += [doc.Heading(3, text("Not ranked: evaluated with less than AutoAttack"), f"board-{i}-apart-title"),
                       board(g.apart, links, f"board-{i}-apart")]
        others = _other_records(g, links)
        if others:
            blocks += [doc.Para(text("Other records of these models:")), doc.Bullets(others)]
        notes = [text(f"{r.name}: {r.result.record.footnote}") for r in g.measured if r.result.record.footnote]
        if notes:
            blocks += [doc.Para(text("Notes:")), doc.Bullets(notes)]
    return doc.Page("a3bench leaderboard", blocks, search=True, footer=text("Generated by ", doc.Code(links.generated_by), "."))
