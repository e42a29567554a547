"""A :class:`~a3bench.report.doc.Page` as rich renderables for the terminal.

Every string becomes a ``rich.text.Text`` with styles set by this module, never parsed as
rich markup: a record's ``[/]`` or ``[link=…]`` is shown as it is. Links show their text
only (a terminal hyperlink would hide where it goes).
"""

from __future__ import annotations

from typing import Iterator

from a3bench.report import doc

VERDICT_STYLES = {"reliable": "bold green", "not-evaluated-fully": "bold blue", "suspicious": "bold yellow", "unreliable": "bold red"}
SEVERITY_STYLES = {"error": "red", "warning": "yellow"}


def line(t: doc.Text, style: str = ""):
    from rich.text import Text

    out = Text(style=style)
    for p in t:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, doc.Code):
            out.append(p.text, style="cyan")
        elif isinstance(p, doc.Strong):
            out.append(p.text, style="bold")
        elif isinstance(p, doc.Emph):
            out.append(p.text, style="italic")
        elif isinstance(p, doc.Link):
            out.append(p.text, style="underline")
        elif isinstance(p, doc.VerdictMark):
            out.append(p.verdict, style=VERDICT_STYLES.get(p.verdict, ""))
        elif isinstance(p, doc.FlagMark):
            out.append(f"{p.mark} {p.name}".strip(), style=SEVERITY_STYLES.get(p.severity, ""))
            if p.note:
                out.append(f" ({p.note})", style="dim")
    return out


def _table(t: doc.Table):
    from rich.table import Table

    table = Table(show_header=not t.headless, caption=t.caption, expand=False)
    for c in t.columns:
        table.add_column(c.name, justify=c.align, overflow="fold")
    for r in t.rows:
        table.add_row(*(line(c.text) for c in r.cells))
    return table


def blocks(bs: list) -> Iterator:
    """Each block, a blank line after each paragraph-like one."""
    from rich.text import Text

    for b in bs:
        yield from _block(b)
        if not isinstance(b, (doc.Heading, doc.Section, doc.FlagEntry)):
            yield Text("")


def _block(b) -> Iterator:
    from rich.padding import Padding
    from rich.text import Text

    if isinstance(b, doc.Heading):
        yield Text("")
        yield line(b.text, "bold underline" if b.level <= 1 else "bold")
    elif isinstance(b, doc.Para):
        yield line(b.text, "dim" if b.style in ("meta", "sub") else "bold" if b.style == "strong" else "")
    elif isinstance(b, doc.Banner):
        yield line(b.text)
    elif isinstance(b, doc.Table):
        yield _table(b)
    elif isinstance(b, doc.Bullets):
        for item in b.items:
            yield Text("• ").append_text(line(item))
    elif isinstance(b, doc.Figure):
        yield Text(f"[figure: {b.alt}: {b.src}]", style="dim")
    elif isinstance(b, doc.CodeBlock):
        yield Padding(Text(b.text, style="cyan"), (0, 0, 0, 4))
    elif isinstance(b, doc.FlagEntry):
        head = Text(b.name, style="bold " + SEVERITY_STYLES.get(b.severity, ""))
        head.append(f" ({b.severity}" + (f", value {b.value:.4g}" if b.value is not None else "") + ")")
        yield head
        yield Padding(Text(b.message), (0, 0, 0, 2))
        yield from (Padding(r, (0, 0, 0, 2)) for r in blocks(b.explanation))
        if b.more:
            yield Padding(line(b.more), (0, 0, 0, 2))
    elif isinstance(b, doc.Section):
        if b.title:
            yield Text("")
            yield Text(b.title, style="bold")
        yield from blocks(b.blocks)


def render(page: doc.Page) -> list:
    """The page as a list of rich renderables, to print one after another."""
    from rich.text import Text

    out = list(blocks(page.blocks))
    if page.footer:
        out.append(line(page.footer, "dim"))
    return out or [Text("")]
