"""The training loop behind ``a3bench train``: standard, PGD-AT or TRADES, with or without A3.

Each epoch ends with clean and PGD-k accuracy on a fixed held-out subset (the first
``eval.n_examples`` test examples), a line in the metrics log, and an atomic
checkpoint carrying everything ``--resume`` needs to continue bit-for-bit.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from a3bench.attacks.pgd import PGD, default_step_size, pgd_loop
from a3bench.config import Config
from a3bench.device import resolve_device
from a3bench.errors import CheckpointError, ConfigError, DataError, TrainingError, one_line
from a3bench.models.a3 import a3_mode
from a3bench.models.checkpoint import load_checkpoint, save_checkpoint
from a3bench.models.family import DEFAULT_FAMILY, FAMILIES, TrainingPhase, family_of
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
    phase: str = "model"  # the phase's name, as the model family declares it ("model", CrossMax's "heads" ...)
    predictor_acc: dict[str, float] | None = None  # clean held-out accuracy of each CrossMax predictor (its heads phase)
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


def metrics_log_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".metrics.jsonl")


def _lr_at(base: float, schedule: str, step: int, total: int) -> float:
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    if schedule == "step":
        return base * (0.1 ** sum(step >= total * f for f in (0.5, 0.75)))
    return base


def _optimizer(kind: str, params, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def craft_training_example(model, x, y, threat: ThreatModel, cfg: Config, generator: torch.Generator) -> torch.Tensor:
    """PGD-k (or FGSM with a random start) against the attenuated model in its training
    state (stochastic A3 mask, fresh multi-resolution draws)."""
    if cfg.train.method == "fgsm":  # Wong et al. 2020: random start, one step of 1.25·eps
        steps, step = 1, cfg.attack.step_size or 1.25 * threat.eps
    else:
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


def build_model(cfg: Config, info, device: str | None = None) -> torch.nn.Module:
    """The model ``cfg`` describes for a dataset of ``info`` (``device="meta"``: its skeleton,
    which checks every size and option without allocating)."""
    c, h, w = info.input_shape
    if h != w:
        raise DataError(f"{info.name} holds {h}x{w} images; the architectures a3bench trains take square images")
    return create_model(
        cfg.model.arch,
        num_classes=info.num_classes,
        in_channels=c,
        input_size=h,
        a3=cfg.model.a3 if cfg.uses_a3 else None,
        mean=info.mean,
        std=info.std,
        options=cfg.model.options,
        device=device,
    )


@dataclass
class Phase:
    """One stage of training, as the model's family declares it (:mod:`a3bench.models.family`),
    with its settings from the config: what learns, with which optimizer, for how long.

    Ordinary models have one phase, ``model`` (the whole network). CrossMax models with
    heads have two: ``model`` trains the backbone through its own classifier alone, then
    ``heads`` trains the heads with CE on the frozen backbone.
    """

    hooks: TrainingPhase
    epochs: int
    total_steps: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    grad_clip: float | None
    params: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.hooks.name

    def make_optimizer(self) -> torch.optim.Optimizer:
        return _optimizer(self.optimizer, self.params, self.lr, self.momentum, self.weight_decay)

    def lr_at(self, step: int) -> float:
        return _lr_at(self.lr, self.schedule, step, self.total_steps)


def plan_phases(cfg: Config, model: torch.nn.Module, n_train: int) -> list[Phase]:
    """The model family's phases with their config sections' settings; a section the model
    has no phase for must not ask for epochs, and every phase must get some."""
    family = family_of(model)
    hooks = family.phases(model)
    used = {h.section for h in hooks}
    for h in hooks:
        if getattr(cfg, h.section).epochs < 1:
            raise ConfigError(f"this model has {h.name} ({family.description}): set {h.section}.epochs ≥ 1 so that they are trained")
    for other in [*FAMILIES, DEFAULT_FAMILY]:
        for section in other.sections:
            if section not in used and getattr(cfg, section).epochs > 0:
                raise ConfigError(f"{section}.epochs is for models with {section} ({other.description}); set it to 0")

    def steps(epochs: int, batch_size: int, cap: int | None) -> int:
        total = math.ceil(n_train / batch_size) * epochs
        return min(total, cap) if cap is not None else total

    phases = []
    for h in hooks:
        c = getattr(cfg, h.section)
        phases.append(Phase(h, c.epochs, steps(c.epochs, c.batch_size, c.max_steps), c.batch_size, c.optimizer, c.lr,
                            c.momentum, c.weight_decay, c.schedule, c.grad_clip, h.parameters(model)))
    return phases


@dataclass
class _Progress:
    """Where a run stands: which phase, how far into it, and overall (resume state)."""

    phase: int = 0
    phase_epoch: int = 0  # epochs done in this phase
    phase_step: int = 0  # optimizer steps done in this phase
    epoch: int = 0  # epochs done overall
    global_step: int = 0


def train(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool = False,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    from a3bench.data import dataset_info

    cb = callbacks or TrainCallbacks()
    out = Path(out)
    log_path = metrics_log_path(out)
    device = resolve_device(cfg.device)
    build_model(cfg, dataset_info(cfg.dataset, cfg.data_dir), device="meta")  # options and sizes, before the data
    check_output(out, log_path, resume=resume)  # before any work: nothing is lost, nothing is wasted
    with train_lock(out):  # a second run on the same --out is refused while this one runs
        return _train(cfg, out, log_path, device, resume, cb)


def train_lock(out: Path):
    """``<checkpoint stem>.train.lock`` beside the checkpoint (a3bench/results.py)."""
    from a3bench.results import OutputLock

    return OutputLock(None, error=TrainingError, lock=out.with_name(out.stem + ".train.lock"), target=out)


def _train(cfg: Config, out: Path, log_path: Path, device, resume: bool, cb: TrainCallbacks) -> TrainResult:
    from a3bench.data import load_dataset

    torch.manual_seed(cfg.seed)

    train_set = load_dataset(cfg.dataset, "train", cfg.data_dir).first(cfg.train.n_train)
    test_set = load_dataset(cfg.dataset, "test", cfg.data_dir).first(cfg.eval.n_examples)
    heldout = test_set.tensors(device)
    model = build_model(cfg, train_set.info).to(device)
    if cfg.train.aas_every is not None:
        from a3bench.models.attention import attention_layers

        if not attention_layers(model):
            raise ConfigError(f"train.aas_every needs a model with attention layers; {cfg.model.arch} has none (try vit_small_p4)")
    phases = plan_phases(cfg, model, len(train_set))
    threat = ThreatModel(cfg.attack.norm, cfg.attack.eps)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    progress, history, optimizer_state = _Progress(), [], None

    if resume and out.is_file():
        progress, history, optimizer_state = _restore(out, cfg, model, gen, device)

    for index in range(progress.phase, len(phases)):
        phase = phases[index]
        if index != progress.phase:  # a new phase starts from its first epoch with a new optimizer
            progress = _Progress(index, 0, 0, progress.epoch, progress.global_step)
            optimizer_state = None
        optimizer = phase.make_optimizer()
        if optimizer_state is not None:
            _load_optimizer_state(optimizer, optimizer_state, out)
            optimizer_state = None
        while progress.phase_epoch < phase.epochs and progress.phase_step < phase.total_steps:
            metrics = _train_epoch(cfg, model, phase, optimizer, progress, train_set, heldout, threat, gen, device, cb, out)
            history.append(metrics)
            _save(out, model, cfg, train_set.info, optimizer, gen, device, progress, history)
            _append_line(log_path, json.dumps(asdict(metrics)))
            cb.on_epoch_end(metrics)
    model.eval()
    return TrainResult(checkpoint=out, metrics_log=log_path, history=history)


def _append_line(path: Path, line: str) -> None:
    """Append to the metrics log without following a link out of the run folder."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def _load_optimizer_state(optimizer: torch.optim.Optimizer, state, out: Path) -> None:
    """The optimizer state of a checkpoint (``--resume``), checked like any other input:
    the same hyperparameters as the config's optimizer, and per-parameter buffers of the
    parameters' shapes, finite — else one CheckpointError, never a crash mid-epoch."""
    fresh = [{k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")} for g in optimizer.param_groups]
    damaged = f"--resume: the optimizer state in {out} is damaged"
    try:
        optimizer.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - an edited state can fail in any way
        raise CheckpointError(f"{damaged}: {type(e).__name__}: {one_line(e, 120)}") from None
    for group, expected in zip(optimizer.param_groups, fresh):
        for key, value in expected.items():
            if group.get(key) != value and not (isinstance(value, float) and isinstance(group.get(key), float)
                                                and math.isclose(group[key], value)):
                raise CheckpointError(f"{damaged}: {key} is {one_line(repr(group.get(key)), 40)}, the config says {value!r}")
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if not isinstance(value, torch.Tensor):
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                        raise CheckpointError(f"{damaged}: {key} is {one_line(repr(value), 40)}")
                    continue
                if value.dim() > 0 and tuple(value.shape) != tuple(p.shape):
                    raise CheckpointError(f"{damaged}: {key} has shape {tuple(value.shape)}, its parameter {tuple(p.shape)}")
                if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
                    raise CheckpointError(f"{damaged}: {key} holds values that are not finite numbers")


def check_output(out: Path, log_path: Path, *, resume: bool) -> None:
    """Refuse, before any work, an output that would lose a user's files or that cannot be
    written: a folder, a link (a run never writes through one, out of its folder), a
    device or FIFO, an existing run without ``--resume``, an unwritable place."""
    for path in (out, log_path):
        if path.is_symlink():
            raise TrainingError(f"{path} is a symbolic link: a run never writes through one (give the real path)")
        if path.is_dir():
            raise TrainingError(f"--out {path} is a folder; give a checkpoint file path such as {out / 'model.pt'}")
        if path.exists() and not path.is_file():
            raise TrainingError(f"{path} is not a regular file (a device, FIFO or socket): refusing to write there")
    if not resume:
        existing = [str(p) for p in (out, log_path) if p.exists() or p.is_symlink()]
        if existing:
            raise TrainingError(
                f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: pass --resume to continue "
                "that run, or another --out (nothing was changed)"
            )
    # Probe the nearest folder that exists (the checkpoint's folder is created at the first
    # save): a file written and removed there proves the run can be written, and leaves nothing.
    parent = out.parent
    existing_dir = parent
    while not existing_dir.exists() and existing_dir != existing_dir.parent:
        existing_dir = existing_dir.parent
    try:
        if not existing_dir.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(existing_dir))
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=existing_dir)
        os.close(fd)
        os.unlink(probe)
        if log_path.exists() and not os.access(log_path, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied", str(log_path))
    except NotADirectoryError:
        raise TrainingError(f"cannot write the run to {parent}: {existing_dir} is a file, not a folder") from None
    except OSError as e:
        raise TrainingError(f"cannot write the run to {parent}: {e.strerror or type(e).__name__}") from None


def _restore(out: Path, cfg: Config, model, gen, device) -> tuple["_Progress", list[EpochMetrics], dict]:
    """Load the training state of ``out`` into the model and generators (``--resume``);
    returns where training stands, the history and the optimizer's state."""
    ck = load_checkpoint(out, device)
    state = ck.train_state
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{out} has no training state to resume from")
    if state.get("config") != cfg.to_dict():
        raise ConfigError(f"--resume: {out} was trained with a different config; use the same config or a new --out")
    try:
        model.load_state_dict(ck.model.state_dict())
        optimizer_state = state["optimizer"]
        torch.set_rng_state(state["rng_cpu"])
        gen.set_state(state["rng_pgd"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"])
        epoch, step = int(state["epoch"]), int(state["global_step"])
        # checkpoints from before phases existed were all in the one phase
        progress = _Progress(int(state.get("phase", 0)), int(state.get("phase_epoch", epoch)),
                             int(state.get("phase_step", step)), epoch, step)
        history = [EpochMetrics(**m) for m in state["history"]]
    except Exception as e:  # noqa: BLE001 - an edited or damaged state can fail in any way
        raise CheckpointError(f"--resume: the training state in {out} is damaged: {type(e).__name__}: {one_line(e, 120)}") from None
    if not (0 <= epoch and 0 <= step and len(history) == epoch and 0 <= progress.phase_epoch <= epoch):
        raise CheckpointError(f"--resume: the training state in {out} is inconsistent (epoch {epoch}, {len(history)} epochs of history)")
    return progress, history, optimizer_state


def _train_epoch(cfg, model, phase, optimizer, progress, train_set, heldout, threat, gen, device, cb, out: Path) -> EpochMetrics:
    from a3bench.train.objectives import LossParts, compute_loss

    epoch = progress.epoch  # overall index: the shuffling seed never repeats across phases
    hooks = phase.hooks
    cb.on_epoch_start(epoch + 1, _total_epochs(cfg, model), min(math.ceil(len(train_set) / phase.batch_size), phase.total_steps - progress.phase_step))
    t0 = time.perf_counter()
    loss_sum = nce_sum = rank_sum = 0.0
    correct = seen = n_steps = 0
    every = cfg.train.aas_every
    if hooks.runs_objective and every is not None and progress.phase_epoch > 0 and progress.phase_epoch % every == 0:
        refind_attention_scales(model, train_set, cfg, epoch, device)  # AAS-AT
    with hooks.view(model):
        hooks.set_train_mode(model)
        for x, y in train_set.batches(phase.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch, device=device):
            if progress.phase_step >= phase.total_steps:
                break
            if len(y) < hooks.min_batch:
                continue
            if hooks.runs_objective:
                x_adv = None if cfg.train.method == "standard" else craft_training_example(model, x, y, threat, cfg, gen)
                parts = compute_loss(model, x, x_adv, y, cfg)
            else:
                own = hooks.loss(model, x, y)
                parts = LossParts(own.total, float(own.total.detach()), logits=own.logits)
            loss = float(parts.total.detach())
            if not math.isfinite(loss):
                raise _diverged(out, f"the loss is {loss}", epoch + 1, n_steps + 1)
            for group in optimizer.param_groups:
                group["lr"] = phase.lr_at(progress.phase_step)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            if phase.grad_clip is not None:
                norm = float(torch.nn.utils.clip_grad_norm_(phase.params, phase.grad_clip))
                if not math.isfinite(norm):
                    raise _diverged(out, f"the gradient norm is {norm}", epoch + 1, n_steps + 1)
            optimizer.step()
            progress.phase_step += 1
            progress.global_step += 1
            n_steps += 1
            loss_sum += loss
            nce_sum += parts.infonce
            rank_sum += parts.ranking
            correct += int((parts.logits.argmax(1) == y).sum())
            seen += len(y)
            cb.on_step(epoch + 1, n_steps, loss)
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise _diverged(out, "some weights are not finite", epoch + 1, n_steps)
        clean, robust = evaluate_heldout(model, heldout, threat, cfg.eval.pgd_steps, cfg.eval.batch_size, cfg.seed)
    progress.phase_epoch += 1
    progress.epoch += 1
    return EpochMetrics(
        epoch=progress.epoch,
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
        phase=phase.name,
        attention_scales=_carried_scales(model),
        **hooks.metrics(model, heldout, cfg.eval.batch_size),
    )


def _total_epochs(cfg: Config, model) -> int:
    return sum(getattr(cfg, h.section).epochs for h in family_of(model).phases(model))


def _carried_scales(model) -> list[float] | None:
    from a3bench.models.attention import trained_attention_scales

    return trained_attention_scales(model) or None


def _save(out, model, cfg, info, optimizer, gen, device, progress: _Progress, history) -> None:
    last = history[-1]
    meta = {
        "dataset": info.name,
        "classes": list(info.classes),  # what its labels meant: an image folder's order is its folders' sorted names
        "train": cfg.to_dict(),
        "metrics": {
            "clean_acc": last.clean_acc,
            "pgd_acc": last.pgd_acc,
            "pgd_steps": last.pgd_steps,
            "eps": cfg.attack.eps,
            "norm": cfg.attack.norm,
            "n_examples": last.n_eval,
            "epochs": progress.epoch,
        },
    }
    state = {
        "epoch": progress.epoch,
        "global_step": progress.global_step,
        "phase": progress.phase,
        "phase_epoch": progress.phase_epoch,
        "phase_step": progress.phase_step,
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_pgd": gen.get_state(),
        "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
        "config": cfg.to_dict(),
        "history": [asdict(m) for m in history],
    }
    save_checkpoint(out, model, meta, train_state=state)


def _diverged(out: Path, what: str, epoch: int, step: int) -> TrainingError:
    kept = f"the last good checkpoint is kept at {out}" if out.exists() else "nothing was saved"
    return TrainingError(f"training diverged at epoch {epoch}, step {step}: {what} (lower train.lr or set train.grad_clip); {kept}")
