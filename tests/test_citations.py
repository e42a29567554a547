"""The package's docstrings cite documents users have: docs/*.md files of this repository and
headings in them, never a design document the repository lacks."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO

# The sections docs/architecture.md is written with (docstrings cite them before it exists).
ARCHITECTURE_SECTIONS = {
    "layers", "the-attack-contract", "the-judge", "the-cascade", "the-record", "diagnostics-and-the-verdict",
    "the-a3-module", "extending",
}
CITATION = re.compile(r"docs/([A-Za-z0-9_-]+\.md)(?:#([A-Za-z0-9_-]+))?")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", doc.read_text(), flags=re.M)}


def _sources() -> list[Path]:
    return sorted((REPO / "a3bench").rglob("*.py"))


def test_no_design_document_is_cited():
    cited = [f"{p.relative_to(REPO)}:{i}" for p in _sources() for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\bDESIGN\b", line)]
    assert cited == []


def test_every_cited_doc_and_section_exists():
    missing = []
    for path in _sources():
        for doc, anchor in CITATION.findall(path.read_text()):
            target = REPO / "docs" / doc
            if doc == "architecture.md" and not target.is_file():
                ok = not anchor or anchor in ARCHITECTURE_SECTIONS
            else:
                ok = target.is_file() and (not anchor or anchor in _anchors(target))
            if not ok:
                missing.append(f"{path.relative_to(REPO)}: docs/{doc}{'#' + anchor if anchor else ''}")
    assert missing == []


def test_architecture_has_the_sections_docstrings_cite():
    doc = REPO / "docs" / "architecture.md"
    if doc.is_file():  # written by hand; until then the sections above are the contract
        assert ARCHITECTURE_SECTIONS <= _anchors(doc)
