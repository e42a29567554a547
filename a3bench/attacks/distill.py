"""``transfer:distill``: a surrogate distilled from the target's outputs, attacked with PGD,
judged on the target — the general form of "transfer from a model without the defense"
(Papernot et al., AsiaCCS 2017, for the surrogate trained on a model's answers; the
transfer evaluation of gradient-masking defenses, Athalye, Carlini & Wagner, ICML 2018).

Nothing about the defense is needed: only the target's outputs, on the dataset's
training images and on random perturbations of them inside the threat model (where the
attack will look). Soft labels when the target returns logits (softmax at temperature
``T``), its probabilities when it returns probabilities, or its top-1 labels
(``labels=hard``). The surrogate (default: the architecture a3bench uses for the
dataset's input size, ``smallcnn`` for 28×28, ``preact_resnet18`` otherwise; any
registered architecture with ``arch=``) is trained from a seeded initialisation, in a
seeded order, for a bounded budget: ``train_steps`` Adam steps of ``batch`` images, cut
short after ``seconds`` (the only non-deterministic stop; the record says which one
ended it). Every pass is counted: the target's forward passes for the labels go into the
attack's forward passes, with the surrogate's own.

Then PGD-K (``steps``, default 50) crafts on the surrogate; each iterate is judged by the
target, which also stops an example early once it is broken.

>>> attack = DistillTransfer(train_steps=1000)
>>> attack.setup(AttackContext(model, ThreatModel("Linf", 0.1), dataset="fmnist", seed=0))
>>> attack.budget.seconds, attack.budget.target_forward_passes, attack.budget.agreement
>>> out = attack(model, x, y, ThreatModel("Linf", 0.1), seed=0)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.attacks.base import AttackContext, AttackKind, AttackOutput
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import AttackSpec, int_option, loss_option, positive_option, register_attack, step_option
from a3bench.errors import AttackError
from a3bench.threat import ThreatModel
from a3bench.flags import TRANSFER_BEATS_WHITE_BOX

HOLDOUT = 512  # last training images: never trained on, used to measure agreement
LABELS = ("soft", "hard")


@dataclass
class DistillBudget:
    """What the distillation cost and how far it got (for the record)."""

    max_steps: int
    max_seconds: float
    batch: int
    arch: str
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str = "steps"  # "steps" | "seconds"
    labels: str = "soft"  # used: "soft" (softmax of logits) | "probabilities" | "hard"
    target_forward_passes: int = 0
    surrogate_forward_passes: int = 0
    surrogate_backward_passes: int = 0
    agreement: float | None = None  # top-1 agreement with the target on HOLDOUT held-out training images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_arch(input_shape: tuple[int, int, int]) -> str:
    return "smallcnn" if tuple(input_shape[1:]) == (28, 28) else "preact_resnet18"


def _looks_like_probabilities(out: torch.Tensor) -> bool:
    return bool(((out >= 0) & (out <= 1)).all()) and bool(torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-3))


def distill(target: nn.Module, train, threat: ThreatModel, *, arch: str | None = None, train_steps: int = 1000,
            seconds: float = 600.0, batch: int = 128, lr: float = 1e-3, labels: str = "soft", temperature: float = 1.0,
            seed: int = 0, device: torch.device | str = "cpu") -> tuple[nn.Module, DistillBudget]:
    """Train a surrogate on ``target``'s answers; returns it (eval mode, frozen) and its budget.

    ``train`` is an :class:`~a3bench.data.ImageDataset` (the train split). Half of every
    batch is clean images, half the same kind of images at a uniformly random point of
    their eps-ball. Same seed (and thread count), same surrogate — unless ``seconds``
    cut it short.
    """
    from a3bench.models import create_model

    if labels not in LABELS:
        raise AttackError(f"distillation labels must be one of {', '.join(LABELS)}, got {labels!r}")
    info = train.info
    arch = arch or default_arch(info.input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        surrogate = create_model(arch, num_classes=info.num_classes, in_channels=info.input_shape[0],
                                 input_size=info.input_shape[1], mean=info.mean, std=info.std).to(device)
    budget = DistillBudget(max_steps=train_steps, max_seconds=float(seconds), batch=batch, arch=arch, labels=labels)
    n_train = len(train) - HOLDOUT if len(train) > 2 * HOLDOUT else len(train)
    gen = torch.Generator().manual_seed(int(seed) * 7_919 + 17)
    opt = torch.optim.Adam(surrogate.parameters(), lr=lr)
    t0 = time.perf_counter()
    surrogate.train()
    for step in range(train_steps):
        if time.perf_counter() - t0 > seconds:
            budget.stopped_by = "seconds"
            break
        idx = torch.randint(n_train, (batch,), generator=gen)
        xb = train.images[idx].to(device=device, dtype=torch.float32).div_(255.0)
        half = batch // 2
        if threat.eps > 0 and half:
            xb[half:] = threat.random_start(xb[half:], generator=gen)
        with torch.no_grad():
            out = target(xb)
        budget.target_forward_passes += batch
        if labels == "hard":
            loss = F.cross_entropy(surrogate(xb), out.argmax(1))
        else:
            if _looks_like_probabilities(out):
                soft, budget.labels = out, "probabilities"
            else:
                soft = F.softmax(out / temperature, dim=1)
            log_p = F.log_softmax(surrogate(xb) / temperature, dim=1)
            loss = F.kl_div(log_p, soft, reduction="batchmean") * temperature**2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        budget.steps = step + 1
        budget.surrogate_forward_passes += batch
        budget.surrogate_backward_passes += batch
    budget.seconds = round(time.perf_counter() - t0, 3)
    surrogate.eval()
    for p in surrogate.parameters():
        p.requires_grad_(False)
    if n_train < len(train):
        xh = train.images[n_train:].to(device=device, dtype=torch.float32).div_(255.0)
        with torch.no_grad():
            budget.agreement = round(float((surrogate(xh).argmax(1) == target(xh).argmax(1)).float().mean()), 4)
        budget.target_forward_passes += len(xh)
        budget.surrogate_forward_passes += len(xh)
    return surrogate, budget


class DistillTransfer(PGD):
    """PGD-K on a surrogate distilled from the target's outputs, judged by the target.

    Args:
        steps: PGD iterations on the surrogate (50). restarts, loss, step_size: as PGD.
        train_steps: distillation steps (1000). seconds: wall-clock cap on them (600).
        arch: surrogate architecture (default by input size). labels: ``soft`` or ``hard``.
        batch, lr, temperature: distillation batch (128), Adam rate (1e-3), softmax temperature (1).

    Attributes:
        budget: the :class:`DistillBudget` of the last distillation (None before setup).
    """

    kind = AttackKind.TRANSFER
    reveals = TRANSFER_BEATS_WHITE_BOX

    def __init__(self, steps: int = 50, *, train_steps: int = 1000, seconds: float = 600.0, arch: str | None = None,
                 labels: str = "soft", batch: int = 128, lr: float = 1e-3, temperature: float = 1.0, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "transfer:distill"), **kw)
        if labels not in LABELS:
            raise AttackError(f"transfer:distill: labels must be one of {', '.join(LABELS)}, got {labels!r}")
        self.train_steps, self.seconds, self.arch, self.labels = train_steps, float(seconds), arch, labels
        self.batch, self.lr, self.temperature = batch, lr, temperature
        self.surrogate: nn.Module | None = None
        self.budget: DistillBudget | None = None
        self._key: tuple | None = None
        self._train = None
        self._unreported = (0, 0)

    def config(self) -> dict:
        return {**super().config(), "train_steps": self.train_steps, "seconds": self.seconds, "arch": self.arch,
                "labels": self.labels, "batch": self.batch, "lr": self.lr, "temperature": self.temperature}

    def max_passes(self) -> tuple[int, int, int]:
        """(forward, backward) passes per example at most (surrogate and judge each step),
        and the distillation's fixed forward passes (target and surrogate)."""
        fixed = self.train_steps * self.batch * 2 + HOLDOUT * 2
        return self.restarts * 2 * (self.steps + 1), self.restarts * self.steps, fixed

    def _train_split(self, ctx: AttackContext):
        from a3bench.data import load_dataset

        if self._train is None or self._train[0] != (ctx.dataset, ctx.data_dir):
            self._train = ((ctx.dataset, ctx.data_dir), load_dataset(ctx.dataset, "train", ctx.data_dir))
        return self._train[1]

    def applies_to(self, ctx: AttackContext) -> str | None:
        from a3bench.errors import A3BenchError

        if ctx.dataset is None:
            return "no dataset known: distillation needs the dataset's training images"
        try:
            self._train_split(ctx)
        except A3BenchError as e:
            return f"no training images to distil on: {e}"
        return None

    def setup(self, ctx: AttackContext) -> None:
        key = (id(ctx.model), ctx.seed, ctx.dataset, ctx.threat)
        if self._key == key and self.surrogate is not None:
            return
        self.surrogate, self.budget = distill(
            ctx.model, self._train_split(ctx), ctx.threat, arch=self.arch, train_steps=self.train_steps,
            seconds=self.seconds, batch=self.batch, lr=self.lr, labels=self.labels, temperature=self.temperature,
            seed=ctx.seed, device=ctx.device)
        self._key = key
        b = self.budget
        self._unreported = (b.target_forward_passes + b.surrogate_forward_passes, b.surrogate_backward_passes)

    def record_note(self) -> str | None:
        b = self.budget
        if b is None:
            return None
        d = b.to_dict()
        return "surrogate: " + ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, (int, float, str)))

    def grad_fn(self, model: nn.Module):
        from a3bench.attacks.pgd import surrogate_grad_fn

        if self.surrogate is None:
            raise RuntimeError("DistillTransfer.setup() was not called")
        return surrogate_grad_fn(model, self.surrogate, self.loss_fn)

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        out = super().run(model, x, y, threat, seed=seed, indices=indices)  # counts surrogate and judge each step
        # the distillation, once, with the first batch after it
        out.forward_passes += self._unreported[0]
        out.backward_passes += self._unreported[1]
        self._unreported = (0, 0)
        return out


