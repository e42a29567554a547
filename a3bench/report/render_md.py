"""A :class:`~a3bench.report.doc.Page` as GitHub markdown.

Every string is escaped (:func:`~a3bench.report.fmt.md_text`): HTML is shown as text,
brackets, pipes and backticks cannot make links, tables or code, newlines cannot end a
table row. Tables are tabulate's ``pipe`` format, numbers right-aligned.
"""

from __future__ import annotations

from tabulate import tabulate

from a3bench.report import doc
from a3bench.report.fmt import md_code, md_href, md_text, safe_href


def inline(part: doc.Inline) -> str:
    if isinstance(part, str):
        return md_text(part)
    if isinstance(part, doc.Code):
        return md_code(part.text)
    if isinstance(part, doc.Strong):
        return f"**{md_text(part.text)}**" if part.text.strip() else ""
    if isinstance(part, doc.Emph):
        return f"*{md_text(part.text)}*" if part.text.strip() else ""
    if isinstance(part, doc.Link):
        href = safe_href(part.href)
        return f"[{md_text(part.text)}]({md_href(href)})" if href else md_text(part.text)
    if isinstance(part, doc.VerdictMark):
        return f"**{md_text(part.verdict)}**" if part.verdict == "unreliable" else md_text(part.verdict)
    if isinstance(part, doc.FlagMark):
        name = inline(doc.Link(part.name, part.href))
        return f"{part.mark} {name}".strip() + (f" ({md_text(part.note)})" if part.note else "")
    raise TypeError(f"not an inline: {part!r}")


def line(t: doc.Text) -> str:
    return "".join(inline(p) for p in t)


def table(t: doc.Table) -> str:
    headers = ["" for _ in t.columns] if t.headless else [md_text(c.name) for c in t.columns]
    rows = [[line(c.text) for c in r.cells] for r in t.rows]
    return tabulate(rows, headers=headers, tablefmt="pipe", colalign=[c.align for c in t.columns], disable_numparse=True)


def block(b, level_offset: int = 0) -> list[str]:
    if isinstance(b, doc.Heading):
        return ["#" * b.level + " " + line(b.text), ""]
    if isinstance(b, doc.Para):
        body = line(b.text)
        return [f"**{body}**" if b.style == "strong" and body else body, ""]
    if isinstance(b, doc.Banner):
        return [f"> {line(b.text)}", ""]
    if isinstance(b, doc.Table):
        out = [table(b), ""]
        return ([md_text(b.caption), ""] if b.caption else []) + out
    if isinstance(b, doc.Bullets):
        return [f"- {line(item)}" for item in b.items] + [""]
    if isinstance(b, doc.Figure):
        href = safe_href(b.src)
        return [f"![{md_text(b.alt)}]({md_href(href)})" if href else md_text(b.alt), ""]
    if isinstance(b, doc.CodeBlock):
        fence = "```" if "```" not in b.text else "~~~~"
        return [fence, b.text.replace("~~~~", "~ ~ ~ ~"), fence, ""]
    if isinstance(b, doc.FlagEntry):
        value = f" (value {b.value:.4g})" if b.value is not None else ""
        more = " " + line(b.more) if b.more else ""
        return [f"- **{md_text(b.name)}** ({md_text(b.severity)}){value}: {md_text(b.message)}{more}"]
    if isinstance(b, doc.Section):
        out = ["#" * b.level + " " + md_text(b.title), ""] if b.title else []
        body: list[str] = []
        for inner in b.blocks:
            body += block(inner)
        if body and body[-1] != "":
            body.append("")  # a list of flag entries ends with its blank line
        return out + body
    raise TypeError(f"not a block: {b!r}")


def render(page: doc.Page) -> str:
    out: list[str] = []
    for b in page.blocks:
        out += block(b)
    if page.footer:
        out.append(line(page.footer))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
