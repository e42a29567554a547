"""The known-truth attacks of the masking corpus: what the literature used against each
defense (BPDA, EOT, logit rescaling, strong PGD with restarts, transfer), written here and
not in a3bench's suite, so that a3bench is measured against attacks it does not share.

``run_reference(model, x, y, eps, reference, ...)`` runs, as a worst-case cascade (each run
only on the examples every earlier one left robust), PGD with each loss of the entry's
:class:`~corpus.Reference`, ``restarts`` times, through its gradient estimator, then the
transfer attack if it has one. A randomised model is judged as a3bench judges it: an
example is misclassified when the majority of 10 fresh forward passes misclassify it
(ties count as correct); for it, each run keeps, per example, the iterate with the lowest
mean margin over the EOT draws and the judge decides once, at the end. Every adversarial
point is checked to lie in the eps-ball and in [0, 1].

Also ``naive_pgd20``: plain PGD-20 (CE, one draw per step, no BPDA), the evaluation a
defense's authors typically ran: the distance between it and the truth is the masking.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

DRAWS = 10  # a3bench's --draws default: the judge of a randomised model
MAX_BATCH = 2000  # examples × EOT draws per forward pass


@dataclass
class RunSummary:
    name: str
    broken: int  # examples this run broke that every earlier run left robust
    robust_after: int
    seconds: float


@dataclass
class ReferenceResult:
    n: int
    eps: float
    what: str
    clean_acc: float  # this judge's clean accuracy (%)
    robust_acc: float  # after the whole reference cascade (%)
    naive_pgd20_acc: float | None  # plain PGD-20, CE, no BPDA/EOT (%)
    clean_correct: list[bool]
    robust: list[bool]
    runs: list[RunSummary] = field(default_factory=list)
    forward_passes: int = 0
    backward_passes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Counter:
    def __init__(self) -> None:
        self.forward = 0
        self.backward = 0


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j: negative exactly when misclassified."""
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return logits.gather(1, y[:, None]).squeeze(1) - other


