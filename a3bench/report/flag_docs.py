"""What each diagnostic flag means: the registry's line (:mod:`a3bench.flags`) and its
section of docs/diagnostics.md (``## <flag-name>``), so that a page or the terminal
(``a3bench flags NAME``) explains a flag without pointing to a file the user may not have.

docs/diagnostics.md ships with a3bench (:mod:`a3bench.bundled`): the explanation shown is
the one in the docs, never a second copy to keep in step. Its sections are parsed into
:mod:`a3bench.report.doc` blocks (paragraphs, lists, tables, code), so every renderer shows
them as what they are — a table as a table, not as pipes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from a3bench.bundled import bundled_path
from a3bench.report import doc
from a3bench.report.fmt import external_href

_SECTION = re.compile(r"^## ([a-z0-9][a-z0-9-]*)\s*$", re.MULTILINE)


@lru_cache(maxsize=4)
def flag_explanations(path: Path | None = None) -> dict[str, str]:
    """Flag name → the markdown text of its section; {} when the guide is not found."""
    path = path or bundled_path("docs/diagnostics.md")
    if path is None or not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    found = list(_SECTION.finditer(text))
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[m.end() : end].split("\n## ", 1)[0].strip()
        out[m.group(1)] = body
    return out


@dataclass(frozen=True)
class FlagDoc:
    """One flag, explained."""

    name: str
    severity: str | None  # the registry's usual severity; None for a name the registry lacks
    summary: str  # one line
    advice: str
    markdown: str  # its section of docs/diagnostics.md ("" when it has none)

    def blocks(self) -> list:
        return parse_blocks(self.markdown)

    def lead(self) -> list:
        """The section's first paragraph: enough to say what the flag means on a model's page."""
        return self.blocks()[:1]


def flag_doc(name: str) -> FlagDoc | None:
    """The explanation of ``name``; None when neither the registry nor the guide knows it."""
    from a3bench.flags import flag_kind

    kind = flag_kind(str(name))
    section = flag_explanations().get(str(name), "")
    if kind is None and not section:
        return None
    if kind is not None:
        return FlagDoc(kind.name, kind.severity.value, kind.summary, kind.advice, section)
    first = re.split(r"(?<=\.)\s", re.sub(r"^\*\*\w+\*\*\.?\s*", "", section.split("\n\n", 1)[0].replace("\n", " ")), maxsplit=1)[0]
    return FlagDoc(str(name), None, first, "", section)


def all_flag_docs() -> list[FlagDoc]:
    """Every registered flag, in the registry's order."""
    from a3bench.flags import all_flags

    return [d for d in (flag_doc(name) for name in all_flags()) if d is not None]


def flag_page(d: FlagDoc, back: doc.Link | None = None, footer: doc.Text = ()) -> doc.Page:
    """One flag: its line from the registry and its whole section of docs/diagnostics.md
    (the site's flag page, and what ``a3bench flags NAME`` prints)."""
    blocks: list = [doc.Heading(1, doc.text(d.name)), doc.Para(doc.text((d.severity or "flag") + " · " + d.summary), "meta")]
    if d.advice:
        blocks.append(doc.Para(doc.text(doc.Strong("What to do:"), " " + d.advice)))
    blocks += d.blocks() or [doc.Para(doc.text("No section for this flag in this version's diagnostics guide."))]
    return doc.Page(f"{d.name} — a3bench diagnostics", blocks, back=back, footer=footer)


# --------------------------------------------------------------------------- the guide's markdown as blocks

_INLINE = re.compile(
    r"(?P<tick>`+)(?P<code>.+?)(?P=tick)"
    r"|\[(?P<ltext>[^\]]+)\]\((?P<href>[^)\s]*)\)"
    r"|\*\*(?P<strong>.+?)\*\*"
    r"|(?<![\w*])\*(?!\s)(?P<emph>[^*]+?)(?<!\s)\*(?![\w*])"
)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_BULLET = re.compile(r"^(\s*)[-*] (.*)$")


def parse_inline(s: str) -> doc.Text:
    """Code spans, **bold**, *emphasis* and links of the guide. A link is kept only when it
    leads out to an http(s) page; links inside the docs become their text (the page that
    shows the section is not the docs folder)."""
    out: list = []
    pos = 0
    for m in _INLINE.finditer(s):
        if m.start() > pos:
            out.append(s[pos : m.start()])
        if m.group("code") is not None:
            out.append(doc.Code(m.group("code").strip()))
        elif m.group("ltext") is not None:
            label = m.group("ltext").strip("`")
            out.append(doc.Link(label, m.group("href")) if external_href(m.group("href")) else label)
        elif m.group("strong") is not None:
            out.append(doc.Strong(m.group("strong").replace("`", "")))
        else:
            out.append(doc.Emph(m.group("emph")))
        pos = m.end()
    if pos < len(s):
        out.append(s[pos:])
    return doc.text(*out)


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _table(lines: list[str]) -> doc.Table:
    head, rule, rows = _cells(lines[0]), _cells(lines[1]), [_cells(ln) for ln in lines[2:]]
    align = ["right" if r.endswith(":") and not r.startswith(":") else "left" for r in rule]
    align += ["left"] * (len(head) - len(align))
    columns = [doc.Column(h.replace("`", ""), align[i]) for i, h in enumerate(head)]
    body = [doc.TableRow([doc.Cell(parse_inline(c)) for c in (r + [""] * len(head))[: len(head)]]) for r in rows]
    return doc.Table(columns, body)


def _starts_block(lines: list[str], i: int) -> bool:
    line = lines[i]
    return (line.startswith("```") or bool(_BULLET.match(line)) or line.startswith("#")
            or (line.lstrip().startswith("|") and i + 1 < len(lines) and bool(_TABLE_RULE.match(lines[i + 1]))))


def parse_blocks(markdown: str) -> list:
    """The guide's markdown as blocks: paragraphs, bullet lists (continuation lines indented),
    tables, fenced and indented code, headings."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    blocks: list = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < n and not lines[j].startswith("```"):
                j += 1
            blocks.append(doc.CodeBlock("\n".join(lines[i + 1 : j])))
            i = j + 1
        elif line.startswith("    ") and (not blocks or not lines[i - 1].strip()):
            j = i
            while j < n and (lines[j].startswith("    ") or (not lines[j].strip() and j + 1 < n and lines[j + 1].startswith("    "))):
                j += 1
            blocks.append(doc.CodeBlock("\n".join(ln[4:] for ln in lines[i:j])))
            i = j
        elif line.lstrip().startswith("|") and i + 1 < n and _TABLE_RULE.match(lines[i + 1]):
            j = i + 2
            while j < n and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j]))
            i = j
        elif _BULLET.match(line):
            items: list[str] = []
            while i < n and lines[i].strip():
                m = _BULLET.match(lines[i])
                if m:
                    items.append(m.group(2))
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            blocks.append(doc.Bullets([parse_inline(it) for it in items]))
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            blocks.append(doc.Heading(min(level + 1, 6), parse_inline(line.lstrip("#").strip())))
            i += 1
        else:
            j = i + 1
            while j < n and lines[j].strip() and not _starts_block(lines, j):
                j += 1
            blocks.append(doc.Para(parse_inline(" ".join(ln.strip() for ln in lines[i:j]))))
            i = j
    return blocks
