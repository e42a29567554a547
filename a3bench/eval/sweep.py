"""Robust accuracy against eps: one curve per attack, plus the worst case over them.

The cost trick (issue 5): eps values are processed in increasing order and at each eps
an attack runs only on the examples it could not break at the previous one. An
adversarial example found at eps stays inside every larger ball, so an example broken
at eps stays broken; eps = 0 needs no attack (robust = clean). With the cascade a
curve is monotone by construction; ``cascade=False`` runs every eps on every
clean-correct example (the naive way, kept for tests and to expose attacks whose
strength is not monotone in eps).

Every adversarial example is re-checked as in :mod:`a3bench.eval.runner`: inside the
eps-ball and [0,1] (tolerance 1e-6, else :class:`~a3bench.errors.BudgetViolation`) and
misclassified by a fresh eval-mode fp32 forward pass of the deployed model.

>>> from a3bench.eval.sweep import sweep_eps, save_sweep
>>> res = sweep_eps(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist"), "Linf",
...                 parse_eps_list("0:0.35:8"), "pgd-20,pgd-100", n_examples=500)
>>> res.curves["pgd-100"], res.curves["worst-case"]
>>> save_sweep(res, "results/fmnist/Linf")   # .sweep.json, .sweep.md, .sweep.png
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from a3bench.attacks.base import Attack, AttackContext
from a3bench.errors import A3BenchError, AttackError, BudgetViolation, one_line
from a3bench.eval.record import Flag
from a3bench.io import atomic_write_bytes, safe_name, write_json_atomic
from a3bench.threat import Norm, ThreatModel, format_eps, parse_norm

SCHEMA_VERSION = 1
WORST_CASE = "worst-case"
MIN_NORM = "fab-min-norm"  # the curve of the optional minimum-norm pass (one FAB run prices the whole grid)
DEFAULT_ATTACKS = ("pgd-20",)
# no-saturation: a sound evaluation drives accuracy to about 0 once eps is large enough
# to turn any image into any other. "Large" on [0,1] pixels: half the range in Linf
# (every pixel can be set to 0.5), and 5.0 in L2 (the L2 distance between typical
# 28×28 images is around 5–10; on 3×32×32 it is larger still, so 5.0 is a floor).
SATURATION_EPS = {Norm.LINF: 0.5, Norm.L2: 5.0}
SATURATION_ACC = 5.0  # percent


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


@dataclass
class SweepResult:
    """One sweep. ``curves`` maps each attack (and ``worst-case`` when there are several)
    to robust accuracy in percent, one value per eps (None: the attack does not apply)."""

    model: str
    dataset: str
    norm: str
    eps: list[float]
    curves: dict[str, list[float | None]]
    worst_case: list[float]
    clean_acc: float
    n_examples: int
    seed: int
    cascade: bool
    attacks: dict[str, list[str]]  # curve name -> the attack steps behind it (a composite has several)
    compute: dict[str, Any]  # forward/backward passes and seconds, in total and per eps
    flags: list[Flag] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # curve name -> why it did not run
    indices: list[int] = field(default_factory=list)  # dataset positions of the examples
    labels: list[int] = field(default_factory=list)
    clean_correct: list[bool] = field(default_factory=list)
    broken_at: dict[str, list[float | None]] = field(default_factory=dict)  # per curve, per example: smallest eps of the grid found non-robust
    min_norm: list[float | None] | None = None  # per example: FAB's smallest breaking perturbation (None: none found); only with min_norm
    batch_size: int = 256
    model_info: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    plot: Path | None = None  # set by save_sweep
    path: Path | None = None  # set by save_sweep

    def to_dict(self) -> dict[str, Any]:
        """The ``<model>.sweep.json`` contract (docs/report.md "Eps sweeps", docs/sweep.md)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "dataset": self.dataset,
            "norm": self.norm,
            "eps": self.eps,
            "eps_text": eps_labels(self.eps),
            "curves": self.curves,
            "worst_case": self.worst_case,
            "plot": self.plot.name if self.plot is not None else None,
            "flags": [asdict(f) for f in self.flags],
            "clean_acc": self.clean_acc,
            "n_examples": self.n_examples,
            "seed": self.seed,
            "cascade": self.cascade,
            "batch_size": self.batch_size,
            "attacks": self.attacks,
            "skipped": self.skipped,
            "compute": self.compute,
            "model_info": self.model_info,
            "provenance": self.provenance,
            "per_example": {"indices": self.indices, "labels": self.labels, "clean_correct": self.clean_correct,
                            "broken_at": self.broken_at, **({"min_norm": self.min_norm} if self.min_norm is not None else {})},
        }


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


