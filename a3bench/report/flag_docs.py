"""What each diagnostic flag means, read from docs/diagnostics.md (one ``## <flag-name>``
section per flag), so that a page can explain a flag without linking out of its site.

docs/diagnostics.md ships with a3bench (:mod:`a3bench.bundled`): the explanation on a
page is the one in the docs, never a second copy to keep in step.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from pathlib import Path

from a3bench.bundled import bundled_path

_SECTION = re.compile(r"^## ([a-z0-9][a-z0-9-]*)\s*$", re.MULTILINE)


@lru_cache(maxsize=4)
def flag_explanations(path: Path | None = None) -> dict[str, str]:
    """Flag name → the markdown text of its section; {} when the guide is not found."""
    path = path or bundled_path("docs/diagnostics.md")
    if path is None or not path.is_file():
        return {}
    text = path.read_text()
    found = list(_SECTION.finditer(text))
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[m.end() : end].split("\n## ", 1)[0].strip()
        out[m.group(1)] = body
    return out


def markdown_to_html(text: str) -> str:
    """The little markdown the guide's flag sections use — paragraphs, ``code`` and
    **bold** — as HTML. Everything is escaped first; links become their text."""
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    out = []
    for p in paras:
        t = html.escape(p, quote=False)
        t = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", t)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
        out.append(f"<p>{t}</p>")
    return "\n".join(out)
