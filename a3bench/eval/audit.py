"""Auditing the attacks themselves (docs/architecture.md#diagnostics-and-the-verdict, docs/audit.md).

Every other diagnostic compares attacks with each other; when all of them fail the same
way nothing fires. These two tests ask each attack directly whether it works here:

- **Binarization test** (Zimmermann, Brendel, Tramèr & Carlini, NeurIPS 2022, "Increasing
  Confidence in Adversarial Robustness Evaluations"). For each test input x: sample
  ``n_inner`` points uniformly in the eps-ball around x and one *boundary point* near the
  ball's edge (all in [0,1]); take the model's features of x, the inner points and the
  boundary point; fit a new linear readout on them (x and the inner points class 0, the
  boundary point class 1). The model's features followed by that readout is a binary
  classifier with an adversarial example *known* to exist inside the threat model (the
  boundary point). Run the attack, unchanged, on it from x with label 0: the example
  passes when the attack returns a point of the threat model that the binary model puts
  in class 1. If the readout cannot separate the points, the example is *not testable*.
- **Indicators of attack failure** (Pintor, Demetrio, Sotgiu, Demontis, Carlini, Biggio &
  Roli, NeurIPS 2022), per example: *unconstrained attack failure* (the same attack with
  an unbounded eps must find an adversarial example), *silent success* (a success was
  recorded though the attack's loss never rose above its value at the starting point) and
  *non-converging loss* (the attack's best loss still rose in its last iterations). The
  last two read ``AttackOutput.loss_trace``; attacks that cannot give one (pyautoattack's)
  get ``None`` — not available — never a made-up value.

>>> from a3bench.attacks.registry import build_attack
>>> attacks = build_attack("pgd-20") + build_attack("apgd-ce")
>>> res = audit(model, x, y, ThreatModel("Linf", 0.1), attacks, seed=0)
>>> res.binarization[0].pass_rate, res.binarization[0].pass_rate_ci, audit_flags(res)

Which features: see :class:`FeatureMap`. Every choice the papers leave open is a field of
:class:`AuditSettings`, stored with the result, and explained in docs/audit.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackContext, AttackKind
from a3bench.errors import A3BenchError, ModelSpecError, one_line
from a3bench.eval.judge import DeployedModel, detect_randomness
from a3bench.flags import BINARIZATION_TEST_FAILED, NON_CONVERGING_LOSS, SILENT_SUCCESS, UNCONSTRAINED_ATTACK_FAILURE
from a3bench.schema import AuditResult, AuditSettings, BinarizationTest, Flag, Indicators, Severity
from a3bench.results import default_audit_path  # noqa: F401 - where audits go by default
from a3bench.models.state import swapped
from a3bench.threat import Norm, ThreatModel, example_seeds

# The binarization test fails when fewer than this percentage of the testable examples
# pass (for the suite: an example passes when any attack of it passes). docs/audit.md.
PASS_THRESHOLD = 90.0
# An indicator flag fires when more than this percentage of the audited examples trigger
# it (the 1-point tolerance of the other cascade flags, docs/diagnostics.md).
INDICATOR_THRESHOLD = 1.0
WARNING, ERROR = Severity.WARNING, Severity.ERROR
_SALT_POINTS = 7_001  # example_seeds salt of the sampled points (apart from the attacks' own)


# --------------------------------------------------------------------------- settings and results


@dataclass
class AuditProgress:
    """What :func:`audit` reports to its ``progress`` callback (the CLI draws it)."""

    stage: str  # "features" | "binarization" | "indicators" | "done"
    attack: str | None
    done: int
    total: int
    eta_total_s: float | None = None  # seconds left in the audit, from the steps done so far


ProgressFn = Callable[[AuditProgress], None]


# --------------------------------------------------------------------------- sampling


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def inner_points(x: torch.Tensor, threat: ThreatModel, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` points uniform in the eps-ball around one input ``x`` (C×H×W) ∩ [lower, upper].

    Linf: exactly uniform on the intersection (each coordinate uniform on its interval).
    L2: uniform in the ball, then clipped to the box (clipping moves a point towards x, so
    it stays in the ball; near the box's faces the density is not uniform).
    """
    shape = (n, *x.shape)
    if threat.norm is Norm.LINF:
        lo = (x - threat.eps).clamp_min(threat.lower)
        hi = (x + threat.eps).clamp_max(threat.upper)
        u = torch.rand(shape, generator=gen).to(x.device, x.dtype)
        return lo + u * (hi - lo)
    d = torch.randn(shape, generator=gen).to(x.device, x.dtype)
    r = torch.rand(n, generator=gen).to(x.device, x.dtype) ** (1.0 / x.numel())
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * x.dim()) * (threat.eps * r).view(-1, *[1] * x.dim())
    return (x + d).clamp(threat.lower, threat.upper)


