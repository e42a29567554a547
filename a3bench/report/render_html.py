"""A :class:`~a3bench.report.doc.Page` as one self-contained HTML file (Jinja2, autoescape on).

The templates are in ``a3bench/report/templates/``: ``page.html.j2`` (the frame: policy,
CSS, the page's script) and ``blocks.html.j2`` (one macro per block). Every value is
escaped by Jinja2's autoescape; the CSS and the script are our own files, and the
Content-Security-Policy names the script's hash, so no other script can run.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from pathlib import Path

from a3bench.report import doc
from a3bench.report.fmt import external_href, safe_href

TEMPLATES = Path(__file__).resolve().parent / "templates"
VERDICT_CLASSES = frozenset({"reliable", "not-evaluated-fully", "suspicious", "unreliable", "published", "error", "warning"})


def _verdict_class(value: object) -> str:
    return str(value) if str(value) in VERDICT_CLASSES else "unknown"


def _sort_value(value: object) -> str:
    """A numeric cell's sort key for the site's script; '' sorts last."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return repr(float(value))


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=False, lstrip_blocks=False)
    env.filters.update(href=safe_href, external_href=external_href, verdict_class=_verdict_class, sort_value=_sort_value)
    return env


@lru_cache(maxsize=1)
def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def csp(script: str | None) -> str:
    """Nothing from the network; no script but the one whose hash is named."""
    scripts = f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'" if script else "'none'"
    return f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src {scripts}; base-uri 'none'; form-action 'none'"


def render(page: doc.Page, *, interactive: bool = False) -> str:
    """The page as HTML; ``interactive``: with the index's sorting and search script."""
    from markupsafe import Markup

    script = _asset("site.js") if interactive else None
    template = _environment().get_template("page.html.j2")
    # The policy, the CSS and the script are this module's own text, not data: inserted as they are.
    return template.render(page=page, csp=Markup(csp(script)), css=Markup(_asset("site.css")),
                           script=Markup(script) if script else None) + "\n"
