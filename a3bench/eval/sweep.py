"""Robust accuracy against eps: one curve per attack, plus the worst case over them.

The cost trick (issue 5): eps values are processed in increasing order and at each eps
an attack runs only on the examples it could not break at the previous one. An
adversarial example found at eps stays inside every larger ball, so an example broken
at eps stays broken; eps = 0 needs no attack (robust = clean). With the cascade a
curve is monotone by construction; ``cascade=False`` runs every eps on every
clean-correct example (the naive way, kept for tests and to expose attacks whose
strength is not monotone in eps).

Every attack runs through the one :class:`~a3bench.eval.cascade.Cascade` and every
adversarial example is re-checked by the judge, as in ``a3bench attack``; an attack that
raises is recorded as failed (what it broke stands) and flagged, as in ``attack``. The
result is a :class:`~a3bench.schema.SweepRecord`.

>>> from a3bench.eval.sweep import sweep_eps, save_sweep
>>> res = sweep_eps(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist"), "Linf",
...                 parse_eps_list("0:0.35:8"), "pgd-20,pgd-100", n_examples=500)
>>> res.curves["pgd-100"], res.curves["worst-case"]
>>> save_sweep(res, "results/fmnist/Linf")   # .sweep.json, .sweep.md, .sweep.png
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from a3bench.attacks.base import Attack
from a3bench.errors import AttackError, BudgetViolation
from a3bench.eval import diagnostics
from a3bench.eval.cascade import BatchResult
from a3bench.eval.judge import users_model
from a3bench.eval.setup import EvalOptions, Evaluation
from a3bench.eval.provenance import provenance
from a3bench.io import atomic_write_bytes, safe_name, staged_writes
from a3bench.report.sweep import MIN_NORM, WORST_CASE, eps_labels, plot_png, sweep_markdown  # noqa: F401 (eps_labels: sweep_cli)
from a3bench.results import default_sweep_dir  # noqa: F401 - where sweeps go by default
from a3bench.schema import AttackStatus, SweepPerExample, SweepRecord, write_sweep
from a3bench.threat import Norm, ThreatModel, format_eps, parse_norm

DEFAULT_ATTACKS = ("pgd-20",)
sweep_flags = diagnostics.sweep_flags


# --------------------------------------------------------------------------- public types


@dataclass
class SweepProgress:
    """What :func:`sweep_eps` reports to its ``progress`` callback (the CLI draws it)."""

    stage: str  # "clean" | "eps-start" | "batch" | "eps-end" | "min-norm" (eps None: the whole grid at once)
    eps: float | None
    eps_index: int  # 0-based position in the eps list (-1 for the clean pass)
    n_eps: int
    attack: str | None  # the curve being computed
    done: int  # examples of this (eps, attack) processed so far
    total: int  # examples this (eps, attack) attacks
    robust: int  # examples robust for the worst case at this eps (so far)
    n: int
    eta_stage_s: float | None = None  # seconds left for this (eps, attack), from its own pace
    eta_total_s: float | None = None  # seconds left in the sweep, at most: every (eps, curve) left on what is robust now


SweepProgressFn = Callable[[SweepProgress], None]


# --------------------------------------------------------------------------- attacks


def sweep_attack_names(attacks: str | Sequence[str] | None = None, steps: str | Sequence[int] | None = None) -> list[str]:
    """``--attacks`` plus ``--steps`` → curve names. ``--steps 10,20,100`` adds pgd-10, pgd-20
    and pgd-100; with neither option the sweep draws pgd-20."""
    from a3bench.attacks.registry import split_names

    names = split_names(attacks) if attacks else []
    if steps is not None and not isinstance(steps, (list, tuple)):
        try:
            steps = [int(s) for s in str(steps).split(",") if s.strip()]
        except ValueError:
            raise AttackError(f"--steps {steps!r}: give PGD iteration counts like 10,20,100") from None
    for k in steps or []:
        if int(k) < 1:
            raise AttackError(f"--steps: iteration counts must be ≥ 1, got {k}")
        names.append(f"pgd-{int(k)}")
    if not names:
        names = list(DEFAULT_ATTACKS)
    out: list[str] = []
    for n in (n.strip().lower() for n in names):
        if n not in out:
            out.append(n)
    return out


def build_curves(attacks) -> dict[str, list[Attack]]:
    """Curve name → its attack steps: names (a composite like ``autoattack`` is one curve
    whose steps run as a worst-case cascade), or Attack objects (one curve each)."""
    from a3bench.attacks.registry import build_attack, split_names

    if attacks is None or isinstance(attacks, str):
        names = sweep_attack_names(attacks)
        return {n: build_attack(n) for n in names}
    items = list(attacks)
    if all(isinstance(a, Attack) for a in items):
        curves = {a.name: [a] for a in items}
    elif all(isinstance(a, str) for a in items):
        curves = {n.lower(): build_attack(n) for n in split_names(items)}
    else:
        raise TypeError("attacks must be names or Attack objects")
    if len(curves) != len(items):
        raise AttackError("an attack appears twice in the sweep")
    for reserved in (WORST_CASE, MIN_NORM):
        if reserved in curves:
            raise AttackError(f"{reserved!r} is the name of a curve a3bench computes, not an attack")
    return curves


# --------------------------------------------------------------------------- the sweep


def sweep_eps(
    loaded_model,
    dataset,
    norm: str | Norm,
    eps_list: Sequence[float],
    attacks=None,
    *,
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device | None = "auto",
    progress: SweepProgressFn | None = None,
    cascade: bool = True,
    saturation_eps: float | None = None,
    spec: str | None = None,
    min_norm: bool = False,
    min_norm_restarts: int = 1,
    draws: int = 10,
    data_dir: str | Path | None = None,
    engine: str = "auto",
) -> SweepRecord:
    """Robust accuracy at each eps for each attack.

    Args:
        loaded_model: a :class:`~a3bench.models.LoadedModel` or an ``nn.Module`` on [0,1] inputs.
        dataset: an :class:`~a3bench.data.ImageDataset`; its first ``n_examples`` are used.
        norm: "Linf" or "L2". eps_list: floats ≥ 0 (sorted and deduplicated here).
        attacks: names (``"pgd-20,apgd-ce"``, a list), or Attack objects; one curve each.
            None means pgd-20. Use :func:`sweep_attack_names` for ``--steps``.
        seed: randomness is drawn per example from (seed, dataset position), so the cascade
            and naive runs give each example the same random start at a given eps.
        cascade: attack at each eps only what survived the previous one (default); False
            attacks every clean-correct example at every eps.
        saturation_eps: override the "large eps" of the no-saturation flag.
        min_norm: add the curve ``fab-min-norm``: one untargeted FAB run (pyautoattack, 100
            iterations, ``min_norm_restarts`` restarts) on every clean-correct example finds
            each example's smallest breaking perturbation, which prices every eps of the grid
            at once (``per_example.min_norm`` keeps the distances). ``attacks=[]`` with
            ``min_norm=True`` draws that curve alone.
        draws: fresh forward passes per verdict when the model is randomised (majority rule).
        data_dir, engine: as for ``a3bench attack`` (:class:`~a3bench.eval.setup.EvalOptions`).
    """
    options = EvalOptions(n_examples=n_examples, seed=seed, batch_size=batch_size, device=device, draws=draws, spec=spec,
                          data_dir=data_dir, engine=engine)
    sweep = _Sweep(Evaluation(loaded_model, dataset, options), norm, eps_list, attacks, progress=progress, cascade=cascade,
                   min_norm=min_norm, min_norm_restarts=min_norm_restarts)
    with sweep.ev.frozen():
        with users_model("the clean pass"):
            sweep.clean()
        for k, eps in enumerate(sweep.eps):
            sweep.at_eps(k, eps)
        if min_norm:
            sweep.min_norm_pass()
    return sweep.result(spec, saturation_eps)


class _Sweep:
    def __init__(self, ev: Evaluation, norm, eps_list, attacks, *, progress, cascade, min_norm, min_norm_restarts) -> None:
        self.ev = ev
        self.loaded = ev.loaded
        self.norm = parse_norm(norm)
        # 12 significant digits: 0:0.35:8 gives 0.2, not 0.19999999999999998 (k/255 values survive).
        self.eps = sorted({float(f"{float(e):.12g}") for e in eps_list})
        if not self.eps:
            raise AttackError("no eps values to sweep")
        if any(not math.isfinite(e) or e < 0 for e in self.eps):
            raise AttackError(f"eps values must be finite and ≥ 0, got {list(eps_list)}")
        self.curve_attacks = build_curves(attacks)
        if not self.curve_attacks and not min_norm:
            raise AttackError("nothing to sweep: give at least one attack (or the minimum-norm pass)")
        if min_norm and min_norm_restarts < 1:
            raise AttackError(f"min-norm restarts must be ≥ 1, got {min_norm_restarts}")
        self.seed, self.batch_size, self.cascade_mode = ev.seed, ev.batch_size, cascade
        self.draws, self.randomised = ev.options.draws, False
        self.min_norm_restarts, self.progress = min_norm_restarts, progress
        self.dev, self.shard, self.model = ev.dev, ev.shard, ev.model
        self.n, self.x, self.y, self.positions, self.info = ev.n, ev.x, ev.y, ev.positions, ev.info
        self.names = list(self.curve_attacks)
        self.deployed, self.cascade = ev.deployed, ev.cascade
        # robust[name][k, i]: example i survives curve `name` at eps k
        self.robust = {name: torch.zeros(len(self.eps), self.n, dtype=torch.bool) for name in self.names}
        self.skipped: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self._stage_t0 = self._eps_t0 = time.perf_counter()
        self._attacked_now = 0
        self.per_eps: list[dict[str, Any]] = []
        self.min_norm_dist: torch.Tensor | None = None
        self.min_norm_cost: dict[str, Any] | None = None
        self.t_start = time.perf_counter()

    def report(self, stage, eps=None, k=-1, attack=None, done=0, total=0, robust=0) -> None:
        if self.progress is not None and self.shard.is_main:
            self.progress(SweepProgress(stage, eps, k, len(self.eps), attack, done, total, robust, self.n, *self._etas(k, done, total)))

    def _etas(self, k: int, done: int, total: int) -> tuple[float | None, float | None]:
        """(this stage, the whole sweep): the stage from its own pace; the sweep from the
        seconds per attacked example so far, times every (eps, curve) left on the examples
        still robust (each curve runs at most on those)."""
        now = time.perf_counter()
        stage = (now - self._stage_t0) / done * (total - done) if done and total > done else None
        spent = sum(c["seconds"] for c in self.per_eps) + (now - self._eps_t0 if k >= 0 else 0.0)
        attacked = sum(sum(c["attacked"].values()) for c in self.per_eps) + self._attacked_now
        if k < 0 or not attacked or spent <= 0:
            return stage, None
        left_pairs = max(0, (len(self.eps) - k - 1)) * len(self.curve_attacks)
        robust_now = int(self.clean_correct.sum()) if hasattr(self, "clean_correct") else self.n
        return stage, (stage or 0.0) + spent / attacked * robust_now * left_pairs

    def clean(self) -> None:
        # Randomness and the clean verdicts exactly as in `attack` (eval/setup.py): one rule, one seeding.
        self.randomised = self.ev.detect_randomness()
        self.report("clean", total=self.n)
        clean = self.ev.clean_pass()
        self.clean_correct = torch.tensor(clean.correct(self.ev.labels), dtype=torch.bool)
        self.report("clean", done=self.n, total=self.n, robust=int(self.clean_correct.sum()))

    def at_eps(self, k: int, eps: float) -> None:
        threat = ThreatModel(self.norm, eps)
        ctx = self.ev.context(threat)
        cost = {"eps": eps, "forward_passes": 0, "backward_passes": 0, "seconds": 0.0, "attacked": {}}
        t_eps = self._eps_t0 = time.perf_counter()
        self._attacked_now = 0
        worst_now = self.clean_correct.clone()
        for c, name in enumerate(self.names):
            cost["attacked"][name] = 0
            if name in self.skipped:
                continue
            prev = self.robust[name][k - 1] if (self.cascade_mode and k > 0) else self.clean_correct
            alive = prev.clone()
            if eps > 0 and name not in self.failed:
                reason = next((r for r in (a.applies_to(ctx) for a in self.curve_attacks[name]) if r), None)
                if reason:
                    self.skipped[name] = reason
                    continue
                cost["attacked"][name] = int(alive.sum())
                self._stage_t0 = time.perf_counter()
                self.report("eps-start", eps, k, name, 0, int(alive.sum()), int((worst_now & alive).sum()))
                self._attacked_now += int(alive.sum())
                self._curve(k, c, name, ctx, alive, worst_now, cost)
            self.robust[name][k] = alive
            worst_now &= alive
        cost["seconds"] = round(time.perf_counter() - t_eps, 3)
        self.per_eps.append(cost)
        self.report("eps-end", eps, k, None, self.n, self.n, int(worst_now.sum()))

    def _curve(self, k, c, name, ctx, alive, worst_now, cost) -> None:
        """Every step of the curve (a composite has several) on what is still robust; updates ``alive``."""
        for j, attack in enumerate(self.curve_attacks[name]):
            todo = alive.nonzero().flatten().tolist()
            if not todo:
                return

            def on_batch(r: BatchResult) -> None:
                alive[torch.tensor(r.examples)[torch.tensor(r.broken, dtype=torch.bool)]] = False
                cost["forward_passes"] += r.forward_passes
                cost["backward_passes"] += r.backward_passes
                self.report("batch", ctx.threat.eps, k, name, min((r.batch + 1) * self.batch_size, len(todo)), len(todo),
                            int((worst_now & alive).sum()))

            stage = (k * 1000 + c) * 100 + j
            end = self.cascade.run(attack, ctx, todo, stage=stage, on_batch=on_batch)
            if end.status is AttackStatus.FAILED:
                self.failed[name] = f"{attack.name} at eps {format_eps(ctx.threat.eps)} {end.note}"
                return

    def min_norm_pass(self) -> None:
        self.min_norm_dist, self.min_norm_cost = _min_norm_pass(
            self.model, self.deployed, self.x, self.y, self.clean_correct, self.norm, self.eps[-1], seed=self.seed,
            restarts=self.min_norm_restarts, batch_size=self.batch_size, device=self.dev,
            report=lambda done, total: self.report("min-norm", None, -1, MIN_NORM, done, total))
        # broken at eps ⇔ FAB's confirmed adversarial example lies within eps (no tolerance)
        self.robust[MIN_NORM] = torch.stack([self.clean_correct & ~(self.min_norm_dist <= e) for e in self.eps])
        self.names.append(MIN_NORM)

    def result(self, spec: str | None, saturation_eps: float | None) -> SweepRecord:
        n, n_eps, eps = self.n, len(self.eps), self.eps
        pct = lambda t: round(100.0 * int(t.sum()) / n, 4) if n else 0.0  # noqa: E731
        ran = [name for name in self.names if name not in self.skipped]
        curves: dict[str, list[float | None]] = {
            name: [None] * n_eps if name in self.skipped else [pct(self.robust[name][k]) for k in range(n_eps)] for name in self.names}
        worst = torch.stack([self.clean_correct] * n_eps) if n_eps else torch.zeros(0, n, dtype=torch.bool)
        for name in ran:
            worst = worst & self.robust[name]
        worst_case = [pct(worst[k]) for k in range(n_eps)]
        if len(self.names) > 1:
            curves[WORST_CASE] = list(worst_case)
        broken_at = {name: self._first_break(self.robust[name]) for name in ran}
        if len(self.names) > 1:
            broken_at[WORST_CASE] = self._first_break(worst)
        mn = self.min_norm_cost or {}
        fwd = n + sum(c["forward_passes"] for c in self.per_eps) + mn.get("forward_passes", 0)
        bwd = sum(c["backward_passes"] for c in self.per_eps) + mn.get("backward_passes", 0)
        compute = {
            "seconds": round(time.perf_counter() - self.t_start, 3),
            "forward_passes": fwd,
            "backward_passes": bwd,
            "clean_forward_passes": n,
            "forward_passes_per_example": round(fwd / n, 3) if n else 0.0,
            "backward_passes_per_example": round(bwd / n, 3) if n else 0.0,
            "per_eps": self.per_eps,
            **({"min_norm": mn} if self.min_norm_cost is not None else {}),
        }
        flags = diagnostics.sweep_flags(self.norm, eps, curves, worst_case, saturation_eps=saturation_eps)
        if self.randomised:
            from a3bench.flags import RANDOMIZED_OUTPUTS

            flags.insert(0, RANDOMIZED_OUTPUTS(severity=diagnostics.WARNING, message=
                                 f"the model's outputs change between identical forward passes: every verdict is the majority of "
                                 f"{self.draws} fresh draws; use EOT attacks (eot-pgd-K, crossmax-mean) for its curves"))
        flags += diagnostics.failed_flags([_failed_record(name, note) for name, note in self.failed.items()])
        attacks = {name: ([f"fab (untargeted, min-norm, {self.min_norm_restarts} restart(s))"] if name == MIN_NORM
                          else [a.name for a in self.curve_attacks[name]]) for name in self.names}
        dist = self.min_norm_dist
        return SweepRecord(
            model=self.loaded.name, dataset=self.info.name, norm=self.norm.value, eps=eps, curves=curves,
            eps_text=eps_labels(eps), worst_case=worst_case, flags=flags, clean_acc=pct(self.clean_correct),
            n_examples=n, seed=self.seed, cascade=self.cascade_mode, batch_size=self.batch_size, attacks=attacks,
            skipped=self.skipped, failed=self.failed, compute=compute,
            model_info={"spec": spec if spec is not None else self.loaded.name, "name": self.loaded.name,
                        "source": self.loaded.source, "path": self.loaded.path, "sha256": self.ev.fingerprint},
            provenance=provenance(self.dev, self.shard.world),
            per_example=SweepPerExample(
                indices=self.positions.tolist(), labels=self.y.tolist(), clean_correct=self.clean_correct.tolist(),
                broken_at=broken_at,
                min_norm=[None if not math.isfinite(d) else d for d in dist.tolist()] if dist is not None else None),
        )

    def _first_break(self, mask: torch.Tensor) -> list[float | None]:
        out: list[float | None] = []
        for i in range(self.n):
            if not bool(self.clean_correct[i]):
                out.append(0.0)
                continue
            ks = (~mask[:, i]).nonzero().flatten()
            out.append(self.eps[int(ks[0])] if ks.numel() else None)
        return out


def _failed_record(name: str, note: str):
    from a3bench.schema import AttackRecord

    return AttackRecord(name, None, status=AttackStatus.FAILED, note=note)


def _min_norm_pass(model, deployed, x, y, clean_correct, norm: Norm, max_eps: float, *, seed: int, restarts: int,
                   batch_size: int, device, report) -> tuple[torch.Tensor, dict[str, Any]]:
    """Per example the smallest confirmed adversarial distance FAB finds (inf: none, or not correct to begin with)."""
    from a3bench.attacks.autoattack import fab_min_norm
    from a3bench.threat import BUDGET_TOL

    t0 = time.perf_counter()
    dist = torch.full((len(y),), float("inf"))
    todo = clean_correct.nonzero().flatten()
    cost = {"attacked": int(todo.numel()), "forward_passes": 0, "backward_passes": 0, "seconds": 0.0}
    threat = ThreatModel(norm, max_eps)
    for s in range(0, int(todo.numel()), batch_size):
        idx = todo[s : s + batch_size]
        xb, yb = x[idx.to(device)], y[idx.to(device)]
        out = fab_min_norm(model, xb, yb, norm.value, eps=max_eps if max_eps > 0 else 1.0, seed=seed, restarts=restarts, device=device)
        x_adv = out.x_adv.detach()
        flat = x_adv.flatten(1)
        outside = (flat < threat.lower - BUDGET_TOL).any(1) | (flat > threat.upper + BUDGET_TOL).any(1) | ~torch.isfinite(flat).all(1)
        if outside.any():
            raise BudgetViolation(f"FAB returned {int(outside.sum())} image(s) outside [0,1]: a bug in the attack, the result is void")
        claimed = out.success.to(xb.device).bool()
        confirmed = torch.zeros_like(claimed)
        if claimed.any():
            confirmed[claimed] = deployed.judge(x_adv[claimed], yb[claimed]).wrong
        d = threat.distance(x_adv, xb).float()
        dist[idx[confirmed.cpu()]] = d[confirmed].cpu()
        cost["forward_passes"] += int(out.forward_passes) + int(claimed.sum())
        cost["backward_passes"] += int(out.backward_passes)
        report(min(s + batch_size, int(todo.numel())), int(todo.numel()))
    cost["seconds"] = round(time.perf_counter() - t0, 3)
    return dist, cost


# --------------------------------------------------------------------------- output


def sweep_stem(model_name: str) -> str:
    return safe_name(model_name)


def save_sweep(result: SweepRecord, out: str | Path) -> Path:
    """Write the sweep JSON with its table (``.sweep.md``) and plot (``.sweep.png``) beside it,
    atomically; returns the JSON path and sets ``result.plot`` (the PNG's file name).

    ``out`` is a folder (then ``<folder>/<model>.sweep.json``) or a path ending in ``.json``
    (the sweep file itself, as ``attack --out r.json`` names the record)."""
    out = Path(out)
    if out.suffix.lower() == ".json" and not out.is_dir():
        path = out
        stem = out.name[: -len(".json")].removesuffix(".sweep") or "sweep"
    else:
        stem = sweep_stem(result.model)
        path = out / f"{stem}.sweep.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_name(f"{stem}.sweep.png")
    result.plot = png.name
    with staged_writes():  # the JSON names the plot: all three change together, the JSON last
        atomic_write_bytes(png, lambda f: f.write(plot_png(result)))
        atomic_write_bytes(path.with_name(f"{stem}.sweep.md"), lambda f: f.write(sweep_markdown(result).encode()))
        write_sweep(path, result)
    return path