# --------------------------------------------------------------------------- re-check


# --------------------------------------------------------------------------- flags


def sweep_flags(norm: str | Norm, eps: Sequence[float], curves: dict[str, list[float | None]], worst_case: Sequence[float],
                *, saturation_eps: float | None = None) -> list[Flag]:
    """``not-monotone``: some curve rises with eps (only possible without the cascade: the
    attack is weaker at a larger eps, so the smaller-eps number cannot be trusted either).
    ``no-saturation``: the largest eps is large (≥ ``saturation_eps``, default
    :data:`SATURATION_EPS`) and the worst case is still above 5 %."""
    flags: list[Flag] = []
    rises = []
    for name, values in curves.items():
        for i in range(1, len(values)):
            a, b = values[i - 1], values[i]
            if a is not None and b is not None and b > a + 1e-9:
                rises.append((b - a, name, eps[i - 1], eps[i]))
    if rises:
        worst = max(rises)
        flags.append(Flag("not-monotone", "warning",
                          f"robust accuracy rises with eps ({len(rises)} time(s); largest: {worst[1]} +{worst[0]:.2f} points "
                          f"from eps {format_eps(worst[2])} to {format_eps(worst[3])}): the attack is weaker at the larger eps; "
                          "use the cascade (the default) or a stronger attack", value=round(worst[0], 4)))
    large = SATURATION_EPS[parse_norm(norm)] if saturation_eps is None else float(saturation_eps)
    if eps and worst_case and eps[-1] >= large and worst_case[-1] > SATURATION_ACC:
        flags.append(Flag("no-saturation", "warning",
                          f"worst-case accuracy is still {worst_case[-1]:.2f} % at eps {format_eps(eps[-1])} (≥ {format_eps(large)}, "
                          f"where a sound evaluation reaches about 0): gradient masking or a weak attack", value=round(worst_case[-1], 4)))
    return flags


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
    device: str | torch.device | None = "cpu",
    progress: SweepProgressFn | None = None,
    cascade: bool = True,
    saturation_eps: float | None = None,
    spec: str | None = None,
    min_norm: bool = False,
    min_norm_restarts: int = 1,
) -> SweepResult:
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
    """
    from a3bench.eval.runner import (DeployedModel, check_inputs, check_model_matches, frozen_parameters, model_fingerprint,
                                     provenance, recheck, resolve_device)

    loaded_model = check_inputs(loaded_model, dataset, batch_size)
    norm_v = parse_norm(norm)
    # 12 significant digits: 0:0.35:8 gives 0.2, not 0.19999999999999998 (k/255 values survive).
    eps_sorted = sorted({float(f"{float(e):.12g}") for e in eps_list})
    if not eps_sorted:
        raise AttackError("no eps values to sweep")
    if any(not math.isfinite(e) or e < 0 for e in eps_sorted):
        raise AttackError(f"eps values must be finite and ≥ 0, got {list(eps_list)}")
    curves_attacks = build_curves(attacks)
    if not curves_attacks and not min_norm:
        raise AttackError("nothing to sweep: give at least one attack (or the minimum-norm pass)")
    if min_norm and min_norm_restarts < 1:
        raise AttackError(f"min-norm restarts must be ≥ 1, got {min_norm_restarts}")
    dev = resolve_device(device)
    model = loaded_model.model.to(dev).eval()
    data = dataset.first(n_examples)
    n, n_eps = len(data), len(eps_sorted)
    x, y = data.tensors(dev)
    positions = data.positions.to(torch.long)
    info = data.info
    check_model_matches(model, x, info.num_classes, info.name)
    names = list(curves_attacks)

    def report(stage, eps=None, k=-1, attack=None, done=0, total=0, robust=0):
        if progress is not None:
            progress(SweepProgress(stage, eps, k, n_eps, attack, done, total, robust, n))

    deployed = DeployedModel(model)
    t_start = time.perf_counter()
    # robust[name][k, i]: example i survives curve `name` at eps k
    robust = {name: torch.zeros(n_eps, n, dtype=torch.bool) for name in names}
    skipped: dict[str, str] = {}
    per_eps: list[dict[str, Any]] = []
    try:
        with frozen_parameters(model):
            report("clean", total=n)
            preds = []
            for s in range(0, n, batch_size):
                preds.append(deployed.forward(x[s : s + batch_size]).argmax(1))
            clean_correct = (torch.cat(preds) == y).cpu() if n else torch.zeros(0, dtype=torch.bool)
            report("clean", done=n, total=n, robust=int(clean_correct.sum()))
            for k, eps in enumerate(eps_sorted):
                threat = ThreatModel(norm_v, eps)
                ctx = AttackContext(model=model, threat=threat, device=dev, seed=int(seed), batch_size=batch_size,
                                    num_classes=info.num_classes, dataset=info.name, loaded=loaded_model, probe=x[:16])
                cost = {"eps": eps, "forward_passes": 0, "backward_passes": 0, "seconds": 0.0, "attacked": {}}
                t_eps = time.perf_counter()
                worst_now = clean_correct.clone()
                for name in names:
                    prev = robust[name][k - 1] if (cascade and k > 0) else clean_correct
                    alive = prev.clone()
                    if eps == 0 or name in skipped:
                        robust[name][k] = alive  # eps 0: nothing to search, robust = clean
                        cost["attacked"][name] = 0
                        worst_now &= alive
                        continue
                    reason = next((r for r in (a.applies_to(ctx) for a in curves_attacks[name]) if r), None)
                    if reason:
                        skipped[name] = reason
                        cost["attacked"][name] = 0
                        continue
                    todo = alive.nonzero().flatten()
                    cost["attacked"][name] = int(todo.numel())
                    report("eps-start", eps, k, name, 0, int(todo.numel()), int((worst_now & alive).sum()))
                    for attack in curves_attacks[name]:  # a composite: each step on what is still robust
                        todo = alive.nonzero().flatten()
                        if todo.numel() == 0:
                            break
                        attack.setup(ctx)
                        deployed.restore()
                        for s in range(0, int(todo.numel()), batch_size):
                            idx = todo[s : s + batch_size]
                            xb, yb = x[idx.to(dev)], y[idx.to(dev)]
                            try:
                                out = attack(model, xb, yb, threat, seed=int(seed), indices=positions[idx])
                            except (A3BenchError, BudgetViolation, MemoryError):
                                raise
                            except Exception as e:  # noqa: BLE001 — one line, not a traceback
                                raise AttackError(f"attack {attack.name} failed on this model at eps {eps:g} "
                                                  f"({type(e).__name__}: {one_line(e)}); leave it out of --attacks") from None
                            broken = recheck(attack.name, out, xb, yb, threat, deployed).broken.cpu()
                            alive[idx[broken]] = False
                            cost["forward_passes"] += int(out.forward_passes) + int(idx.numel())  # + the re-check
                            cost["backward_passes"] += int(out.backward_passes)
                            report("batch", eps, k, name, min(s + batch_size, int(todo.numel())), int(todo.numel()),
                                   int((worst_now & alive).sum()))
                    robust[name][k] = alive
                    worst_now &= alive
                cost["seconds"] = round(time.perf_counter() - t_eps, 3)
                per_eps.append(cost)
                report("eps-end", eps, k, None, n, n, int(worst_now.sum()))
            if min_norm:
                dist, mn_cost = _min_norm_pass(model, deployed, x, y, clean_correct, norm_v, eps_sorted[-1], seed=int(seed),
                                               restarts=min_norm_restarts, batch_size=batch_size, device=dev,
                                               report=lambda done, total: report("min-norm", None, -1, MIN_NORM, done, total))
                # broken at eps ⇔ FAB's confirmed adversarial example lies within eps (no tolerance)
                robust[MIN_NORM] = torch.stack([clean_correct & ~(dist <= e) for e in eps_sorted])
                names.append(MIN_NORM)
    finally:
        deployed.restore()

    pct = lambda t: round(100.0 * int(t.sum()) / n, 4) if n else 0.0  # noqa: E731
    ran = [name for name in names if name not in skipped]
    curves: dict[str, list[float | None]] = {name: [None] * n_eps if name in skipped else [pct(robust[name][k]) for k in range(n_eps)] for name in names}
    worst = torch.stack([clean_correct] * n_eps) if n_eps else torch.zeros(0, n, dtype=torch.bool)
    for name in ran:
        worst = worst & robust[name]
    worst_case = [pct(worst[k]) for k in range(n_eps)]
    if len(names) > 1:
        curves[WORST_CASE] = list(worst_case)

    def first_break(mask: torch.Tensor) -> list[float | None]:
        out: list[float | None] = []
        for i in range(n):
            if not bool(clean_correct[i]):
                out.append(0.0)
                continue
            ks = (~mask[:, i]).nonzero().flatten()
            out.append(eps_sorted[int(ks[0])] if ks.numel() else None)
        return out

    broken_at = {name: first_break(robust[name]) for name in ran}
    if len(names) > 1:
        broken_at[WORST_CASE] = first_break(worst)
    seconds = time.perf_counter() - t_start
    fwd = n + sum(c["forward_passes"] for c in per_eps) + (mn_cost["forward_passes"] if min_norm else 0)
    bwd = sum(c["backward_passes"] for c in per_eps) + (mn_cost["backward_passes"] if min_norm else 0)
    compute = {
        "seconds": round(seconds, 3),
        "forward_passes": fwd,
        "backward_passes": bwd,
        "clean_forward_passes": n,
        "forward_passes_per_example": round(fwd / n, 3) if n else 0.0,
        "backward_passes_per_example": round(bwd / n, 3) if n else 0.0,
        "per_eps": per_eps,
        **({"min_norm": mn_cost} if min_norm else {}),
    }
    flags = sweep_flags(norm_v, eps_sorted, {k: v for k, v in curves.items()}, worst_case, saturation_eps=saturation_eps)
    return SweepResult(
        model=loaded_model.name,
        dataset=info.name,
        norm=norm_v.value,
        eps=eps_sorted,
        curves=curves,
        worst_case=worst_case,
        clean_acc=pct(clean_correct),
        n_examples=n,
        seed=int(seed),
        cascade=cascade,
        attacks={name: ([f"fab (untargeted, min-norm, {min_norm_restarts} restart(s))"] if name == MIN_NORM else [a.name for a in curves_attacks[name]])
                 for name in names},
        compute=compute,
        flags=flags,
        skipped=skipped,
        indices=positions.tolist(),
        labels=y.tolist(),
        clean_correct=clean_correct.tolist(),
        broken_at=broken_at,
        batch_size=batch_size,
        model_info={"spec": spec if spec is not None else loaded_model.name, "name": loaded_model.name,
                    "source": loaded_model.source, "path": loaded_model.path, "sha256": model_fingerprint(model)},
        provenance=provenance(dev),
        min_norm=[None if not math.isfinite(d) else d for d in dist.tolist()] if min_norm else None,
    )


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
            confirmed[claimed] = deployed.forward(x_adv[claimed]).argmax(1) != yb[claimed]
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


def default_sweep_dir(dataset: str, norm: str, root: str | Path = "results") -> Path:
    return Path(root) / dataset / norm


def save_sweep(result: SweepResult, out_dir: str | Path) -> Path:
    """Write ``<model>.sweep.json``, ``.sweep.md`` and ``.sweep.png`` into ``out_dir``
    (atomically); returns the JSON path and sets ``result.path`` / ``result.plot``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = sweep_stem(result.model)
    png = out / f"{stem}.sweep.png"
    atomic_write_bytes(png, lambda f: f.write(plot_png(result)))
    result.plot = png
    md = out / f"{stem}.sweep.md"
    atomic_write_bytes(md, lambda f: f.write(sweep_markdown(result).encode()))
    path = out / f"{stem}.sweep.json"
    write_json_atomic(path, result.to_dict())
    result.path = path
    return path


