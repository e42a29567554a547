"""Small formatting helpers shared by the leaderboard, per-model reports and check."""

from __future__ import annotations

import math
import re
from typing import Any

from a3bench.schema import ResultRecord

DASH = "—"


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def safe_href(href: Any) -> str | None:
    """``href`` when it is an http(s) URL or a relative link (a path or an ``#anchor``); None
    for anything else — ``javascript:``, ``data:``, ``file:``, protocol-relative ``//host``,
    absolute paths — so that text from a record or a card never becomes an active link.

    Control characters refuse the link outright: browsers drop tabs and newlines from URLs,
    so ``java\tscript:`` would be ``javascript:``."""
    if not isinstance(href, str):
        return None
    h = href.strip()
    if not h or any(ord(c) < 32 or ord(c) == 127 for c in h) or "\\" in h:
        return None
    m = _SCHEME.match(h)
    if m:
        return h if m.group(1).lower() in ("http", "https") and len(h) > len(m.group(0)) + 2 and h[len(m.group(0)):].startswith("//") else None
    if h.startswith("/"):
        return None  # absolute path or //host: outside whatever folder the page sits in
    head = re.split(r"[/?#]", h, maxsplit=1)[0]
    return None if ":" in head else h  # "x:y" is a scheme to some browser


def external_href(href: Any) -> str | None:
    """Only an http(s) URL: what a page may link to outside its own site."""
    h = safe_href(href)
    return h if h is not None and _SCHEME.match(h) else None


def md_text(text: Any) -> str:
    """Text for a markdown page, inert: HTML (``<script>``, ``<img onerror>``) shown as text,
    link brackets and table pipes escaped, newlines folded (a newline would end a table row).
    Runs of white space become one space; a space at either end is kept (text runs are joined)."""
    t = re.sub(r"\s+", " ", str(text))
    t = t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*\[\]|])", r"\\\1", t)


def md_code(text: Any) -> str:
    """``text`` as a markdown code span that nothing inside it can close."""
    t = " ".join(str(text).split())
    fence = "`" * (max((len(r) for r in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return f"{fence}{pad}{t}{pad}{fence}".replace("|", "\\|")


def md_href(href: str) -> str:
    # Characters that would end a markdown link destination or a table cell, percent-encoded.
    for c, enc in ((" ", "%20"), ("(", "%28"), (")", "%29"), ("<", "%3C"), (">", "%3E"), ("|", "%7C"), ('"', "%22")):
        href = href.replace(c, enc)
    return href


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
    """The record's own eps text, else eps formatted by a3bench's one rule
    (:func:`a3bench.threat.format_eps`; imported only then: it loads torch)."""
    if record.eps_text:
        return record.eps_text
    from a3bench.threat import format_eps

    return format_eps(record.eps)


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
        parts.append(duration(sec))
    return " / ".join(parts) or DASH


def duration(seconds: float | None) -> str:
    """A time a person reads at a glance: 48 ms, 4.8 s, 12 min, 2.1 h (never 4.75e+03 ms)."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    if seconds == 0:
        return "0 s"
    for unit, size in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= size or unit == "µs":
            v = seconds / size
            return f"{v:.0f} {unit}" if abs(v) >= 10 or v == 0 else f"{v:.1f} {unit}"
    return DASH


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