def boundary_point(x: torch.Tensor, threat: ThreatModel, radius: float, gen: torch.Generator) -> torch.Tensor:
    """One point at ``radius``·eps from ``x`` (in the threat norm) inside [lower, upper].

    Linf: a random vertex of the cube (every coordinate ±radius·eps, then clipped to the
    box): the points a sign-gradient step reaches, and the farthest from the inner points.
    L2: a random direction, rescaled so the clipped point lies at radius·eps where the box
    allows (a few rescale-and-clip rounds; never outside the ball).
    """
    r = radius * threat.eps
    if threat.norm is Norm.LINF:
        s = torch.randint(0, 2, x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1
        return (x + r * s).clamp(threat.lower, threat.upper)
    d = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    for _ in range(5):
        d = d * (r / d.norm().clamp_min(1e-12))
        d = (x + d).clamp(threat.lower, threat.upper) - x
    return x + d


# --------------------------------------------------------------------------- features


class FeatureMap(nn.Module):
    """The features the binary readout reads: by default the input of the model's final
    linear layer, found generically by forward hooks (docs/audit.md, "Which features").

    - a model with one final linear layer (every a3bench backbone: ``backbone.head``; a
      plain user ``nn.Module`` ending in ``nn.Linear``): that layer's input;
    - several linear layers that each produce the logits' width K (an ensemble, a CrossMax
      self-ensemble of several heads): all their inputs, concatenated — the readout sees
      every predictor; a head called several times contributes each call;
    - no linear layer of width K: the input of the last linear layer called;
    - none at all, or a head whose input does not have one row per example: an error
      asking for ``feature_fn`` (any callable x → N×d).
    A randomised model (two passes differ) keeps its randomness in the binary model; the
    readout is fitted on features averaged over ``draws`` passes (:func:`audit`).
    """

    def __init__(self, model: nn.Module, probe: torch.Tensor, feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 randomized: bool | None = None) -> None:
        super().__init__()
        self.model = model
        self.feature_fn = feature_fn
        self.layers: list[nn.Module] = []
        self._captured: list[torch.Tensor] = []
        self._hooks: list = []
        if feature_fn is not None:
            self.description = "user feature_fn"
        else:
            self._find_layers(probe)
        with torch.no_grad():
            self.dim = int(self(probe).shape[1])
            if randomized is None:  # the one rule (eval/judge.py), on the model's own predictions
                randomized = detect_randomness(model, probe, model(probe).argmax(1)).randomised
        self.randomized = bool(randomized)

    def _find_layers(self, probe: torch.Tensor) -> None:
        names = {m: n for n, m in self.model.named_modules()}
        calls: list[tuple[nn.Linear, tuple]] = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: calls.append((mod, tuple(out.shape))))
                 for m in self.model.modules() if isinstance(m, nn.Linear)]
        try:
            with torch.no_grad():
                logits = self.model(probe)
        finally:
            for h in hooks:
                h.remove()
        if not calls:
            raise ModelSpecError("the model has no nn.Linear layer to read features from: give audit() a feature_fn")
        k = int(logits.shape[-1])
        heads = [m for m, shape in calls if shape[-1] == k]
        chosen = list(dict.fromkeys(heads)) or [calls[-1][0]]
        self.layers = chosen
        what = ", ".join(names.get(m, "?") or "model" for m in chosen)
        if heads:
            self.description = (f"input of the final linear layer {what}" if len(heads) == 1
                                else f"inputs of the {len(heads)} final linear layer call(s) ({what}), concatenated")
        else:
            self.description = f"input of the last linear layer called ({what}); none has the logits' width {k}"
        self._hooks = [m.register_forward_pre_hook(lambda mod, inp: self._captured.append(inp[0])) for m in chosen]

    def close(self) -> None:
        """Remove the hooks from the model (the audit calls this when done)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feature_fn is not None:
            return self.feature_fn(x).flatten(1)
        self._captured.clear()
        self.model(x)
        parts = list(self._captured)
        self._captured.clear()
        if not parts or any(p.shape[0] != x.shape[0] for p in parts):
            raise ModelSpecError("the final linear layer's input does not have one row per example "
                                 "(a batched ensemble?): give audit() a feature_fn")
        return torch.cat([p.flatten(1) for p in parts], dim=1)


# --------------------------------------------------------------------------- the binary model


PAD_LOGIT = -1e4  # two constant logits that never win: DLR losses need ≥ 3 (targeted: 4) logits


class BinaryModel(nn.Module):
    """The model's features followed by a new linear readout: logits ``[−s/2, s/2]``,
    class 1 where the readout's score s > 0, and two constant padding logits (``PAD_LOGIT``)
    that never win. The padding changes no decision and leaves CE and margin losses as
    they are; it lets DLR-based attacks (``apgd-dlr``, ``apgd-t``), which read the
    third- and fourth-largest logits, run on a two-class problem.

    Each example has its own readout. An attack calls the model on any subset of a batch,
    so the model finds which example an input belongs to: the clean input nearest to it
    in the threat norm among the examples of the current group. :func:`attack_groups`
    puts two examples in one group only when their eps-balls are disjoint, so every input
    inside the threat model is matched to its own example.
    """

    def __init__(self, features: FeatureMap, centres: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, threat: ThreatModel) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("centres", centres)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.threat = threat
        self.group = torch.arange(centres.shape[0], device=centres.device)  # examples an input may belong to

    def owner(self, x: torch.Tensor) -> torch.Tensor:
        """Index (into all examples) of the example each input belongs to."""
        with torch.no_grad():
            c = self.centres[self.group].flatten(1)
            p = float("inf") if self.threat.norm is Norm.LINF else 2.0
            return self.group[torch.cdist(x.detach().flatten(1), c, p=p).argmin(1)]

    def score(self, x: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return (z * self.weight[owner]).sum(1) + self.bias[owner]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.score(x, self.owner(x))
        pad = torch.full_like(s, PAD_LOGIT)
        return torch.stack([-s / 2, s / 2, pad, pad], dim=1)


def attack_groups(x: torch.Tensor, threat: ThreatModel, batch_size: int) -> list[torch.Tensor]:
    """Examples split into batches of at most ``batch_size`` whose eps-balls are pairwise
    disjoint (distance > 2·eps), greedily in order; near-duplicates go to later batches."""
    n = x.shape[0]
    flat = x.flatten(1)
    groups: list[list[int]] = []
    for i in range(n):
        for g in groups:
            if len(g) >= batch_size:
                continue
            diff = flat[g] - flat[i]
            d = diff.abs().amax(1) if threat.norm is Norm.LINF else diff.norm(dim=1)
            if bool((d > 2 * threat.eps + 1e-6).all()):
                g.append(i)
                break
        else:
            groups.append([i])
    return [torch.tensor(g, dtype=torch.long) for g in groups]


def fit_readouts(z0: torch.Tensor, z1: torch.Tensor, settings: AuditSettings, *,
                 primal: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One logistic-regression readout per example, fitted all at once.

    ``z0``: B×M×d features of class 0 (x and the inner points); ``z1``: B×d (the boundary
    point). Features are standardised per example; the classes weigh equally (the one
    boundary point as much as the M class-0 points); the weights (not the bias) carry an
    L2 penalty ``readout_l2``. The optimum is found by ``readout_steps`` Newton steps (the
    problem is strictly convex: no learning rate, no dependence on an optimiser's state);
    with more features than points each step is solved through an (M+1)×(M+1) system
    instead of the d×d Hessian (the same step, exact arithmetic aside). ``primal`` forces the
    d×d Hessian (the reference the test compares with, on one thread): the d×d system is both
    large (163 GB for a CrossMax model's concatenated heads) and, batched, unreliable — torch's
    multi-threaded batched LU returned garbage or raised on 301×301 systems here.
    Returns (weight B×d, bias B, separable B): for separable examples the readout is
    rescaled so the boundary point scores +1 and the highest class-0 point −1 (the
    threshold halfway between them); for the others weight and bias are zero.
    """
    b, m, d = z0.shape
    allz = torch.cat([z0, z1[:, None]], dim=1).double()  # B×(M+1)×d, the boundary point last
    mu = allz.mean(1, keepdim=True)
    sd = allz.std(1, keepdim=True)
    sd = torch.maximum(sd, 1e-4 * sd.amax(2, keepdim=True).clamp_min(1e-12))
    zn = torch.cat([(allz - mu) / sd, torch.ones(b, m + 1, 1, dtype=torch.float64)], dim=2)  # bias = constant feature
    target = torch.zeros(m + 1, dtype=torch.float64)
    target[-1] = 1.0
    weigh = torch.full((m + 1,), 1.0 / m, dtype=torch.float64)
    weigh[-1] = 1.0  # classes weigh equally
    ridge = torch.full((d + 1,), 2 * settings.readout_l2, dtype=torch.float64)
    ridge[-1] = 1e-8  # the bias is not penalised (a tiny ridge keeps the Hessian invertible)
    theta = torch.zeros(b, d + 1, dtype=torch.float64)
    dual = d + 1 > m + 1 and not primal
    eye = torch.eye(m + 1, dtype=torch.float64)
    for _ in range(settings.readout_steps):
        p = torch.sigmoid(torch.bmm(zn, theta[:, :, None]).squeeze(2))
        grad = torch.bmm(zn.transpose(1, 2), (weigh * (p - target))[:, :, None]).squeeze(2) + ridge * theta
        curv = weigh * p * (1 - p)
        if dual:
            # H = R + Zᵀ C Z has rank ≤ M+1 beyond the ridge R: the Newton step through the
            # (M+1)×(M+1) system of the push-through identity
            # H⁻¹g = R⁻¹g − R⁻¹Zᵀ (I + C Z R⁻¹ Zᵀ)⁻¹ C Z R⁻¹g, never the d×d Hessian.
            rg = grad / ridge
            zr = zn / ridge  # Z R⁻¹, B×(M+1)×(d+1)
            inner = eye + curv[:, :, None] * torch.bmm(zr, zn.transpose(1, 2))
            rhs = curv * torch.bmm(zn, rg[:, :, None]).squeeze(2)
            step = rg - torch.bmm(zr.transpose(1, 2), torch.linalg.solve(inner, rhs)[:, :, None]).squeeze(2)
        else:
            hess = torch.bmm(zn.transpose(1, 2) * curv[:, None, :], zn) + torch.diag(ridge)
            step = torch.linalg.solve(hess, grad)
        theta = theta - step
    s = torch.bmm(zn, theta[:, :, None]).squeeze(2)
    top0, s1 = s[:, :-1].amax(1), s[:, -1]
    separable = s1 > top0
    half = ((s1 - top0) / 2).clamp_min(1e-12)
    mid = (s1 + top0) / 2
    # score' = (w·(z−mu)/sd + c − mid) / half, written as weight·z + bias on raw features
    weight = theta[:, :d] / sd[:, 0] / half[:, None]
    bias = (theta[:, d] - mid) / half - (weight * mu[:, 0]).sum(1)
    weight[~separable] = 0
    bias[~separable] = 0
    weight, bias = weight.float(), bias.float()
    return weight, bias, separable


