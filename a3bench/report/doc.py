"""Pages as data: what a report says, built once and rendered three ways (docs/report.md).

:mod:`a3bench.report.sections` (a model's report) and :mod:`a3bench.report.leaderboard`
(the boards) build :class:`Page` objects out of the blocks below; :mod:`render_md`,
:mod:`render_html` and :mod:`render_term` turn a page into markdown, HTML or rich
renderables. The prose lives in the builders, once; the renderers know markup, never what
a report says.

Every string in a page is plain text, whatever record, card or file it came from: each
renderer escapes it for its own markup (markdown, HTML, rich), so untrusted text can never
become markup. A link is a :class:`Link` whose ``href`` the renderers check again
(:func:`a3bench.report.fmt.safe_href`): only http(s) or relative links are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Union

# --------------------------------------------------------------------------- inline


@dataclass(frozen=True)
class Code:
    text: str
    kind: ClassVar[str] = "code"


@dataclass(frozen=True)
class Strong:
    text: str
    kind: ClassVar[str] = "strong"


@dataclass(frozen=True)
class Emph:
    text: str
    kind: ClassVar[str] = "emph"


@dataclass(frozen=True)
class Link:
    """``text`` linked to ``href`` when the renderer accepts ``href``; else the text alone."""

    text: str
    href: str | None
    kind: ClassVar[str] = "link"


@dataclass(frozen=True)
class VerdictMark:
    """A verdict: coloured in HTML and the terminal (green only for ``reliable``), bold in
    markdown when it is ``unreliable``."""

    verdict: str
    kind: ClassVar[str] = "verdict"


@dataclass(frozen=True)
class FlagMark:
    """A flag in a table cell: ✗ (error) or ⚠ (warning), its name, linked to what it means."""

    name: str
    severity: str
    href: str | None = None
    note: str = ""  # e.g. "audit": where the flag comes from, when not the record itself
    kind: ClassVar[str] = "flag"

    @property
    def mark(self) -> str:
        return {"error": "✗", "warning": "⚠"}.get(self.severity, "")


Inline = Union[str, Code, Strong, Emph, Link, VerdictMark, FlagMark]
Text = tuple  # of Inline


def text(*parts: Inline | Iterable[Inline] | None) -> Text:
    """A run of inlines; None and "" are dropped, nested runs flattened."""
    out: list = []
    for p in parts:
        if p is None or p == "":
            continue
        if isinstance(p, (tuple, list)):
            out.extend(text(*p))
        else:
            out.append(p)
    return tuple(out)


def joined(items: Iterable[Inline | Text], sep: str = ", ") -> Text:
    out: list = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.extend(text(item))
    return tuple(out)


def plain(t: Text | Inline) -> str:
    """The text of a run, without markup (for titles and search)."""
    parts = t if isinstance(t, tuple) else (t,)
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, VerdictMark):
            out.append(p.verdict)
        elif isinstance(p, FlagMark):
            out.append(f"{p.mark} {p.name}".strip())
        else:
            out.append(p.text)
    return "".join(out)


# --------------------------------------------------------------------------- blocks


@dataclass
class Heading:
    level: int
    text: Text
    anchor: str | None = None
    kind: ClassVar[str] = "heading"


@dataclass
class Para:
    text: Text
    style: str = ""  # "meta" (context under a heading), "sub" (small print), "strong"
    kind: ClassVar[str] = "para"


@dataclass
class Banner:
    """The verdict at the top of a model's page."""

    verdict: str
    text: Text
    kind: ClassVar[str] = "banner"


@dataclass
class Column:
    name: str
    align: str = "left"  # "left" | "right" (numbers)
    sort: str | None = None  # "number" | "text": the site can sort by it; None: not sortable


@dataclass
class Cell:
    text: Text
    sort: float | str | None = None  # the value the site sorts by (numbers: missing sorts last)
    title: str | None = None  # shown on hover in the site

    @classmethod
    def of(cls, value: Inline | Text, sort: float | str | None = None, title: str | None = None) -> "Cell":
        return cls(text(value), sort, title)


@dataclass
class TableRow:
    cells: list[Cell]
    style: str = ""  # "measured" | "published" (the site highlights them)
    key: str | None = None  # the row's model, for the site's tests and scripts


@dataclass
class Table:
    columns: list[Column]
    rows: list[TableRow]
    headless: bool = False  # a key/value table: no header row worth showing
    id: str | None = None  # the site's sortable boards have one
    caption: str | None = None
    kind: ClassVar[str] = "table"

    @property
    def sortable(self) -> bool:
        return self.id is not None and any(c.sort for c in self.columns)


@dataclass
class Bullets:
    items: list[Text]
    kind: ClassVar[str] = "bullets"


@dataclass
class Figure:
    src: str
    alt: str
    kind: ClassVar[str] = "figure"


@dataclass
class CodeBlock:
    text: str
    kind: ClassVar[str] = "codeblock"


@dataclass
class FlagEntry:
    """One flag that fired: this run's message, and what the flag means."""

    name: str
    severity: str
    message: str
    value: float | None = None
    more: Text = ()  # where to read what it means: a link, or the command that prints it
    explanation: list = field(default_factory=list)  # blocks: the start of the docs' section (HTML and terminal show it)
    anchor: str | None = None
    kind: ClassVar[str] = "flag_entry"


@dataclass
class Section:
    """A titled part of a page (``## title``; ``<section id=anchor>``)."""

    title: str | None
    blocks: list
    anchor: str | None = None
    level: int = 2
    kind: ClassVar[str] = "section"


Block = Union[Heading, Para, Banner, Table, Bullets, Figure, CodeBlock, FlagEntry, Section]


@dataclass
class Page:
    """A whole document: a model's report, a leaderboard, a flag's explanation."""

    title: str
    blocks: list
    back: Link | None = None  # the site's way back to its index
    search: bool = False  # the site's row filter above the boards
    footer: Text = ()
