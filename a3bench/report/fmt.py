"""Small formatting helpers shared by the leaderboard, per-model reports and check."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from a3bench.schema import ResultRecord

DASH = "—"


@dataclass(frozen=True)
class Markup:
    """Which markup a cell is rendered in: markdown for .md, HTML for the standalone page."""

    kind: str = "md"  # "md" | "html"

    def link(self, text: str, href: str | None) -> str:
        if not href:
            return self.text(text)
        if self.kind == "html":
            return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'
        return f"[{_md_escape(text)}]({href.replace(' ', '%20').replace(')', '%29')})"

    def text(self, text: str) -> str:
        return html.escape(text) if self.kind == "html" else _md_escape(text)

    def bold(self, text: str) -> str:
        return f"<b>{html.escape(text)}</b>" if self.kind == "html" else f"**{_md_escape(text)}**"


def _md_escape(text: str) -> str:
    # A pipe would end a table cell; a newline would end the row.
    return " ".join(str(text).split()).replace("|", "\\|")


def pct(v: float | None, digits: int = 2) -> str:
    return DASH if v is None else f"{v:.{digits}f}"


def delta(v: float | None, digits: int = 2) -> str:
    if v is None:
        return DASH
    if abs(v) < 0.5 * 10 ** (-digits):
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}"


def ci(record: ResultRecord) -> str:
    """``61.20 [58.10, 64.20]``: worst case with its 95 % interval when the record has one."""
    if len(record.robust_acc_ci) == 2:
        lo, hi = record.robust_acc_ci
        return f"{record.robust_acc:.2f} [{lo:.1f}, {hi:.1f}]"
    return f"{record.robust_acc:.2f}"


def eps_text(record: ResultRecord) -> str:
    if record.eps_text:
        return record.eps_text
    return format_eps(record.eps)


def format_eps(eps: float) -> str:
    # Same rule as a3bench.threat.format_eps, without importing torch for a report.
    k = eps * 255
    if 0 < eps < 1 and abs(k - round(k)) < 1e-6:
        return f"{int(round(k))}/255"
    return f"{eps:.6g}"


def count(n: float | None) -> str:
    """1234567 -> 1.23M: parameter and pass counts at a glance."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return DASH
    n = float(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


def number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def per_example(record: ResultRecord, key: str) -> float | None:
    """A compute figure per example: ``<key>_per_example`` when the record has it,
    else the total divided by n_examples."""
    c = record.compute or {}
    v = number(c.get(f"{key}_per_example"))
    if v is not None:
        return v
    total = number(c.get(key))
    return total / record.n_examples if total is not None and record.n_examples > 0 else None


def compute_per_example(record: ResultRecord) -> str:
    fwd, bwd, sec = (per_example(record, k) for k in ("forward_passes", "backward_passes", "seconds"))
    parts = []
    if fwd is not None:
        parts.append(f"{count(fwd)} fwd")
    if bwd is not None:
        parts.append(f"{count(bwd)} bwd")
    if sec is not None:
        parts.append(f"{sec * 1000:.3g} ms")
    return " / ".join(parts) or DASH


def a3_short(record: ResultRecord) -> str:
    """``A3×2 (mode=joint, k=4)``: enough to tell configurations apart in a table."""
    a3 = record.a3
    if not a3:
        return "none"
    n = a3.get("n_layers")
    head = f"A3×{n}" if n is not None else "A3"
    cfg = a3.get("config") or {}
    if isinstance(cfg, dict) and cfg:
        items = [f"{k}={v}" for k, v in cfg.items() if isinstance(v, (str, int, float, bool))]
        shown = ", ".join(items[:3]) + (", …" if len(items) > 3 else "")
        return f"{head} ({shown})" if shown else head
    return head


def parameters(record: ResultRecord) -> float | None:
    return number((record.model or {}).get("parameters"))
