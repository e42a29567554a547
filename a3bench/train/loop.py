"""The training loop behind ``a3bench train``: standard, PGD-AT or TRADES, with or without A3.

Each epoch ends with clean and PGD-k accuracy on a fixed held-out subset (the first
``eval.n_examples`` test examples), a line in the metrics log, and an atomic
checkpoint carrying everything ``--resume`` needs to continue bit-for-bit.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from a3bench.attacks.pgd import PGD, default_step_size, pgd_loop
from a3bench.config import Config
from a3bench.errors import CheckpointError, ConfigError
from a3bench.models.a3 import a3_mode
from a3bench.models.checkpoint import load_checkpoint, save_checkpoint
from a3bench.models.registry import create_model
from a3bench.threat import ThreatModel


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float  # on the examples trained on (adversarial for AT), percent
    clean_acc: float  # held-out, percent
    pgd_acc: float  # held-out, PGD-k at the training eps, percent
    pgd_steps: int
    n_eval: int
    lr: float
    seconds: float
    infonce: float = 0.0
    ranking: float = 0.0
    attention_scales: list[float] | None = None  # the pre-softmax scales the model carried (AAS-AT)


@dataclass
class TrainResult:
    checkpoint: Path
    metrics_log: Path
    history: list[EpochMetrics] = field(default_factory=list)

    @property
    def final(self) -> EpochMetrics:
        return self.history[-1]


class TrainCallbacks:
    """Progress hooks; library code never prints. The CLI draws them with rich."""

    def on_epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def on_step(self, epoch: int, step: int, loss: float) -> None: ...

    def on_epoch_end(self, metrics: EpochMetrics) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available on this machine")
    return torch.device(name)


def metrics_log_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".metrics.jsonl")


def _lr_at(cfg: Config, step: int, total: int) -> float:
    base = cfg.train.lr
    if cfg.train.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    if cfg.train.schedule == "step":
        return base * (0.1 ** sum(step >= total * f for f in (0.5, 0.75)))
    return base


def _optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)


def craft_training_example(model, x, y, threat: ThreatModel, cfg: Config, generator: torch.Generator) -> torch.Tensor:
    """PGD-k against the attenuated model in its training state (stochastic A3 mask)."""
    steps = cfg.attack.steps
    step = cfg.attack.step_size or default_step_size(threat, steps)
    x0 = threat.random_start(x, generator=generator)
    if cfg.train.method == "trades":
        with torch.no_grad(), a3_mode(model, "attenuate"):
            p_clean = F.softmax(model(x), dim=1)

        def loss_fn(logits, _y):
            return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="none").sum(dim=1)
    else:
        loss_fn = None
    with a3_mode(model, "attenuate"):
        kwargs = {"loss_fn": loss_fn} if loss_fn is not None else {}
        out = pgd_loop(model, x, y, threat, x0, steps=steps, step_size=step, early_stop=False, **kwargs)
    return out.x_adv.detach()


@torch.no_grad()
def _clean_accuracy(model, x, y, batch_size) -> float:
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return 100.0 * correct / len(x)


def evaluate_heldout(model, data, threat: ThreatModel, steps: int, batch_size: int, seed: int) -> tuple[float, float]:
    """Clean and PGD-k accuracy (percent) of the deployed (attenuated, eval-mode) model."""
    was_training = model.training
    model.eval()
    x, y = data
    attack = PGD(steps=steps)
    robust = 0
    try:
        clean = _clean_accuracy(model, x, y, batch_size)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            out = attack(model, xb, yb, threat, seed=seed, indices=torch.arange(i, i + len(xb)))
            robust += int((~out.success).sum())
    finally:
        model.train(was_training)
    return clean, 100.0 * robust / len(x)


def refind_attention_scales(model, train_set, cfg: Config, epoch: int, device) -> list[float]:
    """AAS-AT (Jain & Dutta 2024, supplement Algorithm 1): the AAS search on ``aas_examples``
    training examples (a seeded draw per epoch) finds new per-block scales in [1e-7, 1],
    and the model's own scales are re-initialised with them.

    The search compares the model at candidate scales with the model as it is (its current
    scales), in eval mode; it draws from its own seeded generator, so the training RNG
    streams — and ``--resume`` — are untouched.
    """
    from dataclasses import replace

    from a3bench.attacks.scale_search import AAS_SEARCH, search_scales
    from a3bench.models.attention import attention_layers, set_trained_attention_scales, trained_scales_swapped

    seed = cfg.seed * 1000 + epoch + 7_777
    x, _ = next(iter(train_set.batches(cfg.train.aas_examples, shuffle=True, seed=seed, device=device)))
    was_training = model.training
    model.eval()
    try:
        search = replace(AAS_SEARCH, max_examples=None)
        found = search_scales(model, x, attention_layers(model), lambda s: trained_scales_swapped(model, s), search, seed)
    finally:
        model.train(was_training)
    set_trained_attention_scales(model, found.scales)
    return found.scales.tolist()


def build_model(cfg: Config, info) -> torch.nn.Module:
    c, h, _ = info.input_shape
    return create_model(
        cfg.model.arch,
        num_classes=info.num_classes,
        in_channels=c,
        input_size=h,
        a3=cfg.model.a3 if cfg.uses_a3 else None,
        mean=info.mean,
        std=info.std,
        options=cfg.model.options,
    )


def train(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    from a3bench.data import load_dataset

    cb = callbacks or TrainCallbacks()
    out = Path(out)
    log_path = metrics_log_path(out)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    train_set = load_dataset(cfg.dataset, "train", cfg.data_dir).first(cfg.train.n_train)
    test_set = load_dataset(cfg.dataset, "test", cfg.data_dir).first(cfg.eval.n_examples)
    heldout = test_set.tensors(device)
    model = build_model(cfg, train_set.info).to(device)
    if cfg.train.aas_every is not None:
        from a3bench.models.attention import attention_layers

        if not attention_layers(model):
            raise ConfigError(f"train.aas_every needs a model with attention layers; {cfg.model.arch} has none (try vit_small_p4)")
    optimizer = _optimizer(cfg, model)
    threat = ThreatModel(cfg.attack.norm, cfg.attack.eps)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    steps_per_epoch = math.ceil(len(train_set) / cfg.train.batch_size)
    total_steps = steps_per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        total_steps = min(total_steps, cfg.train.max_steps)
    start_epoch, global_step, history = 0, 0, []

    if resume and out.is_file():
        ck = load_checkpoint(out, device)
        state = ck.train_state
        if not state:
            raise CheckpointError(f"{out} has no training state to resume from")
        if state.get("config") != cfg.to_dict():
            raise ConfigError(f"--resume: {out} was trained with a different config; use the same config or a new --out")
        model.load_state_dict(ck.model.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        gen.set_state(state["rng_pgd"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"])
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        history = [EpochMetrics(**m) for m in state["history"]]
    elif not resume:
        log_path.unlink(missing_ok=True)

    for epoch in range(start_epoch, cfg.train.epochs):
        if global_step >= total_steps:
            break
        every = cfg.train.aas_every
        if every is not None and epoch > 0 and epoch % every == 0:
            refind_attention_scales(model, train_set, cfg, epoch, device)
        model.train()
        cb.on_epoch_start(epoch + 1, cfg.train.epochs, min(steps_per_epoch, total_steps - global_step))
        t0 = time.perf_counter()
        loss_sum = nce_sum = rank_sum = 0.0
        correct = seen = n_steps = 0
        for x, y in train_set.batches(cfg.train.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch, device=device):
            if global_step >= total_steps:
                break
            x_adv = None if cfg.train.method == "standard" else craft_training_example(model, x, y, threat, cfg, gen)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(cfg, global_step, total_steps)
            from a3bench.train.objectives import compute_loss

            parts = compute_loss(model, x, x_adv, y, cfg)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            if cfg.train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            optimizer.step()
            global_step += 1
            n_steps += 1
            loss_sum += float(parts.total.detach())
            nce_sum += parts.infonce
            rank_sum += parts.ranking
            correct += int((parts.logits.argmax(1) == y).sum())
            seen += len(y)
            cb.on_step(epoch + 1, n_steps, float(parts.total.detach()))
        clean, robust = evaluate_heldout(model, heldout, threat, cfg.eval.pgd_steps, cfg.eval.batch_size, cfg.seed)
        metrics = EpochMetrics(
            epoch=epoch + 1,
            train_loss=loss_sum / max(n_steps, 1),
            train_acc=100.0 * correct / max(seen, 1),
            clean_acc=clean,
            pgd_acc=robust,
            pgd_steps=cfg.eval.pgd_steps,
            n_eval=len(heldout[0]),
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
            infonce=nce_sum / max(n_steps, 1),
            ranking=rank_sum / max(n_steps, 1),
            attention_scales=_carried_scales(model),
        )
        history.append(metrics)
        _save(out, model, cfg, train_set.info.name, optimizer, gen, device, epoch + 1, global_step, history)
        with log_path.open("a") as f:
            f.write(json.dumps(asdict(metrics)) + "\n")
        cb.on_epoch_end(metrics)
    model.eval()
    return TrainResult(checkpoint=out, metrics_log=log_path, history=history)


def _carried_scales(model) -> list[float] | None:
    from a3bench.models.attention import trained_attention_scales

    return trained_attention_scales(model) or None


def _save(out, model, cfg, dataset, optimizer, gen, device, epoch, global_step, history) -> None:
    last = history[-1]
    meta = {
        "dataset": dataset,
        "train": cfg.to_dict(),
        "metrics": {
            "clean_acc": last.clean_acc,
            "pgd_acc": last.pgd_acc,
            "pgd_steps": last.pgd_steps,
            "eps": cfg.attack.eps,
            "norm": cfg.attack.norm,
            "n_examples": last.n_eval,
            "epochs": epoch,
        },
    }
    state = {
        "epoch": epoch,
        "global_step": global_step,
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_pgd": gen.get_state(),
        "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
        "config": cfg.to_dict(),
        "history": [asdict(m) for m in history],
    }
    save_checkpoint(out, model, meta, train_state=state)
