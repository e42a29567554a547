"""An eps sweep (:class:`~a3bench.schema.SweepRecord`) as a page and as a plot: what
``a3bench sweep-eps`` writes beside its JSON (``<model>.sweep.md``, ``<model>.sweep.png``).

The page is a :class:`~a3bench.report.doc.Page`, rendered like every other report, so its
text is escaped the same way; the plot is matplotlib's Agg backend (imported only here).
"""

from __future__ import annotations

from typing import Sequence

from a3bench.report import doc, render_md
from a3bench.report.doc import Cell, Column, Table, TableRow, text
from a3bench.report.fmt import DASH
from a3bench.schema import SweepRecord

WORST_CASE = "worst-case"  # the curve of the worst case over the sweep's attacks
MIN_NORM = "fab-min-norm"  # the curve of the optional minimum-norm pass (one FAB run prices the whole grid)


def eps_labels(eps: Sequence[float]) -> list[str]:
    """k/255 for every value when the whole grid is on it (8/255, 16/255 ...), else decimals:
    a 0:0.35:8 grid should not read 0.15, 51/255, 0.25."""
    on_255 = all(abs(e * 255 - round(e * 255)) < 1e-6 for e in eps)
    if on_255 and any(e > 0 for e in eps) and max(eps) < 1:
        from a3bench.threat import format_eps

        return [format_eps(e) if e > 0 else "0" for e in eps]
    return [f"{e:.6g}" for e in eps]


def sweep_page(result: SweepRecord) -> doc.Page:
    names = list(result.curves)
    labels = eps_labels(result.eps)
    per_eps = result.compute.get("per_eps", []) if isinstance(result.compute, dict) else []
    rows = []
    for k in range(len(result.eps)):
        c = per_eps[k] if k < len(per_eps) and isinstance(per_eps[k], dict) else {}
        attacked = c.get("attacked", {})
        passes = (c.get("forward_passes") or 0) + (c.get("backward_passes") or 0)
        rows.append(TableRow([Cell.of(labels[k])] + [Cell.of(DASH if result.curves[n][k] is None else f"{result.curves[n][k]:.2f}") for n in names]
                             + [Cell.of(str(sum(attacked.values()) if isinstance(attacked, dict) else DASH)), Cell.of(str(passes))]))
    cols = [Column("eps")] + [Column(n, "right") for n in names] + [Column("attacked", "right"), Column("passes (fwd+bwd)", "right")]
    mode = "cascade" if result.cascade else "naive (every eps on every example)"
    clean = DASH if result.clean_acc is None else f"{result.clean_acc:.2f}"
    blocks: list = [doc.Heading(1, text(f"{result.model} · {result.dataset} · {result.norm} · robust accuracy (%) against eps")),
                    doc.Para(text(f"n = {result.n_examples}, seed {result.seed}, clean accuracy {clean} %, mode: {mode}.")),
                    Table(cols, rows)]
    if result.plot is not None:
        blocks.append(doc.Figure(result.plot, "robust accuracy against eps"))
    c = result.compute
    lines = [text(f"Compute: {c.get('forward_passes', 0)} forward and {c.get('backward_passes', 0)} backward passes, "
                  f"{float(c.get('seconds', 0.0)):.1f} s.")]
    m = c.get("min_norm")
    if isinstance(m, dict):
        found = [d for d in (result.per_example.min_norm or []) if d is not None]
        median = f"; median smallest perturbation {sorted(found)[len(found) // 2]:.4g}" if found else ""
        lines.append(text(doc.Code(MIN_NORM), f": one FAB run on {m.get('attacked')} examples prices every eps "
                          f"({m.get('forward_passes')} forward and {m.get('backward_passes')} backward passes, "
                          f"{float(m.get('seconds', 0.0)):.1f} s{median})."))
    blocks += [doc.Para(t) for t in lines]
    notes = [text(f"{name} skipped: {why}") for name, why in result.skipped.items()]
    notes += [text(f"{name} failed: {why}") for name, why in result.failed.items()]
    notes += [text("flag ", doc.Strong(f.name), f" ({f.severity}): {f.message}") for f in result.flags]
    if notes:
        blocks.append(doc.Bullets(notes))
    return doc.Page(f"{result.model} — eps sweep", blocks)


def sweep_markdown(result: SweepRecord) -> str:
    return render_md.render(sweep_page(result))


def plot_png(result: SweepRecord) -> bytes:
    """The curves as a PNG (matplotlib, Agg backend): x = eps (k/255 where it is one), y = robust accuracy %."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in result.curves.items():
        pts = [(e, v) for e, v in zip(result.eps, values) if v is not None]
        if not pts:
            continue
        style = {"color": "black", "linestyle": "--", "linewidth": 2.2} if name == WORST_CASE else {"linewidth": 1.6}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3.5, label=name, **style)
    ax.set_xticks(result.eps)
    ax.set_xticklabels(eps_labels(result.eps), rotation=45 if len(result.eps) > 6 else 0, fontsize=8)
    ax.set_ylim(-2, 102)
    ax.set_xlabel(f"eps ({result.norm})")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(f"{result.model} · {result.dataset} · n={result.n_examples}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