FEATURE_CHUNK = 128  # points per forward pass when extracting features (larger batches are slower on CPU)


def example_points(x: torch.Tensor, threat: ThreatModel, settings: AuditSettings, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One example's sampled points, a function of (x, seed) only: (inner n_inner×…, boundary …, control n_control×…)."""
    gen = _generator(seed)
    inner = inner_points(x, threat, settings.n_inner, gen)
    bnd = boundary_point(x, threat, settings.boundary_radius, gen)
    ctl = inner_points(x, threat, settings.n_control, gen)
    return inner, bnd, ctl


@dataclass
class Binarized:
    """The binary model of a set of examples, and what the fit found."""

    model: BinaryModel
    testable: torch.Tensor  # bool N: the readout separates the example's points
    control: torch.Tensor  # bool N: a control point (uniform in the ball) is already class 1
    forward_passes: int


def binarize(features: FeatureMap, x: torch.Tensor, threat: ThreatModel, *, positions: torch.Tensor, seed: int,
             settings: AuditSettings = AuditSettings(), draws: int = 1, report=None) -> Binarized:
    """Sample each example's points (:func:`example_points`, seeded by its position),
    extract their features (averaged over ``draws`` passes) and fit its readout."""
    n, per = x.shape[0], 1 + settings.n_inner + 1 + settings.n_control  # x, inner, boundary, control
    seeds = example_seeds(seed, positions, salt=_SALT_POINTS)
    step = max(1, FEATURE_CHUNK * 8 // per)  # examples per fit
    out: dict[str, list[torch.Tensor]] = {"w": [], "b": [], "sep": [], "ctl": []}
    fwd = 0
    for s in range(0, n, step):
        idx = list(range(s, min(n, s + step)))
        pts = []
        for i in idx:
            inner, bnd, ctl = example_points(x[i], threat, settings, seeds[i])
            pts.append(torch.cat([x[i : i + 1], inner, bnd[None], ctl]))
        pts_t = torch.cat(pts)
        with torch.no_grad():
            z = sum(torch.cat([features(c) for c in torch.split(pts_t, FEATURE_CHUNK)]) for _ in range(draws)) / draws
        fwd += pts_t.shape[0] * draws
        z = z.view(len(idx), per, -1).float().cpu()
        k = settings.n_inner + 1
        w, b, sep = fit_readouts(z[:, :k], z[:, k], settings)
        ctl_scores = torch.einsum("bmd,bd->bm", z[:, k + 1 :], w) + b[:, None]
        out["w"].append(w)
        out["b"].append(b)
        out["sep"].append(sep)
        out["ctl"].append(sep & (ctl_scores > 0).any(1) if settings.n_control else torch.zeros_like(sep))
        if report is not None:
            report("features", None, idx[-1] + 1, n)
    binary = BinaryModel(features, x.detach(), torch.cat(out["w"]).to(x.device, x.dtype), torch.cat(out["b"]).to(x.device, x.dtype), threat)
    return Binarized(binary.eval(), torch.cat(out["sep"]), torch.cat(out["ctl"]), fwd)


# --------------------------------------------------------------------------- running attacks


def _applicable(attack: Attack, ctx: AttackContext) -> str | None:
    if attack.kind is AttackKind.TRANSFER:
        # crafted on another model or mode, which has no binary readout of its own
        return "a transfer attack crafts on another model (or A3 mode), which has no binary readout"
    return attack.applies_to(ctx)


def _run_batches(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, batches, *,
                 seed: int, positions: torch.Tensor, before_batch=None):
    """Run ``attack`` batch by batch; returns x_adv, claimed success, loss trace (or None), passes."""
    x_adv = x.clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    traces: dict[int, torch.Tensor] = {}
    trace_ok = True
    fwd = bwd = 0
    for idx in batches:
        if idx.numel() == 0:
            continue
        if before_batch is not None:
            before_batch(idx)
        out = attack(model, x[idx], y[idx], threat, seed=seed, indices=positions[idx])
        x_adv[idx] = out.x_adv.detach().to(x.dtype)
        success[idx] = out.success.to(x.device).bool()
        fwd += int(out.forward_passes)
        bwd += int(out.backward_passes)
        if out.loss_trace is None:
            trace_ok = False
        else:
            for j, i in enumerate(idx.tolist()):
                traces[i] = out.loss_trace[:, j].detach().cpu()
    trace = None
    if trace_ok and traces:
        rows = max(t.shape[0] for t in traces.values())
        trace = torch.full((rows, x.shape[0]), float("nan"))
        for i, t in traces.items():
            trace[: t.shape[0], i] = t
    return x_adv, success, trace, fwd, bwd


def _chunks(idx: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [idx[s : s + size] for s in range(0, idx.numel(), size)]


def loss_indicators(trace: torch.Tensor, success: torch.Tensor, settings: AuditSettings = AuditSettings()) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Silent success and non-converging loss from a loss trace (docs/audit.md).

    ``trace``: (K+1)×N, the attack's loss (to be maximised) at iterates 0..K, NaN after
    an example stopped; ``success``: bool N, the attack's claim. Returns two bool tensors
    of N: silent success — claimed, moved at least once, and no iterate's loss above the
    starting iterate's; non-converging — not claimed, and the running best loss rose in
    the last ``window`` of the iterations by more than ``rise`` of its total rise. The
    second is None when the attack ran fewer than ``min_steps`` iterations.
    """
    trace = trace.float().cpu()
    success = success.bool().cpu()
    start = trace[0]
    later = trace[1:]
    moved = (~torch.isnan(later)).any(0)
    best_later = torch.where(torch.isnan(later), torch.full_like(later, float("-inf")), later).amax(0) if later.numel() else start
    tol = 1e-6 * (1 + start.abs())
    silent = success & moved & (best_later <= start + tol)
    steps = trace.shape[0] - 1
    if steps < settings.min_steps:
        return silent, None
    w = max(2, math.ceil(settings.window * steps))
    filled = torch.where(torch.isnan(trace), torch.full_like(trace, float("-inf")), trace)
    run_max = torch.cummax(filled, dim=0).values
    final, before = run_max[-1], run_max[-1 - w]
    total = final - start
    complete = ~torch.isnan(trace).any(0)
    rising = (final - before) > torch.maximum(settings.rise * total, torch.full_like(total, 1e-4))
    return silent, ~success & complete & rising


def unbounded_threat(threat: ThreatModel, x: torch.Tensor) -> ThreatModel:
    """The same norm with eps = the box's diameter: every image of the box is reachable."""
    span = threat.upper - threat.lower
    eps = span if threat.norm is Norm.LINF else span * math.sqrt(x[0].numel())
    return ThreatModel(threat.norm, eps, threat.lower, threat.upper)


# --------------------------------------------------------------------------- the audit


def _majority_class1(binary: BinaryModel, x: torch.Tensor, owner: torch.Tensor, draws: int) -> torch.Tensor:
    with torch.no_grad():
        votes = sum((binary.score(x, owner) > 0).int() for _ in range(draws))
    return votes * 2 > draws


def audit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    attacks: Sequence[Attack],
    *,
    positions: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 256,
    settings: AuditSettings = AuditSettings(),
    binarization: bool = True,
    indicators: bool = True,
    feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dataset: str | None = None,
    name: str | None = None,
    progress: ProgressFn | None = None,
    judge: DeployedModel | None = None,
) -> AuditResult:
    """Binarization test and indicators of attack failure of ``attacks`` on ``model``.

    Args:
        model: the deployed model (eval mode) on [0,1] inputs. x, y: the audited examples.
        attacks: a3bench Attack objects, each audited alone with its own settings.
        positions: the examples' positions in the test split (per-example seeds; default 0..N−1).
        settings: :class:`AuditSettings`. binarization / indicators: which tests to run.
        feature_fn: what the readout reads, when the default (:class:`FeatureMap`) does not fit.
        judge: the deployed model's judge (an :class:`~a3bench.eval.setup.Evaluation` passes its
            own): a success of the real model counts only when the judge confirms it — majority
            of draws for a randomised model, A3 modes restored. Default: one built here.
    Returns an :class:`AuditResult`; :func:`audit_flags` are already in ``result.flags``.
    """
    if x.shape[0] == 0:
        raise A3BenchError("nothing to audit: no examples")
    positions = (torch.arange(x.shape[0]) if positions is None else positions.clone()).to(x.device)
    t0 = time.perf_counter()
    report = _eta_reporter(progress, steps=(1 if binarization else 0) + len(attacks) * (int(binarization) + int(indicators)))
    model.eval()
    params = [p for p in model.parameters()]
    compute = {"forward_passes": 0, "backward_passes": 0}
    if judge is None:
        judge = DeployedModel(model)
        if detect_randomness(model, x[: min(16, len(x))], y[: min(16, len(x))]).randomised:
            judge.draws = settings.draws
    with swapped(params, "requires_grad", False):
        features = FeatureMap(model, x[: min(16, len(x))], feature_fn, randomized=judge.draws > 1)
        try:
            if binarization:
                testable, tests, suite, control = _binarization(model, features, x, threat, attacks, positions, seed, batch_size,
                                                                settings, dataset, report, compute)
            else:
                testable, tests, suite, control = [False] * len(x), [], None, None
            inds = _indicators(model, judge, x, y, threat, attacks, positions, seed, batch_size, settings, dataset, report, compute) if indicators else []
        finally:
            features.close()
    compute["seconds"] = round(time.perf_counter() - t0, 3)
    result = AuditResult(
        name=name, dataset=dataset, norm=threat.norm.value, eps=threat.eps, seed=int(seed), n_examples=len(x),
        indices=positions.tolist(), settings=settings, features=features.description, randomized=features.randomized,
        testable=testable, binarization=tests, suite=suite, control=control, indicators=inds, compute=compute,
    )
    result.flags = audit_flags(result)
    report("done", None, len(x), len(x))
    return result


def _eta_reporter(progress: ProgressFn | None, steps: int) -> Callable:
    """``report(stage, attack, done, total)`` with the time left: the audit's steps (the
    features, then each attack's binarization test and indicators) at the pace so far."""
    if progress is None:
        return lambda *a: None
    t0, finished = time.perf_counter(), [0]

    def report(stage: str, attack: str | None, done: int, total: int) -> None:
        if stage in ("binarization", "indicators") or (stage == "features" and done == total and total):
            finished[0] += 1
        elapsed = time.perf_counter() - t0
        eta = elapsed / finished[0] * max(0, steps - finished[0]) if finished[0] else None
        progress(AuditProgress(stage, attack, done, total, 0.0 if stage == "done" else eta))

    return report


def _binarization(model, features: FeatureMap, x, threat, attacks, positions, seed, batch_size, settings: AuditSettings,
                  dataset, report, compute) -> tuple[list[bool], list[BinarizationTest], BinarizationTest | None, BinarizationTest | None]:
    n = x.shape[0]
    draws = settings.draws if features.randomized else 1
    report("features", None, 0, n)
    fit = binarize(features, x, threat, positions=positions, seed=seed, settings=settings, draws=draws, report=report)
    compute["forward_passes"] += fit.forward_passes
    testable = fit.testable.tolist()
    binary = fit.model
    todo = fit.testable.nonzero().flatten()
    groups = [todo[g] for g in attack_groups(x[todo], threat, batch_size)]
    zeros = torch.zeros(n, dtype=torch.long, device=x.device)
    # two real classes: targeted attacks aim at class 1 only (the padding logits are not targets)
    ctx = AttackContext(model=binary, threat=threat, device=x.device, seed=int(seed), batch_size=batch_size, num_classes=2,
                        dataset=dataset, probe=x[todo[:16]] if todo.numel() else x[:16])
    everyone = torch.arange(n, device=x.device)

    def select(idx: torch.Tensor) -> None:
        binary.group = idx.to(x.device)

    tests: list[BinarizationTest] = []
    for attack in attacks:
        test = BinarizationTest(attack=attack.name, config=dict(attack.config()), passed=[None] * n)
        t0 = time.perf_counter()
        reason = _applicable(attack, ctx) if todo.numel() else "no testable example"
        if reason is not None:
            test.status, test.note = "skipped", reason
        else:
            try:
                attack.setup(ctx)
                x_adv, _, _, fwd, bwd = _run_batches(attack, binary, x, zeros, threat, groups, seed=seed, positions=positions, before_batch=select)
                binary.group = everyone
                hit = ~threat.violations(x_adv[todo], x[todo]) & _majority_class1(binary, x_adv[todo], todo, draws)
                test.forward_passes, test.backward_passes = fwd + int(todo.numel()) * draws, bwd
                for i, ok in zip(todo.tolist(), hit.tolist()):
                    test.passed[i] = bool(ok)
            except A3BenchError:
                raise
            except Exception as e:  # an attack that cannot run on this binary model: recorded, not fatal
                test.status, test.note = "failed", one_line(e)
                test.passed = [None] * n
            finally:
                binary.group = everyone
        test.seconds = round(time.perf_counter() - t0, 3)
        test.finish(testable)
        compute["forward_passes"] += test.forward_passes
        compute["backward_passes"] += test.backward_passes
        tests.append(test)
        report("binarization", attack.name, len(tests), len(attacks))
    ran = [t for t in tests if t.status == "ran"]
    suite = None
    if ran:
        suite = BinarizationTest(attack="suite", note="an example passes when any attack that ran passes it",
                                 passed=[any(bool(t.passed[i]) for t in ran) if testable[i] else None for i in range(n)])
        suite.finish(testable)
    control = None
    if settings.n_control:
        control = BinarizationTest(attack="random-point", note=f"control: any of {settings.n_control} uniform points of the ball, no attack",
                                   passed=[bool(fit.control[i]) if testable[i] else None for i in range(n)])
        control.finish(testable)
    return testable, tests, suite, control


@dataclass
class Unbounded:
    """:func:`unconstrained_failures`' answer."""

    failed: torch.Tensor  # bool, one per index asked: still correctly classified at the unbounded eps
    eps: float
    forward_passes: int
    backward_passes: int


def unconstrained_failures(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
                           threat: ThreatModel, *, positions: torch.Tensor, seed: int = 0, batch_size: int = 256,
                           num_classes: int | None = None, dataset: str | None = None,
                           judge: DeployedModel | None = None) -> Unbounded:
    """Pintor et al.'s unconstrained attack failure for the examples ``idx`` (give those
    the bounded attack left robust: a success inside eps is one at every larger eps).

    Runs ``attack`` unchanged at :func:`unbounded_threat` and re-checks its points with a
    fresh forward pass; the attack is set up again for ``threat`` afterwards, so a
    cascade can call this between its own batches.
    """
    big = unbounded_threat(threat, x)
    failed = torch.zeros(idx.numel(), dtype=torch.bool)
    if idx.numel() == 0:
        return Unbounded(failed, big.eps, 0, 0)

    def context(t: ThreatModel) -> AttackContext:
        return AttackContext(model=model, threat=t, device=x.device, seed=int(seed), batch_size=batch_size,
                             num_classes=num_classes, dataset=dataset, probe=x[:16])

    try:
        attack.setup(context(big))
        xb, _, _, fwd, bwd = _run_batches(attack, model, x, y, big, _chunks(idx, batch_size), seed=seed, positions=positions)
    finally:
        attack.setup(context(threat))
    judge = judge or DeployedModel(model)
    failed = ~_confirmed(judge, xb[idx], x[idx], y[idx], big)
    return Unbounded(failed, big.eps, fwd + int(idx.numel()) * judge.draws, bwd)


def _indicators(model, judge: DeployedModel, x, y, threat, attacks, positions, seed, batch_size, settings: AuditSettings, dataset,
                report, compute) -> list[Indicators]:
    n = x.shape[0]
    verdicts = [judge.judge(xc, yc) for xc, yc in zip(torch.split(x, batch_size), torch.split(y, batch_size))]
    compute["forward_passes"] += n * judge.draws
    correct = torch.cat([~v.wrong for v in verdicts]) if verdicts else torch.zeros(0, dtype=torch.bool)
    todo = correct.nonzero().flatten()
    with torch.no_grad():
        num_classes = int(judge.forward(x[:1]).shape[1])
    ctx = AttackContext(model=model, threat=threat, device=x.device, seed=int(seed), batch_size=batch_size,
                        num_classes=num_classes, dataset=dataset, probe=x[:16])
    out: list[Indicators] = []
    for attack in attacks:
        ind = Indicators(attack=attack.name, unbounded_eps=unbounded_threat(threat, x).eps, attacked=correct.tolist(),
                         bounded_success=[None] * n, unconstrained_failure=[None] * n)
        t0 = time.perf_counter()
        reason = attack.applies_to(ctx) if todo.numel() else "no correctly classified example"
        if reason is not None:
            ind.status, ind.note = "skipped", reason
        else:
            try:
                attack.setup(ctx)
                with swapped([attack], "trace_loss", True):
                    x_adv, claimed, trace, fwd, bwd = _run_batches(attack, model, x, y, threat, _chunks(todo, batch_size),
                                                                   seed=seed, positions=positions)
                ok = _confirmed(judge, x_adv[todo], x[todo], y[todo], threat)
                ind.forward_passes, ind.backward_passes = fwd + len(todo) * judge.draws, bwd
                ind.bounded_success = _spread(ok, todo, n)
                if trace is not None:
                    silent, nonconv = loss_indicators(trace[:, todo.cpu()], claimed[todo], settings)
                    ind.silent_success = _spread(silent, todo, n)
                    ind.non_converging = None if nonconv is None else _spread(nonconv, todo, n)
                left = todo[~ok.to(todo.device)]
                unb = unconstrained_failures(attack, model, x, y, left, threat, positions=positions, seed=seed,
                                             batch_size=batch_size, num_classes=num_classes, dataset=dataset, judge=judge)
                ind.forward_passes += unb.forward_passes
                ind.backward_passes += unb.backward_passes
                failed = _spread(unb.failed, left, n)
                ind.unconstrained_failure = [bool(failed[i]) if c else None for i, c in enumerate(correct.tolist())]
            except A3BenchError:
                raise
            except Exception as e:
                ind.status, ind.note = "failed", one_line(e)
        ind.seconds = round(time.perf_counter() - t0, 3)
        compute["forward_passes"] += ind.forward_passes
        compute["backward_passes"] += ind.backward_passes
        out.append(ind)
        report("indicators", attack.name, len(out), len(attacks))
    return out


def _confirmed(judge: DeployedModel, x_adv, x, y, threat) -> torch.Tensor:
    """In the threat model and misclassified by the judge (the deployed model's fresh
    forward passes, by majority for a randomised model): the judge of ``a3bench attack``."""
    try:
        wrong = judge.judge(x_adv, y).wrong
    finally:
        judge.restore()
    return (wrong & ~threat.violations(x_adv, x)).cpu()


def _spread(values: torch.Tensor, idx: torch.Tensor, n: int) -> list[bool | None]:
    out: list[bool | None] = [None] * n
    for i, v in zip(idx.tolist(), values.tolist()):
        out[i] = bool(v)
    return out


# --------------------------------------------------------------------------- flags


def audit_flags(result: AuditResult, *, pass_threshold: float = PASS_THRESHOLD, indicator_threshold: float = INDICATOR_THRESHOLD) -> list[Flag]:
    """All the audit's flags: :func:`binarization_flags` + :func:`indicator_flags`. docs/diagnostics.md has each one."""
    return (binarization_flags(result.suite, result.binarization, pass_threshold=pass_threshold)
            + indicator_flags(result.indicators, threshold=indicator_threshold))


def binarization_flags(suite: BinarizationTest | None, tests: Sequence[BinarizationTest] = (), *,
                       pass_threshold: float = PASS_THRESHOLD) -> list[Flag]:
    """``binarization-test-failed`` (error) when the suite's pass rate is below ``pass_threshold``."""
    if suite is None or suite.pass_rate is None or suite.pass_rate >= pass_threshold:
        return []
    per = ", ".join(f"{b.attack} {b.pass_rate:.1f} %" for b in tests if b.pass_rate is not None)
    return [BINARIZATION_TEST_FAILED(
                 f"the attacks found a known adversarial example on {suite.pass_rate:.1f} % of {suite.n_testable} testable "
                 f"example(s) (< {pass_threshold:g} %; {per}): the attacks, not the model, stand between the "
                 "evaluation and a lower number; run attacks that are not fooled (bpda, square, eot)",
                 value=suite.pass_rate)]


_INDICATOR_FLAGS = (
    ("unconstrained_failure", UNCONSTRAINED_ATTACK_FAILURE,
     "could not find an adversarial example even with an unbounded eps: it cannot optimise on this model (masked gradients?)"),
    ("silent_success", SILENT_SUCCESS,
     "recorded successes although its loss never rose above the starting point: the loss does not drive the success"),
    ("non_converging", NON_CONVERGING_LOSS,
     "ended while its loss was still rising: run more iterations"),
)


def indicator_flags(indicators: Sequence[Indicators], *, threshold: float = INDICATOR_THRESHOLD) -> list[Flag]:
    """``unconstrained-attack-failure`` (error), ``silent-success`` and ``non-converging-loss``
    (warnings): each when more than ``threshold`` percent of the examples an attack was
    audited on trigger it. ``value``: the highest percentage over attacks."""
    flags: list[Flag] = []
    for attr, flag, what in _INDICATOR_FLAGS:
        hits = []
        for ind in indicators:
            count = ind.count(attr) if ind.status == "ran" else None
            if count and ind.n_attacked and 100.0 * count / ind.n_attacked > threshold:
                hits.append((ind.attack, count, ind.n_attacked))
        if hits:
            worst = max(100.0 * c / m for _, c, m in hits)
            per = ", ".join(f"{a} {c}/{m}" for a, c, m in hits)
            flags.append(flag(f"{per} example(s): the attack {what}", value=round(worst, 4)))
    return flags


# --------------------------------------------------------------------------- files


def run_audit(loaded_model, dataset, threat: ThreatModel, attacks: Sequence[Attack], *, n_examples: int | None = None,
              seed: int = 0, batch_size: int = 256, device: str | torch.device = "cpu", **kwargs) -> AuditResult:
    """:func:`audit` on the first ``n_examples`` of a dataset split (a LoadedModel or a bare
    module), prepared by the one evaluation set-up (:class:`~a3bench.eval.setup.Evaluation`)."""
    from a3bench.eval.setup import EvalOptions, Evaluation

    ev = Evaluation(loaded_model, dataset, EvalOptions(n_examples=n_examples, seed=seed, batch_size=batch_size, device=device))
    return audit_evaluation(ev, threat, attacks, **kwargs)


def audit_evaluation(ev, threat: ThreatModel, attacks: Sequence[Attack], *, n_examples: int | None = None, **kwargs) -> AuditResult:
    """:func:`audit` on the examples of a prepared evaluation (the first ``n_examples``),
    judged by its judge."""
    k = ev.n if n_examples is None else min(n_examples, ev.n)
    ev.detect_randomness()
    result = audit(ev.model, ev.x[:k], ev.y[:k], threat, attacks, positions=ev.positions[:k], seed=ev.seed, batch_size=ev.batch_size,
                   dataset=ev.info.name, name=getattr(ev.loaded, "name", None), judge=ev.deployed, **kwargs)
    # The weights audited, as a record names them: a report attaches the audit only to a record of these weights.
    result.model = {"spec": getattr(ev.loaded, "name", None), "sha256": ev.fingerprint}
    return result