def loss_fn(name: str, logit_scale: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-example losses to maximise: ``ce`` (on logits / logit_scale) or ``cw`` (−margin)."""
    if name == "ce":
        return lambda z, y: F.cross_entropy(z / logit_scale, y, reduction="none")
    if name == "cw":
        return lambda z, y: -margin(z, y)
    raise ValueError(f"unknown loss {name!r}")


@contextlib.contextmanager
def straight_through(model: nn.Module, name: str | None) -> Iterator[None]:
    """BPDA: module ``name`` keeps its forward output and is the identity backward."""
    if name is None:
        yield
        return
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda _m, inputs, out: inputs[0] + (out - inputs[0]).detach())
    try:
        yield
    finally:
        handle.remove()


def judge_wrong(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, count: Counter) -> torch.Tensor:
    """Misclassified: by one pass (deterministic model), else by the majority of ``draws``."""
    wrong = torch.zeros(len(x), dtype=torch.long)
    with torch.no_grad():
        for s in range(0, len(x), MAX_BATCH // max(draws, 1) or 1):
            xb, yb = x[s : s + MAX_BATCH // draws], y[s : s + MAX_BATCH // draws]
            for _ in range(draws):
                wrong[s : s + len(xb)] += (model(xb).argmax(1) != yb).long()
                count.forward += len(xb)
    return wrong * 2 > draws


def _grad(model: nn.Module, xa: torch.Tensor, y: torch.Tensor, loss: Callable, eot: int, count: Counter):
    """Mean over ``eot`` draws of the loss gradient, and the mean margin over those draws."""
    xg = xa.detach().repeat(eot, 1, 1, 1).requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        value = loss(logits, y.repeat(eot)).sum()
        # a front end outside autograd leaves no path from the input at all: its gradient is zero
        (g,) = torch.autograd.grad(value, xg, allow_unused=True) if value.requires_grad else (None,)
    count.forward += len(xg)
    count.backward += len(xg)
    g = torch.zeros_like(xg) if g is None else g
    m = margin(logits.detach(), y.repeat(eot)).view(eot, -1).mean(0)
    return g.view(eot, *xa.shape).mean(0), m


def pgd(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int, loss: Callable,
        eot: int, draws: int, seed: int, count: Counter, constant_step: float | None = None) -> torch.Tensor:
    """Linf PGD from a random start; returns which examples are broken (judged on ``judge``).

    ``model`` gives the gradient (the target, BPDA-wrapped, or a surrogate), ``judge`` the
    verdict. Step size: cosine decay from eps/4 towards 0, or ``constant_step``. A deterministic
    judge stops an example once it is misclassified; a randomised one keeps, per example,
    the iterate of lowest mean margin and judges it once, by the majority of ``draws``.
    """
    g = torch.Generator().manual_seed(seed)
    xa = torch.clamp(x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps, 0, 1)
    best, best_m = xa.clone(), torch.full((len(x),), float("inf"))
    active = torch.ones(len(x), dtype=torch.bool)
    for t in range(steps + 1):
        idx = active.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        grad, m = _grad(model, xa[idx], y[idx], loss, eot, count)
        if model is not judge:  # a surrogate's margin says nothing: ask the target
            with torch.no_grad():
                m = margin(judge(xa[idx]), y[idx])
            count.forward += len(idx)
        better = m < best_m[idx]
        best[idx[better]], best_m[idx[better]] = xa[idx[better]], m[better]
        if draws == 1:
            active[idx[m < 0]] = False
        if t == steps:
            break
        alpha = constant_step if constant_step is not None else eps / 4 * 0.5 * (1 + math.cos(math.pi * t / steps))
        step = xa[idx] + alpha * grad.sign()
        xa[idx] = torch.clamp(x[idx] + torch.clamp(step - x[idx], -eps, eps), 0, 1)
    assert float((best - x).abs().max()) <= eps + 1e-6 and float(best.min()) >= 0 and float(best.max()) <= 1
    return judge_wrong(judge, best, y, draws, count)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def run_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, reference, *, randomised: bool,
                  seed: int = 0, surrogate: nn.Module | None = None, naive: bool = True,
                  progress: Callable[[str], None] = lambda _s: None) -> ReferenceResult:
    """The reference cascade of an entry (``reference``: :class:`corpus.Reference`) on (x, y)."""
    start = time.time()
    count = Counter()
    draws = DRAWS if randomised else 1
    torch.manual_seed(seed)
    clean_correct = ~judge_wrong(model, x, y, draws, count)
    robust = clean_correct.clone()
    chunk = max(1, MAX_BATCH // reference.eot)
    runs: list[RunSummary] = []

    def cascade(name: str, attack: Callable[[torch.Tensor], torch.Tensor]) -> None:
        t0 = time.time()
        idx = robust.nonzero().squeeze(1)
        broken = torch.zeros(len(idx), dtype=torch.bool)
        for sl in _chunks(len(idx), chunk):
            broken[sl] = attack(idx[sl])
        robust[idx[broken]] = False
        runs.append(RunSummary(name, int(broken.sum()), int(robust.sum()), round(time.time() - t0, 1)))
        progress(f"{name}: broke {int(broken.sum())}, {int(robust.sum())} robust")

    for r in range(reference.restarts):
        for loss_name in reference.losses:
            lf = loss_fn(loss_name, reference.logit_scale)

            def attack(ids, lf=lf, r=r, loss_name=loss_name):
                with straight_through(model, reference.bpda):
                    return pgd(model, model, x[ids], y[ids], eps, steps=reference.steps, loss=lf, eot=reference.eot,
                               draws=draws, seed=seed * 1000 + r * 10 + len(runs), count=count)

            cascade(f"pgd-{reference.steps}:{loss_name}:restart{r}", attack)
    if surrogate is not None:
        for loss_name in reference.losses:
            lf = loss_fn(loss_name, 1.0)
            cascade(f"transfer:{loss_name}", lambda ids, lf=lf: pgd(surrogate, model, x[ids], y[ids], eps, steps=reference.steps,
                                                                     loss=lf, eot=1, draws=draws, seed=seed + 7, count=count))
    naive_acc = None
    if naive:  # not part of the truth: what a plain evaluation would have said
        torch.manual_seed(seed + 1)
        idx = clean_correct.nonzero().squeeze(1)
        broken = torch.zeros(len(idx), dtype=torch.bool)
        for sl in _chunks(len(idx), MAX_BATCH):
            ids = idx[sl]
            broken[sl] = pgd(model, model, x[ids], y[ids], eps, steps=20, loss=loss_fn("ce", 1.0), eot=1, draws=draws,
                             seed=seed + 3, count=count, constant_step=2.5 * eps / 20)
        naive_acc = round(100 * (len(idx) - int(broken.sum())) / len(x), 2)
    n = len(x)
    return ReferenceResult(n=n, eps=eps, what=reference.what, clean_acc=round(100 * int(clean_correct.sum()) / n, 2),
                           robust_acc=round(100 * int(robust.sum()) / n, 2), naive_pgd20_acc=naive_acc,
                           clean_correct=clean_correct.tolist(), robust=robust.tolist(), runs=runs,
                           forward_passes=count.forward, backward_passes=count.backward,
                           seconds=round(time.time() - start, 1))
