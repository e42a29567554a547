"""Progress of the commands that evaluate: bars in a terminal, plain lines in a log.

In a terminal each stage (an attack, an eps, an audit step) gets a rich bar that moves
inside the stage too (the engine counts the model's passes: Square's 5,000 queries on
one batch move it), with the time left in the stage and, at most, in the whole run. Outside
a terminal (a cluster job's log, CI) a plain line is printed when a stage starts or ends and
at least every ``EVERY_S`` seconds while it runs, with the same two estimates — never a
silent log for minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

EVERY_S = 60.0


def duration(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.4 h``; ``?`` when not known yet."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def short_count(k: int) -> str:
    return f"{k / 1e6:.1f}M" if k >= 1e6 else f"{k / 1e3:.1f}k" if k >= 1e4 else str(k)


@dataclass
class Step:
    """One progress report, whatever command made it."""

    key: Any  # the stage it belongs to (a new key starts a new bar / a new line)
    label: str  # "apgd-t", "eps 0.1 pgd-20", "binarization pgd-20"
    done: int
    total: int
    status: str  # "" or e.g. "robust 700/1000 · 1.2M passes"
    eta_stage: float | None = None
    eta_total: float | None = None
    event: str = "progress"  # "start" | "progress" | "end" | "note"
    note: str | None = None


class Drawer:
    """Draws :class:`Step` s on ``con`` (stderr): rich bars in a terminal, plain lines elsewhere."""

    def __init__(self, con, *, plain: bool | None = None) -> None:
        self.con = con
        self.plain = (not con.is_terminal) if plain is None else plain
        self.t0 = time.perf_counter()
        self.last_line: dict[Any, float] = {}
        self.tasks: dict[Any, int] = {}
        self.bars = None
        if not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(
                TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(), TextColumn("left {task.fields[eta]}"), TextColumn("[dim]run ≤ {task.fields[eta_total]}[/]"),
                console=con, transient=False,
            )
            self.bars.start()

    def __call__(self, step: Step) -> None:
        if step.event == "note":
            self._line(f"{escape(step.label)}: {escape(step.note or '')}")
            return
        if self.plain:
            self._plain(step)
            return
        if step.key not in self.tasks:
            self.tasks[step.key] = self.bars.add_task(escape(step.label), total=max(step.total, 1), status="", eta="?", eta_total="?")
        self.bars.update(self.tasks[step.key], completed=step.done if step.total else 1, total=max(step.total, 1),
                         status=escape(step.status), eta=duration(step.eta_stage), eta_total=duration(step.eta_total))

    def _plain(self, step: Step) -> None:
        now = time.perf_counter()
        first = step.key not in self.last_line
        if not (first or step.event == "end" or now - self.last_line[step.key] >= EVERY_S):
            return
        self.last_line[step.key] = now
        what = {"start": "started", "end": "done"}.get(step.event, "")
        parts = [f"{escape(step.label)} {what}".rstrip(), f"{step.done}/{step.total}"]
        if step.status:
            parts.append(escape(step.status))
        if step.event != "end":
            parts.append(f"left {duration(step.eta_stage)}")
        if step.eta_total is not None:
            parts.append(f"run ≤ {duration(step.eta_total)}")
        self._line(" · ".join(parts))

    def _line(self, text: str) -> None:
        stamp = duration(time.perf_counter() - self.t0)
        if self.bars is not None:
            self.bars.console.print(f"[dim]{stamp}[/] {text}", highlight=False, soft_wrap=True)
        else:
            self.con.print(f"[{stamp}] {text}", highlight=False, soft_wrap=True, markup=False)

    def close(self) -> None:
        if self.bars is not None:
            self.bars.stop()


class AttackDrawer(Drawer):
    """:class:`~a3bench.eval.runner.ProgressEvent` s of ``a3bench attack``."""

    def __call__(self, ev) -> None:  # type: ignore[override]
        if ev.stage == "done":
            return
        if ev.stage in ("skipped", "failed", "escalation"):
            super().__call__(Step(ev.attack_index, ev.attack or ev.stage, 0, 0, "", event="note",
                                  note=f"{ev.stage}: {ev.note}" if ev.stage != "escalation" else ev.note))
            return
        name = "clean" if ev.attack_index < 0 else f"probe {ev.attack}" if ev.stage == "probe" else ev.attack
        event = {"attack-start": "start", "attack-end": "end"}.get(ev.stage, "progress")
        if ev.stage == "clean" and ev.done and ev.done == ev.total:
            event = "end"
        status = f"robust {ev.robust}/{ev.n}" + (f" · {short_count(ev.forward_passes)} passes" if ev.forward_passes else "")
        super().__call__(Step(ev.attack_index, name, ev.done, ev.total, status, ev.eta_attack_s, ev.eta_total_s, event))


class SweepDrawer(Drawer):
    """:class:`~a3bench.eval.sweep.SweepProgress` of ``a3bench sweep-eps``: one bar per (eps, curve)."""

    def __call__(self, ev) -> None:  # type: ignore[override]
        from a3bench.threat import format_eps

        if ev.stage not in ("eps-start", "batch", "min-norm", "eps-end"):
            return
        if ev.stage == "eps-end":
            super().__call__(Step(("eps", ev.eps_index), f"eps {format_eps(ev.eps)}", ev.eps_index + 1, ev.n_eps,
                                  f"worst case {ev.robust}/{ev.n}", None, ev.eta_total_s, "end"))
            return
        label = "min-norm FAB · every eps" if ev.stage == "min-norm" else f"eps {format_eps(ev.eps)} · {ev.attack}"
        key = ("min-norm",) if ev.stage == "min-norm" else (ev.eps_index, ev.attack)
        event = "start" if ev.stage == "eps-start" else "end" if ev.total and ev.done >= ev.total else "progress"
        super().__call__(Step(key, label, ev.done, ev.total, f"robust {ev.robust}/{ev.n}", ev.eta_stage_s, ev.eta_total_s, event))


class AuditDrawer(Drawer):
    """:class:`~a3bench.eval.audit.AuditProgress` of ``a3bench audit``."""

    def __call__(self, ev) -> None:  # type: ignore[override]
        if ev.stage == "done":
            return
        label = ev.stage if ev.attack is None else f"{ev.stage} · {ev.attack}"
        event = "end" if ev.total and ev.done >= ev.total else "progress"
        super().__call__(Step((ev.stage, ev.attack), label, ev.done, ev.total, "", None, ev.eta_total_s, event))