def eps_labels(eps: Sequence[float]) -> list[str]:
    """k/255 for every value when the whole grid is on it (8/255, 16/255 ...), else decimals:
    a 0:0.35:8 grid should not read 0.15, 51/255, 0.25."""
    on_255 = all(abs(e * 255 - round(e * 255)) < 1e-6 for e in eps)
    if on_255 and any(e > 0 for e in eps) and max(eps) < 1:
        return [format_eps(e) if e > 0 else "0" for e in eps]
    return [f"{e:.6g}" for e in eps]


def sweep_markdown(result: SweepResult) -> str:
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
        lines += [f"![robust accuracy against eps]({result.plot.name})", ""]
    c = result.compute
    lines.append(f"Compute: {c['forward_passes']} forward and {c['backward_passes']} backward passes, {c['seconds']:.1f} s.")
    if "min_norm" in c:
        m = c["min_norm"]
        found = [d for d in (result.min_norm or []) if d is not None]
        median = f"; median smallest perturbation {sorted(found)[len(found) // 2]:.4g}" if found else ""
        lines.append(f"`{MIN_NORM}`: one FAB run on {m['attacked']} examples prices every eps "
                     f"({m['forward_passes']} forward and {m['backward_passes']} backward passes, {m['seconds']:.1f} s{median}).")
    for name, why in result.skipped.items():
        lines.append(f"- {name} skipped: {why}")
    for f in result.flags:
        lines.append(f"- flag **{f.name}** ({f.severity}): {f.message}")
    return "\n".join(lines) + "\n"


def plot_png(result: SweepResult) -> bytes:
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
