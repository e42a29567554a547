"""``a3bench report --format html``: the leaderboard as a self-contained static site.

    <out>/index.html                               one table per (dataset, norm, eps)
    <out>/models/<dataset>_<norm>_<model>.html     one page per result
    <out>/img/<dataset>_<norm>_<model>.sweep.png   its eps curve, copied in

The index's tables sort by any column and a search box filters their rows, with a few
lines of inline JavaScript. Each page carries its CSS and script inline and a
Content-Security-Policy that lets it load nothing from anywhere but the site itself: the
only script that runs is the one whose hash the policy names.

Links stay inside the site. The one exception is a paper's http(s) link; a link from a
record or a card that is anything else (``javascript:``, a path of the source checkout)
is shown as text. Every value from a record, a card or RobustBench's files is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from a3bench.io import atomic_write_bytes, safe_name, write_text_atomic
from a3bench.report.flag_docs import flag_explanations, markdown_to_html
from a3bench.report.fmt import DASH, a3_short, ci, compute_per_example, count, delta, duration, eps_text, external_href, number, parameters, pct
from a3bench.report.leaderboard import INTRO, PUBLISHED_NOTE, Group, Row, group_results
from a3bench.report.load import LoadedResult
from a3bench.report.markdown import breakdown, plot_inside
from a3bench.report.robustbench import PublishedEntry

INDEX = "index.html"
MODELS_DIR = "models"
IMG_DIR = "img"


def e(value) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class SiteOutput:
    index: Path
    pages: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- page frame

_CSS = """
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --pub: #57606a; --line: #d0d7de; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 1.5em 2em; max-width: 80em; color: #1f2328; line-height: 1.45; }
h1 { margin-top: 0; } h2 { margin-top: 1.8em; }
nav { margin-bottom: 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid var(--line); padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " ▲"; }
th[aria-sort="descending"] button::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.published td { color: var(--pub); }
tr.measured td { background: #fff8c5; }
.scroll { overflow-x: auto; }
.sub { font-size: 0.85em; color: var(--pub); }
.verdict { font-weight: 600; padding: 0 0.35em; border-radius: 0.3em; white-space: nowrap; }
.verdict-reliable { color: #fff; background: var(--ok); }
.verdict-suspicious { color: #fff; background: var(--warn); }
.verdict-unreliable { color: #fff; background: var(--bad); }
.verdict-published { color: var(--pub); border: 1px solid var(--pub); font-weight: normal; }
.sev-error { color: var(--bad); } .sev-warning { color: var(--warn); }
.tie { border-bottom: 1px dotted; cursor: help; }
.banner { padding: 0.6em 0.9em; border-left: 0.35em solid; margin: 1em 0; background: #f6f8fa; }
.banner.verdict-reliable { border-color: var(--ok); } .banner.verdict-suspicious { border-color: var(--warn); }
.banner.verdict-unreliable { border-color: var(--bad); }
.banner.verdict-reliable, .banner.verdict-suspicious, .banner.verdict-unreliable { color: inherit; background: #f6f8fa; }
#search { font: inherit; padding: 0.3em 0.5em; width: 24em; max-width: 100%; }
.meta, .shown { color: var(--pub); margin: 0.2em 0; }
section.flag { border-top: 1px solid var(--line); margin-top: 1em; }
img.curve { max-width: 100%; border: 1px solid var(--line); }
code { background: #f6f8fa; padding: 0 0.2em; }
"""

# Sorting and search for the index. No library: it must run from a folder on disk.
_SCRIPT = """
(function () {
  "use strict";
  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (!numeric) return v.toLowerCase();
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function sortBy(table, col, th) {
    var heads = table.tHead.rows[0].cells;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var numeric = th.getAttribute("data-type") === "number";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col, numeric), y = value(b, col, numeric);
      if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);  // missing values last
      var d = numeric ? x - y : x.localeCompare(y);
      return ascending ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  var tables = document.querySelectorAll("table.board");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      var button = th.querySelector("button");
      if (button) button.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });
  var search = document.getElementById("search");
  if (!search) return;
  function filter() {
    var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    Array.prototype.forEach.call(tables, function (table) {
      var rows = table.tBodies[0].rows, shown = 0;
      for (var i = 0; i < rows.length; i++) {
        var text = rows[i].textContent.toLowerCase();
        var hit = words.every(function (w) { return text.indexOf(w) >= 0; });
        rows[i].hidden = !hit;
        if (hit) shown++;
      }
      var note = document.getElementById(table.id + "-shown");
      if (note) note.textContent = words.length ? shown + " of " + rows.length + " rows match" : "";
    });
  }
  search.addEventListener("input", filter);
  filter();
})();
"""


def _csp(script: str | None) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() if script else None
    scripts = f"'sha256-{digest}'" if digest else "'none'"
    return (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        f"script-src {scripts}; base-uri 'none'; form-action 'none'"
    )


def page(title: str, body: str, script: str | None = None) -> str:
    """A whole HTML document: inline CSS, the optional inline script, and a policy that
    forbids loading anything from the network."""
    tail = f"<script>{script}</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_csp(script)}\">\n"  # our constant: no quote or & in it
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        f"<title>{e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n{tail}</body>\n</html>\n"
    )


def ext_link(text: str, href: str | None) -> str:
    """A link out of the site: only to an http(s) URL (a paper); otherwise the text alone."""
    url = external_href(href)
    if url is None:
        return e(text)
    return f'<a class="ext" href="{e(url)}" rel="noopener noreferrer">{e(text)}</a>'


def verdict_badge(verdict: str) -> str:
    cls = verdict if verdict in ("reliable", "suspicious", "unreliable") else "unknown"
    return f'<span class="verdict verdict-{cls}">{e(verdict)}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """Cells are HTML already escaped by the caller."""
    head = "".join(f"<th scope=\"col\">{e(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join(
        "<tr>" + "".join(f"<td class=\"num\">{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>\n"
        for r in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>\n" if head else ""
    klass = f' class="{e(cls)}"' if cls else ""
    return f"<table{klass}>\n{thead}<tbody>\n{body}</tbody>\n</table>"


# --------------------------------------------------------------------------- index

_BOARD_COLUMNS = [
    # (header, data-type or None when not sortable, numeric cell)
    ("Rank", "number", True),
    ("Model", "text", False),
    ("Source", "text", False),
    ("Clean (%)", "number", True),
    ("AutoAttack (%)", "number", True),
    ("Worst case (%) [95% CI]", "number", True),
    ("Verdict", "text", False),
    ("Flags", None, False),
    ("Audit (%)", "number", True),
    ("Reported (%)", "number", True),
    ("Examples", "number", True),
]


def _num(v: float | None, text: str | None = None) -> tuple[str, str]:
    """(data-value, shown text) of a numeric cell; '' sorts last."""
    return ("" if v is None else repr(float(v)), text if text is not None else pct(v))


def _board_row(row: Row, group: Group, page_of: dict[int, str]) -> str:
    cells: list[tuple[str, str]] = []  # (data-value or "", inner HTML)
    overlap = [o.name for o in group.rows if o is not row and o.interval[0] <= row.interval[1] and o.interval[1] >= row.interval[0]]
    rank = e(row.rank_text)
    if row.tied:
        rank = f'<span class="tie" title="{e("95 % intervals overlap with: " + ", ".join(overlap))}">{rank}</span>'
    cells.append((repr(row.rank[0]), rank))
    if row.measured:
        res = row.result
        href = page_of[id(res)]
        model = f'<a href="{e(href)}">{e(row.name)}</a>'
        if external_href(row.link):
            model += " · " + ext_link("paper", row.link)
        if res.record.name and res.record.name != row.name:
            model += f'<div class="sub">{e(res.record.name)}</div>'
        cells.append(("", model))
        cells.append(("", "<b>measured here</b>"))
    else:
        p = row.published
        model = ext_link(row.name, p.link)
        model += f'<div class="sub">{e(p.name)}{" — " + e(p.venue) if p.venue else ""}</div>'
        cells.append(("", model))
        cells.append(("", '<span title="published by RobustBench, not measured here">RobustBench</span>'))
    cells.append(_num(row.clean))
    cells.append(_num(row.autoattack))
    lo, hi = row.interval
    cells.append((repr(float(row.robust)), f"{row.robust:.2f} <span class=\"sub\">[{lo:.1f}, {hi:.1f}]</span>"))
    if row.measured:
        rec = row.result.record
        cells.append(("", verdict_badge(rec.verdict)))
        flags = [
            f'<a class="sev-{e(f.severity)}" href="{e(page_of[id(row.result)])}#flag-{e(safe_name(f.name))}">{e(f.name)}</a>'
            for f in rec.flags
        ]
        cells.append(("", ", ".join(flags) or DASH))
    else:
        extra = " (RobustBench: unreliable)" if row.published.unreliable else ""
        cells.append(("", f'<span class="verdict verdict-published">published{e(extra)}</span>'))
        cells.append(("", DASH))
    audit = row.result.audit if row.measured else None
    rate = audit.get("pass_rate") if audit else None
    cells.append(_num(rate, DASH if rate is None else f"{rate:.1f}"))
    if row.reported is None:
        cells.append(_num(None, DASH))
    elif row.measured:
        cells.append(_num(row.reported, f"{row.reported:.2f} <span class=\"sub\">(Δ {e(delta(row.robust - row.reported))})</span>"))
    else:
        cells.append(_num(row.reported))
    cells.append(_num(row.n_examples, DASH if row.n_examples is None else f"{row.n_examples:,}"))
    cls = "measured" if row.measured else "published"
    tds = []
    for (value, inner), (_, _, numeric) in zip(cells, _BOARD_COLUMNS):
        attrs = (f' data-value="{e(value)}"' if value != "" or numeric else "") + (' class="num"' if numeric else "")
        tds.append(f"<td{attrs}>{inner}</td>")
    return f'<tr class="{cls}" data-model="{e(row.name)}">' + "".join(tds) + "</tr>"


def _board(group: Group, index: int, page_of: dict[int, str]) -> str:
    table_id = f"board-{index}"
    heads = []
    for name, kind, _ in _BOARD_COLUMNS:
        if kind is None:
            heads.append(f'<th scope="col">{e(name)}</th>')
        else:
            sort = ' aria-sort="ascending"' if name == "Rank" else ""
            heads.append(f'<th scope="col" data-type="{kind}"{sort}><button type="button">{e(name)}</button></th>')
    rows = "\n".join(_board_row(r, group, page_of) for r in group.rows)
    return (
        f'<section class="group">\n<h2 id="{table_id}-title">{e(group.title)}</h2>\n'
        f'<p class="meta">{e(group.examples_line())}</p>\n<p class="shown" id="{table_id}-shown" aria-live="polite"></p>\n'
        f'<div class="scroll"><table class="board" id="{table_id}" aria-labelledby="{table_id}-title">\n<thead><tr>{"".join(heads)}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table></div>\n</section>"
    )


def render_index(groups: list[Group], page_of: dict[int, str]) -> str:
    body = [
        "<h1>a3bench leaderboard</h1>",
        f"<p>{e(INTRO)}</p>",
    ]
    if any(g.published for g in groups):
        body.append(f"<p>{e(PUBLISHED_NOTE).replace('*published*', '<i>published</i>').replace('`external`', '<code>external</code>')}</p>")
    body.append(
        '<p><label for="search">Filter rows </label><input id="search" type="search" '
        'placeholder="model, venue, verdict, flag…" autocomplete="off"> '
        "<span class=\"sub\">Click a column's header to sort by it.</span></p>"
    )
    body += [_board(g, i, page_of) for i, g in enumerate(groups)]
    body.append('<p class="sub">Generated by <code>a3bench report --format html</code>.</p>')
    return page("a3bench leaderboard", "\n".join(body), script=_SCRIPT)


# --------------------------------------------------------------------------- model pages


def _summary(res: LoadedResult) -> str:
    r = res.record
    reported = f"{r.reported:.2f} % (Δ {delta(r.robust_acc - r.reported)})" if r.reported is not None else DASH
    suite = (r.suite or DASH) + (f" ({', '.join(map(str, r.attacks))})" if r.attacks else "")
    rows = [
        ("Clean accuracy", f"{pct(r.clean_acc)} %"),
        ("AutoAttack accuracy", f"{pct(r.autoattack_acc)} %" if r.autoattack_acc is not None else DASH),
        ("Worst-case robust accuracy [95 % CI]", f"{ci(r)} %"),
        ("Reported (paper)", reported),
        ("Examples / seed", f"{r.n_examples} / {r.seed}"),
        ("Suite", suite),
        ("Architecture", r.architecture or DASH),
        ("A3", a3_short(r)),
        ("Parameters", count(parameters(r))),
        ("Extra training data", "yes" if r.additional_data else "no"),
        ("Forward passes per prediction", r.number_forward_passes),
        ("Compute per example", compute_per_example(r)),
        ("Total time", duration(number((r.compute or {}).get("seconds")))),
    ]
    return _table(["", ""], [[e(k), e(v)] for k, v in rows])


def _cascade(res: LoadedResult) -> str:
    r = res.record
    if not r.per_attack:
        return "<p>No per-attack results in this record.</p>"
    rows = [
        [e(a.name), e(a.status), e(a.n_attacked), e(a.broken), e(pct(a.robust_acc)), e(duration(number(a.seconds))),
         e(count(number(a.forward_passes))), e(count(number(a.backward_passes))), e(a.note or "")]
        for a in r.per_attack
    ]
    intro = ("<p>Attacks ran in this order, each only on the examples every earlier attack failed on; "
             "<i>Robust after</i> is the cumulative robust accuracy over all examples.</p>")
    headers = ["Attack", "Status", "Attacked", "Broken", "Robust after (%)", "Time", "Forward", "Backward", "Note"]
    return intro + _table(headers, rows, numeric={2, 3, 4, 5, 6, 7})


def _breakers(res: LoadedResult) -> str:
    b = breakdown(res)
    if b is None:
        return ""
    rows = [[e(n), e(DASH if br is None else br), e(DASH if bo is None else bo), e(DASH if s is None else f"{s:.1f}")] for n, br, bo, s in b.rows]
    out = ["<h2 id=\"broken-by\">Which attack broke how many examples</h2>",
           _table(["Attack", "Broken (record)", "Broken (outcomes)", "% of clean-correct"], rows, numeric={1, 2, 3}),
           f"<p>{e(b.outcomes_line)}</p>"]
    if b.problem:
        out.append(f"<p><b>{e(b.problem)}</b></p>")
    return "\n".join(out)


def _curve(res: LoadedResult, image: str | None) -> str:
    if res.sweep is None:
        return ""
    s, path = res.sweep.record, res.sweep.path
    out = ['<h2 id="eps-curve">Robust accuracy against eps</h2>']
    if image:
        out.append(f'<p><img class="curve" src="{e(image)}" alt="robust accuracy against eps, one curve per attack"></p>')
    names = list(s.curves)
    rows = [[e(f"{x:.6g}")] + [e(pct(s.curves[n][i])) for n in names] for i, x in enumerate(s.eps)]
    out.append(_table(["eps"] + names, rows, numeric=set(range(len(names) + 1))))
    out.append(f"<p>From <code>{e(path.name)}</code>. A sound evaluation drives accuracy to about 0 at large eps.</p>")
    for f in s.flags:
        out.append(f"<p>Sweep flag <b>{e(f.name)}</b>: {e(f.message)}</p>")
    return "\n".join(out)


def _audit(res: LoadedResult) -> str:
    a = res.audit
    if not a:
        return ""
    rate = lambda v: DASH if v is None else f"{v:.1f} %"  # noqa: E731
    rows = [[e(name), e(rate(v))] for name, v in (a.get("per_attack") or {}).items()]
    rows += [["<b>suite</b> (any attack)", e(rate(a.get("pass_rate")))], ["random point (no attack)", e(rate(a.get("control_pass_rate")))]]
    ind = ", ".join(f"{k.replace('_', ' ')}: {DASH if v is None else v}" for k, v in (a.get("indicators") or {}).items())
    return "\n".join([
        '<h2 id="audit">Attack audit</h2>',
        "<p>Binarization test (Zimmermann et al. 2022): per example, a variant of the model with an adversarial example known "
        "to be inside the ball; an attack passes when it finds one. Low pass rates mean the attacks, not the model, stand "
        "between this number and a lower one.</p>",
        _table(["Attack", "Pass rate"], rows, numeric={1}),
        f"<p>{e(str(a.get('n_testable', 0)))} testable, {e(str(a.get('n_not_testable', 0)))} not testable. "
        f"Indicators of attack failure (Pintor et al. 2022), examples affected: {e(ind) or DASH}.</p>",
    ])


def _flags(res: LoadedResult) -> str:
    r = res.record
    out = ['<h2 id="diagnostics">Diagnostics</h2>']
    if not r.flags:
        return out[0] + "\n<p>No diagnostic flag fired.</p>"
    docs = flag_explanations()
    for f in r.flags:
        value = number(f.value)
        out.append(
            f'<section class="flag" id="flag-{e(safe_name(f.name))}">\n<h3><span class="sev-{e(f.severity)}">{e(f.name)}</span> '
            f'<span class="sub">({e(f.severity)}{f", value {value:.4g}" if value is not None else ""})</span></h3>\n'
            f"<p><b>This run:</b> {e(f.message)}</p>"
        )
        explained = docs.get(str(f.name))
        out.append(f"<div class=\"explained\"><b>What it means:</b>\n{markdown_to_html(explained)}</div>" if explained
                   else "<p><i>No explanation of this flag in this version's diagnostics guide.</i></p>")
        out.append("</section>")
    return "\n".join(out)


def _kv_table(title: str, anchor: str, items: dict) -> str:
    if not items:
        return ""
    return f'<h2 id="{anchor}">{e(title)}</h2>\n' + _table(["", ""], [[e(k), e(v)] for k, v in items.items()])


def render_model_page(res: LoadedResult, image: str | None, index_name: str = INDEX) -> str:
    """One result's page; ``image`` is the eps-curve's path relative to the page (or None)."""
    r = res.record
    back = f'<a href="../{e(index_name)}">← leaderboard</a>'
    head = [f"<nav>{back}</nav>", f"<h1>{e(res.model_id)}</h1>",
            f"<p class=\"meta\">{e(r.dataset)} · {e(r.norm)} eps = {e(eps_text(r))} · {e(r.n_examples)} test examples · seed {e(r.seed)}</p>"]
    if r.name and r.name != res.model_id:
        who = f", {e(r.authors)}" if r.authors else ""
        venue = f" ({e(r.venue)})" if r.venue else ""
        head.append(f"<p>{ext_link(r.name, r.link)}{who}{venue}</p>")
    elif external_href(r.link):
        head.append(f"<p>{ext_link(r.link, r.link)}</p>")
    banner = f"Verdict: {verdict_badge(r.verdict)}" + (f" — {e(r.verdict_reason)}" if r.verdict_reason else "")
    if r.verdict != "reliable":
        banner += "<br>The worst-case number is an upper bound on true robustness; see the diagnostics below."
    cls = r.verdict if r.verdict in ("reliable", "suspicious", "unreliable") else "unknown"
    head.append(f'<div class="banner verdict-{cls}">{banner}</div>')
    a3 = dict(r.a3 or {})
    cfg = a3.pop("config", None)
    if isinstance(cfg, dict):
        a3.update({f"config.{k}": v for k, v in cfg.items()})
    provenance = {**{f"model.{k}": v for k, v in (r.model or {}).items()}, **(r.provenance or {}), "record": res.path.name}
    body = head + [
        "<h2 id=\"summary\">Summary</h2>", _summary(res),
        "<h2 id=\"cascade\">The attack cascade</h2>", _cascade(res),
        _breakers(res),
        _curve(res, image),
        _audit(res),
        _flags(res),
        _kv_table("A3 configuration", "a3", a3),
        _kv_table("Provenance", "provenance", provenance),
    ]
    if r.footnote:
        body.append(f"<h2 id=\"note\">Note</h2>\n<p>{e(r.footnote)}</p>")
    body.append(f'<p class="sub">{back} · generated by <code>a3bench report --format html</code></p>')
    return page(f"{res.model_id} — a3bench", "\n".join(b for b in body if b))


# --------------------------------------------------------------------------- the site


def _page_names(results: list[LoadedResult]) -> dict[int, str]:
    """A distinct, safe file stem per result: <dataset>_<norm>_<model>[_eps<eps>][_<k>]."""
    names: dict[int, str] = {}
    used: set[str] = set()
    for res in results:
        r = res.record
        stem = f"{safe_name(r.dataset)}_{safe_name(r.norm)}_{safe_name(res.model_id)}"[:180]
        if stem in used:
            stem = f"{stem}_eps{safe_name(f'{r.eps:.6g}')}"
        k, base = 2, stem
        while stem in used:
            stem, k = f"{base}_{k}", k + 1
        used.add(stem)
        names[id(res)] = stem
    return names


def write_site(results: list[LoadedResult], out_dir: str | os.PathLike, published: list[PublishedEntry] | None = None,
               index_name: str = INDEX) -> SiteOutput:
    """Write the site into ``out_dir``; returns what was written."""
    out = Path(out_dir)
    stems = _page_names(results)
    page_of = {k: f"{MODELS_DIR}/{v}.html" for k, v in stems.items()}
    output = SiteOutput(index=out / index_name)
    for res in results:
        stem = stems[id(res)]
        image = None
        plot = plot_inside(res.sweep) if res.sweep is not None else None
        if plot is not None:
            target = out / IMG_DIR / f"{stem}.sweep.png"
            data = plot.read_bytes()
            atomic_write_bytes(target, lambda f: f.write(data))
            output.images.append(target)
            image = f"../{IMG_DIR}/{target.name}"
        path = out / MODELS_DIR / f"{stem}.html"
        write_text_atomic(path, render_model_page(res, image, index_name))
        output.pages.append(path)
    write_text_atomic(output.index, render_index(group_results(results, published or []), page_of))
    return output
