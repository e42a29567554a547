"""The judge: what counts as a broken example, decided one way for every command.

- :class:`DeployedModel` snapshots the deployed state (eval mode, A3 modes) and restores it
  before every verdict, so an attack that switches modes cannot leak its state into it.
- :func:`recheck` checks everything an attack returns: inside the eps-ball and [0,1]
  (tolerance 1e-6; else :class:`~a3bench.errors.BudgetViolation`) and, for what it claims,
  misclassified by a fresh eval-mode fp32 forward pass of the deployed model.
- A randomised model is judged over R fresh draws (``draws``): an example counts as
  misclassified when the majority of the R draws misclassify it (ties count as correct),
  everywhere — clean pass, re-check, sweeps. The share of draws that still classify it
  correctly is kept per example: its mean is the expected accuracy over draws.
- A forward pass whose logits are not finite gives no prediction (``-1``): it never counts
  as correct, and the number of such examples is reported so a flag can say so.
- The model/dataset checks and the weights' fingerprint (resume identity) live here too.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from a3bench.errors import BudgetViolation, ModelSpecError, one_line

NO_PREDICTION = -1


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """Gradients w.r.t. inputs only: parameters stop requiring grad for the block."""
    params = list(model.parameters())
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, s in zip(params, saved):
            p.requires_grad_(s)


@contextlib.contextmanager
def users_model(what: str) -> Iterator[None]:
    """A user's model may raise anything in ``forward`` (ValueError, KeyError, SystemExit ...):
    outside an attack (which records the failure and goes on) that is one ModelSpecError line."""
    from a3bench.errors import A3BenchError

    try:
        yield
    except (A3BenchError, BudgetViolation, KeyboardInterrupt, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001
        raise ModelSpecError(f"the model raised during {what}: {type(e).__name__}: {one_line(e)}") from None


@dataclass
class Randomness:
    """Whether identical forward passes of a model disagree, and by how much."""

    randomised: bool
    spread: float  # the largest logit difference between two of the passes


def detect_randomness(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int = 5) -> Randomness:
    """AutoAttack's rule (``check_randomized``), the one a3bench uses everywhere: ``passes``
    forward passes of the same inputs; randomised when the number of correct predictions
    differs between passes or two L2-normalised outputs differ by more than 1e-4 (so a
    model whose float reductions wobble in the last bit is not taken for a random one)."""
    with torch.no_grad():
        outs = [model(x) for _ in range(passes)]
    correct = {int((o.argmax(1) == y).sum()) for o in outs}
    unit = [o / (o.flatten(1).norm(dim=1).view(-1, *([1] * (o.dim() - 1))) + 1e-10) for o in outs]
    diff = max(((a - b).flatten(1).norm(dim=1).max().item() for i, a in enumerate(unit) for b in unit[i + 1 :]), default=0.0)
    spread = max(((a - b).abs().nan_to_num(0.0).max().item() for i, a in enumerate(outs) for b in outs[i + 1 :]), default=0.0)
    return Randomness(len(correct) > 1 or diff > 1e-4, spread)


@dataclass
class Verdicts:
    """The deployed model's verdict on a batch."""

    pred: torch.Tensor  # int N: the label where judged correct, else the most frequent wrong class (NO_PREDICTION: no finite logits)
    correct_share: torch.Tensor  # float N: share of the draws that classified correctly (1 draw: 0 or 1)
    nonfinite: int  # examples whose logits were not finite in some draw

    @property
    def wrong(self) -> torch.Tensor:
        return self.correct_share < 0.5


class DeployedModel:
    """The model as deployed: eval mode and the A3 modes it had when the run started.

    ``draws`` > 1 judges a randomised model over that many fresh forward passes.
    """

    def __init__(self, model: nn.Module, draws: int = 1) -> None:
        from a3bench.models.a3 import a3_layers

        if draws < 1:
            raise ValueError("draws must be ≥ 1")
        self.model = model
        self.draws = int(draws)
        self.layers = a3_layers(model)
        self.modes = [layer.mode for layer in self.layers]

    def restore(self) -> None:
        self.model.eval()
        for layer, mode in zip(self.layers, self.modes):
            layer.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One fresh fp32 forward pass of the deployed model (logits)."""
        self.restore()
        with torch.no_grad():
            return self.model(x.float())

    def judge(self, x: torch.Tensor, y: torch.Tensor) -> Verdicts:
        """Predictions over ``draws`` fresh forward passes; see the module docstring."""
        n = x.shape[0]
        correct = torch.zeros(n, device=x.device)
        nonfinite = torch.zeros(n, dtype=torch.bool, device=x.device)
        wrong_votes = None  # per class: draws that predicted it, wrong predictions only
        for _ in range(self.draws):
            logits = self.forward(x)
            ok = torch.isfinite(logits).all(dim=1)
            pred = torch.where(ok, logits.argmax(dim=1), torch.full_like(y, NO_PREDICTION))
            nonfinite |= ~ok
            correct += (pred == y).float()
            if wrong_votes is None:
                wrong_votes = torch.zeros(n, logits.shape[1], device=x.device)
            wrong_votes += torch.zeros_like(wrong_votes).scatter_(1, pred.clamp_min(0)[:, None], 1.0) * (ok & (pred != y))[:, None]
        share = correct / self.draws
        wrong = share < 0.5  # misclassified by the majority of the draws; a tie counts as correct
        most_wrong = torch.where(wrong_votes.sum(dim=1) > 0, wrong_votes.argmax(dim=1), torch.full_like(y, NO_PREDICTION))
        return Verdicts(torch.where(wrong, most_wrong, y), share, int(nonfinite.sum()))


@dataclass
class Recheck:
    """The judge's verdict on one batch an attack returned."""

    broken: torch.Tensor  # bool N: counts as broken (in budget, misclassified by the deployed model)
    claimed: torch.Tensor  # bool N: the attack's own claim
    outside: torch.Tensor  # bool N: outside the threat model (only non-empty when not strict)
    pred: torch.Tensor  # int N: deployed prediction on x_adv where re-checked, NO_PREDICTION elsewhere
    correct_share: torch.Tensor | None  # float N (randomised models): share of draws still correct on x_adv
    forward_passes: int  # spent by the re-check
    nonfinite: int