OPTIONS = ("steps", "restarts", "loss", "step", "train_steps", "seconds", "arch", "labels", "batch", "lr", "temperature")


@register_attack("transfer:distill", pattern=r"transfer", arg_head="distill", options=OPTIONS,
                 example="transfer:distill:train_steps=3:steps=2:batch=8",
                 help="PGD-50 on a surrogate distilled from the target's outputs (training images and random perturbations; "
                      "options train_steps, seconds, arch, labels, steps)")
def distill_attack(sub: AttackSpec) -> DistillTransfer:
    """``transfer:distill[:KEY=VALUE...]`` → :class:`DistillTransfer`."""
    spec = sub
    labels = (sub.option("labels") or "soft").lower()
    if labels not in LABELS:
        raise AttackError(f"attack {spec.text!r}: labels must be one of {', '.join(LABELS)}")
    arch = sub.option("arch")
    if arch is not None:
        from a3bench.models.registry import model_entry

        try:
            model_entry(arch)
        except Exception as e:  # noqa: BLE001 — the registry's own one-line error
            raise AttackError(f"attack {spec.text!r}: {e}") from None
    return DistillTransfer(
        int_option(sub, "steps", 50), restarts=int_option(sub, "restarts", 1), loss=loss_option(sub), step_size=step_option(sub),
        train_steps=int_option(sub, "train_steps", 1000), seconds=positive_option(sub, "seconds", 600.0), arch=arch, labels=labels,
        batch=int_option(sub, "batch", 128), lr=positive_option(sub, "lr", 1e-3), temperature=positive_option(sub, "temperature", 1.0))
