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

from a3bench.attacks.base import Attack, AttackContext
from a3bench.device import resolve_device
from a3bench.errors import AttackError, BudgetViolation
from a3bench.eval import diagnostics
from a3bench.eval.cascade import BatchResult, Cascade
from a3bench.eval.distributed import current_shard
from a3bench.eval.judge import DeployedModel, as_loaded_model, check_model_matches, frozen_parameters, model_fingerprint, users_model
from a3bench.eval.provenance import provenance
from a3bench.io import atomic_write_bytes, safe_name, staged_writes
from a3bench.results import default_sweep_dir  # noqa: F401 - where sweeps go by default
from a3bench.schema import AttackStatus, SweepPerExample, SweepRecord, write_sweep
from a3bench.threat import Norm, ThreatModel, format_eps, parse_norm

WORST_CASE = "worst-case"
MIN_NORM = "fab-min-norm"  # the curve of the optional minimum-norm pass (one FAB run prices the whole grid)
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
    """
    sweep = _Sweep(loaded_model, dataset, norm, eps_list, attacks, n_examples=n_examples, seed=seed, batch_size=batch_size,
                   device=device, progress=progress, cascade=cascade, min_norm=min_norm, min_norm_restarts=min_norm_restarts,
                   draws=draws)
    with frozen_parameters(sweep.model):
        try:
            with users_model("the clean pass"):
                sweep.clean()
            for k, eps in enumerate(sweep.eps):
                sweep.at_eps(k, eps)
            if min_norm:
                sweep.min_norm_pass()
        finally:
            sweep.deployed.restore()
    return sweep.result(spec, saturation_eps)


class _Sweep:
    def __init__(self, loaded_model, dataset, norm, eps_list, attacks, *, n_examples, seed, batch_size, device, progress,
                 cascade, min_norm, min_norm_restarts, draws=10) -> None:
        self.loaded = as_loaded_model(loaded_model, dataset, batch_size)
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
        self.seed, self.batch_size, self.cascade_mode = int(seed), int(batch_size), cascade
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise AttackError(f"draws must be an integer ≥ 1, got {draws!r}")
        self.draws, self.randomised = draws, False
        self.min_norm_restarts, self.progress = min_norm_restarts, progress
        self.dev = resolve_device(device)
        self.shard = current_shard(self.dev)
        self.model = self.loaded.model.to(self.dev).eval()
        data = dataset.first(n_examples)
        self.n = len(data)
        self.x, self.y = data.tensors(self.dev)
        self.positions = data.positions.to(torch.long)
        self.info = data.info
        check_model_matches(self.model, self.x, self.info.num_classes, self.info.name)
        self.names = list(self.curve_attacks)
        self.deployed = DeployedModel(self.model)
        self.cascade = Cascade(self.x, self.y, self.positions, self.deployed, batch_size=self.batch_size, seed=self.seed,
                               shard=self.shard)
        # robust[name][k, i]: example i survives curve `name` at eps k
        self.robust = {name: torch.zeros(len(self.eps), self.n, dtype=torch.bool) for name in self.names}
        self.skipped: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.per_eps: list[dict[str, Any]] = []
        self.min_norm_dist: torch.Tensor | None = None
        self.min_norm_cost: dict[str, Any] | None = None
        self.t_start = time.perf_counter()

    def report(self, stage, eps=None, k=-1, attack=None, done=0, total=0, robust=0) -> None:
        if self.progress is not None and self.shard.is_main:
            self.progress(SweepProgress(stage, eps, k, len(self.eps), attack, done, total, robust, self.n))

    def clean(self) -> None:
        # A randomised model is judged as in `attack`: the majority of fresh draws (eval/judge.py).
        probe = self.x[: min(self.n, 16)]
        with torch.no_grad():
            torch.manual_seed(self.seed)
            randomised = bool(probe.numel()) and not torch.equal(self.model(probe), self.model(probe))
        self.deployed.draws = self.draws if randomised else 1
        self.randomised = randomised
        self.report("clean", total=self.n)
        preds = [self.deployed.judge(self.x[s : s + self.batch_size], self.y[s : s + self.batch_size]).pred
                 for s in range(0, self.n, self.batch_size)]
        self.clean_correct = (torch.cat(preds) == self.y).cpu() if self.n else torch.zeros(0, dtype=torch.bool)
        self.report("clean", done=self.n, total=self.n, robust=int(self.clean_correct.sum()))

    def at_eps(self, k: int, eps: float) -> None:
        threat = ThreatModel(self.norm, eps)
        ctx = AttackContext(model=self.model, threat=threat, device=self.dev, seed=self.seed, batch_size=self.batch_size,
                            num_classes=self.info.num_classes, dataset=self.info.name, loaded=self.loaded, probe=self.x[:16])
        cost = {"eps": eps, "forward_passes": 0, "backward_passes": 0, "seconds": 0.0, "attacked": {}}
        t_eps = time.perf_counter()
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
                self.report("eps-start", eps, k, name, 0, int(alive.sum()), int((worst_now & alive).sum()))
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
            from a3bench.schema import Flag

            flags.insert(0, Flag("randomized-outputs", diagnostics.WARNING,
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
                        "source": self.loaded.source, "path": self.loaded.path, "sha256": model_fingerprint(self.model)},
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


def eps_labels(eps: Sequence[float]) -> list[str]:
    """k/255 for every value when the whole grid is on it (8/255, 16/255 ...), else decimals:
    a 0:0.35:8 grid should not read 0.15, 51/255, 0.25."""
    on_255 = all(abs(e * 255 - round(e * 255)) < 1e-6 for e in eps)
    if on_255 and any(e > 0 for e in eps) and max(eps) < 1:
        return [format_eps(e) if e > 0 else "0" for e in eps]
    return [f"{e:.6g}" for e in eps]


def sweep_markdown(result: SweepRecord) -> str:
    from tabulate import tabulate

    names = list(result.curves)
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    rows = []
    labels = eps_labels(result.eps)
    for k, e in enumerate(result.eps):
        c = result.compute["per_eps"][k] if k < len(result.compute.get("per_eps", [])) else {}
        rows.append([labels[k]] + [fmt(result.curves[n][k]) for n in names]
                    + [sum(c.get("attacked", {}).values()), c.get("forward_passes", 0) + c.get("backward_passes", 0)])
    mode = "cascade" if result.cascade else "naive (every eps on every example)"
    lines = [
        f"# {result.model} · {result.dataset} · {result.norm} · robust accuracy (%) against eps",
        "",
        f"n = {result.n_examples}, seed {result.seed}, clean accuracy {result.clean_acc:.2f} %, mode: {mode}.",
        "",
        tabulate(rows, headers=["eps"] + names + ["attacked", "passes (fwd+bwd)"], tablefmt="github", disable_numparse=True),
        "",
    ]
    if result.plot is not None:
        lines += [f"![robust accuracy against eps]({result.plot})", ""]
    c = result.compute
    lines.append(f"Compute: {c['forward_passes']} forward and {c['backward_passes']} backward passes, {c['seconds']:.1f} s.")
    if "min_norm" in c:
        m = c["min_norm"]
        found = [d for d in (result.per_example.min_norm or []) if d is not None]
        median = f"; median smallest perturbation {sorted(found)[len(found) // 2]:.4g}" if found else ""
        lines.append(f"`{MIN_NORM}`: one FAB run on {m['attacked']} examples prices every eps "
                     f"({m['forward_passes']} forward and {m['backward_passes']} backward passes, {m['seconds']:.1f} s{median}).")
    for name, why in result.skipped.items():
        lines.append(f"- {name} skipped: {why}")
    for name, why in result.failed.items():
        lines.append(f"- {name} failed: {why}")
    for f in result.flags:
        lines.append(f"- flag **{f.name}** ({f.severity}): {f.message}")
    return "\n".join(lines) + "\n"


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