def recheck(name: str, out, xb: torch.Tensor, yb: torch.Tensor, threat, deployed: DeployedModel, *, strict: bool = True) -> Recheck:
    """Check an :class:`~a3bench.attacks.base.AttackOutput` before it counts (DESIGN §3).

    Every x_adv must lie in the eps-ball and [0,1] (tolerance 1e-6): else
    :class:`BudgetViolation` (or, with ``strict=False``, the example counts as robust).
    Claimed successes of a deterministic model are re-checked by a fresh forward pass; for
    a randomised model every returned example is (its own draws are not the judge's).
    """
    x_adv = out.x_adv.detach()
    if x_adv.shape != xb.shape:
        raise BudgetViolation(f"{name} returned adversarial examples of shape {tuple(x_adv.shape)} for inputs {tuple(xb.shape)}")
    bad = threat.violations(x_adv, xb)
    if bad.any() and strict:
        worst = threat.distance(x_adv[bad], xb[bad]).max().item()
        raise BudgetViolation(f"{name} returned {int(bad.sum())} adversarial example(s) outside {threat.label} "
                              f"or [0,1] (largest distance {worst:.6g}): a bug in the attack, the result is void")
    claimed = out.success.to(xb.device).bool().reshape(-1)
    if claimed.shape[0] != xb.shape[0]:
        raise BudgetViolation(f"{name} returned {claimed.shape[0]} success flags for {xb.shape[0]} inputs")
    randomised = deployed.draws > 1
    check = ((claimed | randomised) & ~bad).nonzero().flatten()
    broken = torch.zeros_like(claimed)
    pred = torch.full_like(yb, NO_PREDICTION)
    share = torch.ones(xb.shape[0], device=xb.device) if randomised else None
    nonfinite = 0
    if check.numel():
        v = deployed.judge(x_adv[check], yb[check])
        pred[check] = v.pred
        broken[check] = v.wrong
        nonfinite = v.nonfinite
        if share is not None:
            share[check] = v.correct_share
    return Recheck(broken, claimed, bad, pred, share, int(check.numel()) * deployed.draws, nonfinite)


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the parameters and buffers: resume state must refer to the same weights."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        t = value.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_model_matches(model: nn.Module, x: torch.Tensor, num_classes: int, dataset: str) -> None:
    """A model built for another input shape or class count, or one that does not return
    logits, is a user error with one line, never a crash deep inside an attack."""
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(shape) != tuple(x.shape[1:]):
        raise ModelSpecError(f"model expects inputs of shape {tuple(shape)}, dataset {dataset} has {tuple(x.shape[1:])}: wrong --dataset?")
    try:
        with torch.no_grad():
            logits = model(x[:2])
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as e:  # noqa: BLE001 — a user's forward may raise anything, even SystemExit
        raise ModelSpecError(f"model cannot run on {dataset} inputs of shape {tuple(x.shape[1:])}: "
                             f"{type(e).__name__}: {one_line(e)}") from None
    if not isinstance(logits, torch.Tensor):
        raise ModelSpecError(f"model returns {type(logits).__name__}, not a tensor of logits")
    if logits.dim() != 2 or logits.shape[1] != num_classes or logits.shape[0] != min(2, x.shape[0]):
        raise ModelSpecError(f"model returns outputs of shape {tuple(logits.shape)}, expected (N, {num_classes}) logits for {dataset}")
    if not logits.is_floating_point():
        raise ModelSpecError(f"model returns {logits.dtype} outputs, not floating-point logits")


def as_loaded_model(loaded_model, dataset, batch_size: int):
    """The checks every runner makes on its arguments; a bare nn.Module becomes a LoadedModel."""
    from a3bench.data import ImageDataset
    from a3bench.errors import AttackError
    from a3bench.models.spec import LoadedModel

    if not isinstance(loaded_model, LoadedModel):
        if not isinstance(loaded_model, nn.Module):
            raise TypeError("loaded_model must be a LoadedModel or an nn.Module")
        loaded_model = LoadedModel(loaded_model, name=type(loaded_model).__name__.lower(), source="module", dataset=None)
    if not isinstance(dataset, ImageDataset):
        raise TypeError("dataset must be an a3bench.data.ImageDataset")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise AttackError(f"batch size must be an integer ≥ 1, got {batch_size!r}")
    return loaded_model
