"""The worst-case cascade (DESIGN §3): clean pass, then each attack on the examples
still robust; an example is robust only if it survives every attack.

Every adversarial example an attack returns is re-checked before it counts: inside
the eps-ball and [0,1] (tolerance 1e-6; a violation raises
:class:`~a3bench.errors.BudgetViolation`), and each one the attack claims to have broken
(``AttackOutput.success``) must be misclassified by a fresh eval-mode fp32 forward pass
of the deployed model (else the example stays robust). An example the attack does not
claim stays robust, so the forward pass is spent only on what would count.

>>> from a3bench.eval.runner import evaluate
>>> res = evaluate(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist", "test"),
...                ThreatModel("Linf", 0.1), "pgd-20,apgd-ce", n_examples=1000, out="r.json")
>>> res.record.robust_acc, res.record.robust_acc_ci
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackContext
from a3bench.errors import A3BenchError, AttackError, BudgetViolation, ModelSpecError, ResultError, one_line
from a3bench.eval import diagnostics
from a3bench.eval.record import AttackRecord, Flag, ResultRecord, outcomes_path, wilson_interval, write_record
from a3bench.io import write_json_atomic
from a3bench.threat import ThreatModel, format_eps

STATE_VERSION = 1
SANITY_EXAMPLES = 100  # AutoAttack's checks run on one batch; 100 examples detect the same and cost little


# --------------------------------------------------------------------------- public types


@dataclass
class ProgressEvent:
    """What the runner reports to its ``progress`` callback (the CLI draws it)."""

    stage: str  # "clean" | "attack-start" | "batch" | "attack-end" | "skipped" | "failed" | "done"
    attack: str | None
    attack_index: int  # 0-based position in the cascade (-1 for the clean pass)
    n_attacks: int
    done: int  # examples of this stage processed so far
    total: int  # examples this stage processes
    robust: int  # examples robust right now (of n)
    n: int
    forward_passes: int = 0  # this stage so far (summed over examples): iterations × examples
    note: str | None = None


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class Outcomes:
    """Per example, in evaluation order (written to ``<stem>.outcomes.json``)."""

    indices: list[int]  # positions in the dataset's test split
    labels: list[int]
    clean_pred: list[int]
    clean_correct: list[bool]
    broken_by: list[str | None]  # "clean" if misclassified without attack; None if robust
    adv_pred: list[int | None]  # prediction on the adversarial example that broke it
    adv_distance: list[float | None]  # its distance to x in the threat model's norm

    @property
    def robust(self) -> list[bool]:
        return [b is None for b in self.broken_by]

    def to_dict(self) -> dict:
        return {**asdict(self), "robust": self.robust}

    @classmethod
    def from_dict(cls, d: dict) -> "Outcomes":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass
class EvaluationResult:
    record: ResultRecord
    outcomes: Outcomes
    path: Path | None = None  # where the record was written


# --------------------------------------------------------------------------- helpers


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


class DeployedModel:
    """Snapshot of the deployed state (eval mode, A3 modes) to restore before each re-check,
    so an attack that switches modes (mode-transfer) cannot leak its state into the verdict."""

    def __init__(self, model: nn.Module) -> None:
        from a3bench.models.a3 import a3_layers

        self.model = model
        self.layers = a3_layers(model)
        self.modes = [layer.mode for layer in self.layers]

    def restore(self) -> None:
        self.model.eval()
        for layer, mode in zip(self.layers, self.modes):
            layer.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.restore()
        with torch.no_grad():
            return self.model(x.float())


_Deployed = DeployedModel  # the name a3bench.eval.sweep imports


@dataclass
class Recheck:
    """The runner's verdict on one batch an attack returned."""

    broken: torch.Tensor  # bool N: counts as broken (claimed, in budget, misclassified by the deployed model)
    claimed: torch.Tensor  # bool N: the attack's own claim
    outside: torch.Tensor  # bool N: outside the threat model (only non-empty when not strict)
    pred: torch.Tensor  # int N: deployed prediction on x_adv where re-checked, -1 elsewhere
    forward_passes: int  # spent by the re-check


def recheck(name: str, out, xb: torch.Tensor, yb: torch.Tensor, threat: ThreatModel, deployed: DeployedModel, *, strict: bool = True) -> Recheck:
    """Check an :class:`AttackOutput` before it counts (DESIGN §3).

    Every x_adv must lie in the eps-ball and [0,1] (tolerance 1e-6): else
    :class:`BudgetViolation` (or, with ``strict=False``, the example counts as robust).
    Every claimed success must be misclassified by a fresh eval-mode fp32 forward pass
    of the deployed model; unclaimed examples stay robust without a forward pass.
    """
    x_adv = out.x_adv.detach()
    if x_adv.shape != xb.shape:
        raise BudgetViolation(f"{name} returned adversarial examples of shape {tuple(x_adv.shape)} for inputs {tuple(xb.shape)}")
    bad = threat.violations(x_adv, xb)
    if bad.any() and strict:
        worst = threat.distance(x_adv[bad], xb[bad]).max().item()
        raise BudgetViolation(f"{name} returned {int(bad.sum())} adversarial example(s) outside {threat.label} "
                              f"or [0,1] (largest distance {worst:.6g}): a bug in the attack, the result is void")
    claimed = out.success.to(xb.device).bool()
    check = (claimed & ~bad).nonzero().flatten()
    broken = torch.zeros_like(claimed)
    pred = torch.full_like(yb, -1)
    if check.numel():
        pred[check] = deployed.forward(x_adv[check]).argmax(1)
        broken[check] = pred[check] != yb[check]
    return Recheck(broken, claimed, bad, pred, int(check.numel()))


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


def _git_sha() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    sha = out.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return sha + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(device: torch.device) -> dict[str, Any]:
    from importlib import metadata

    from a3bench import __version__

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dev = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(device)})"
    return {
        "a3bench": __version__,
        "torch": torch.__version__,
        "pyautoattack": version("pyautoattack"),
        "python": platform.python_version(),
        "git_sha": _git_sha(),
        "device": dev,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "command": " ".join(sys.argv),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AttackError(f"unknown device {device!r} (valid: auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AttackError("--device cuda asked for, but no CUDA device is available")
    return dev


def check_model_matches(model: nn.Module, x: torch.Tensor, num_classes: int, dataset: str) -> None:
    """A model built for another input shape or class count is a user error, not a crash."""
    shape = getattr(model, "input_shape", None)
    if shape is not None and tuple(shape) != tuple(x.shape[1:]):
        raise ModelSpecError(f"model expects inputs of shape {tuple(shape)}, dataset {dataset} has {tuple(x.shape[1:])}: wrong --dataset?")
    try:
        with torch.no_grad():
            logits = model(x[:1])
    except RuntimeError as e:
        raise ModelSpecError(f"model cannot run on {dataset} inputs of shape {tuple(x.shape[1:])}: {one_line(e)}") from None
    if logits.dim() != 2 or logits.shape[1] != num_classes:
        raise ModelSpecError(f"model returns outputs of shape {tuple(logits.shape)}, expected (N, {num_classes}) logits for {dataset}")


def _as_plan(attacks, suite: str | None):
    from a3bench.attacks.registry import AttackPlan, resolve

    if isinstance(attacks, AttackPlan):
        return attacks
    if attacks is None or isinstance(attacks, str) or (isinstance(attacks, (list, tuple)) and all(isinstance(a, str) for a in attacks)):
        return resolve(suite=suite, attacks=attacks)
    built = list(attacks)
    if not all(isinstance(a, Attack) for a in built):
        raise TypeError("attacks must be names, an AttackPlan or Attack objects")
    return AttackPlan(names=[a.name for a in built], attacks=built, suite=suite)


def _stamp(a: Attack) -> dict:
    return {"name": a.name, "type": type(a).__name__, "config": a.config(), "group": a.group}


# --------------------------------------------------------------------------- resume state


@dataclass
class _State:
    identity: dict
    clean_pred: list[int]
    broken_by: list[str | None]
    adv_pred: list[int | None]
    adv_distance: list[float | None]
    finished: list[dict] = field(default_factory=list)  # AttackRecord dicts, in cascade order
    current: dict | None = None  # {"index", "todo", "batches_done", "record", "unconfirmed"}
    flags: list[dict] = field(default_factory=list)
    unconfirmed: dict[str, int] = field(default_factory=dict)
    aa_warnings: list[str] = field(default_factory=list)
    violations: dict[str, int] = field(default_factory=dict)  # only when not strict
    state_version: int = STATE_VERSION

    def save(self, path: Path | None) -> None:
        if path is not None:
            write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: Path, identity: dict) -> "_State":
        try:
            data = json.loads(path.read_text())
            state = cls(**data)
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise ResultError(f"resume state {path} is unreadable ({e}); delete it to start over") from None
        if state.state_version != STATE_VERSION:
            raise ResultError(f"resume state {path} has version {state.state_version}, not {STATE_VERSION}; delete it to start over")
        diff = [k for k in sorted(set(identity) | set(state.identity)) if identity.get(k) != state.identity.get(k)]
        if diff:
            raise ResultError(f"cannot resume from {path}: it was made with a different {', '.join(diff)}; "
                              "rerun without --resume (or with the same settings)")
        return state


def check_inputs(loaded_model, dataset, batch_size: int):
    """The checks every runner makes on its arguments; a bare nn.Module becomes a LoadedModel."""
    from a3bench.data import ImageDataset
    from a3bench.models.spec import LoadedModel

    if not isinstance(loaded_model, LoadedModel):
        if not isinstance(loaded_model, nn.Module):
            raise TypeError("loaded_model must be a LoadedModel or an nn.Module")
        loaded_model = LoadedModel(loaded_model, name=type(loaded_model).__name__.lower(), source="module", dataset=None)
    if not isinstance(dataset, ImageDataset):
        raise TypeError("dataset must be an a3bench.data.ImageDataset")
    if batch_size < 1:
        raise AttackError(f"batch size must be ≥ 1, got {batch_size}")
    return loaded_model


def state_path(record_path: str | Path) -> Path:
    p = Path(record_path)
    return p.with_name(p.stem + ".state.json")


# --------------------------------------------------------------------------- the runner


def evaluate(
    loaded_model,
    dataset,
    threat: ThreatModel,
    attacks=None,
    *,
    suite: str | None = None,
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device | None = "cpu",
    out: str | Path | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    strict: bool = True,
    spec: str | None = None,
) -> EvaluationResult:
    """Run the worst-case cascade and build the result record.

    Args:
        loaded_model: a :class:`~a3bench.models.LoadedModel` or a bare ``nn.Module`` on [0,1] inputs.
        dataset: an :class:`~a3bench.data.ImageDataset` (the test split); the first
            ``n_examples`` are evaluated (all when None).
        threat: norm and eps. attacks: names (``"pgd-20,autoattack"`` or a list), an
            :class:`~a3bench.attacks.registry.AttackPlan`, or Attack objects; None with
            ``suite`` None means suite ``quick``.
        seed: every random choice derives from it. batch_size: examples per attack call
            (AutoAttack's outcome depends on it, as in AutoAttack itself).
        out: record path; the outcomes (``<stem>.outcomes.json``) and, while running, the
            resume state (``<stem>.state.json``, written atomically after every batch) sit beside it.
        resume: continue from the state file at ``out`` (refused if anything differs).
        progress: called with :class:`ProgressEvent`; raising in it (KeyboardInterrupt) stops the run, the state stays.
        strict: a perturbation outside the threat model raises BudgetViolation (default);
            with False it only counts as robust and flags the record unreliable.
        spec: the --model SPEC as typed (for the record).
    """
    from a3bench.models.a3 import a3_summary, has_a3

    loaded_model = check_inputs(loaded_model, dataset, batch_size)
    if resume and out is None:
        raise AttackError("--resume needs --out (the state file sits beside the record)")
    plan = _as_plan(attacks, suite)
    dev = resolve_device(device)
    model = loaded_model.model.to(dev).eval()
    data = dataset.first(n_examples)
    n = len(data)
    x, y = data.tensors(dev)
    # Positions in the test split: per-example seeds and outcomes refer to them, so a
    # subset (or a shard) gives each example the same randomness as the full set.
    positions = getattr(data, "positions", None)
    positions = positions.clone() if positions is not None else torch.arange(n)
    info = data.info
    check_model_matches(model, x, info.num_classes, info.name)

    out_path = Path(out) if out is not None else None
    spath = state_path(out_path) if out_path is not None else None
    identity = {
        "model": model_fingerprint(model),
        "dataset": info.name,
        "n_examples": n,
        "positions": hashlib.sha256(positions.numpy().astype("int64").tobytes()).hexdigest()[:16],
        "norm": threat.norm.value,
        "eps": threat.eps,
        "attacks": [_stamp(a) for a in plan.attacks],
        "seed": int(seed),
        "batch_size": int(batch_size),
    }
    identity = json.loads(json.dumps(identity))  # as it will read back from disk (tuples → lists)
    n_att = len(plan.attacks)

    def report(stage, attack=None, index=-1, done=0, total=0, robust=0, fwd=0, note=None):
        if progress is not None:
            progress(ProgressEvent(stage, attack, index, n_att, done, total, robust, n, fwd, note))

    t_start = time.perf_counter()
    deployed = DeployedModel(model)
    from a3bench.attacks.autoattack import AA_LOGGER, WarningCollector

    aa_log = logging.getLogger(AA_LOGGER)

    collector = WarningCollector()
    aa_log.addHandler(collector)  # pyautoattack's warnings become flags, not stderr noise
    try:
        with frozen_parameters(model):
            state = None
            if resume and spath is not None and spath.is_file():
                state = _State.load(spath, identity)
            if state is None:
                report("clean", total=n)
                preds, correct = [], 0
                for s in range(0, n, batch_size):
                    preds.append(deployed.forward(x[s : s + batch_size]).argmax(1))
                    correct += int((preds[-1] == y[s : s + batch_size]).sum())
                    report("clean", done=min(n, s + batch_size), total=n, robust=correct)
                clean_pred = torch.cat(preds).tolist()
                state = _State(
                    identity=identity,
                    clean_pred=clean_pred,
                    broken_by=[None if p == t else "clean" for p, t in zip(clean_pred, y.tolist())],
                    adv_pred=[None] * n,
                    adv_distance=[None] * n,
                )
                check_n = min(n, batch_size, SANITY_EXAMPLES)
                # randomness is handled either way: by the suite, or by the EOT attack added below
                state.flags = [asdict(f) for f in diagnostics.sanity_flags(model, x[:check_n], y[:check_n], randomized_ok=True)]
                deployed.restore()
                state.save(spath)
            collector.messages = list(state.aa_warnings)
            if any(f["name"] == "randomized-outputs" for f in state.flags) and not _handles_randomness(plan.attacks):
                # A randomised model is attacked with EOT too, without being asked (DESIGN §3).
                from a3bench.attacks.adaptive import EOTPGD

                plan.attacks = [*plan.attacks, EOTPGD(20, samples=10, name="eot-pgd-20:n=10")]
                n_att += 1
            ctx = AttackContext(model=model, threat=threat, device=dev, seed=int(seed), batch_size=batch_size,
                                num_classes=info.num_classes, dataset=info.name, loaded=loaded_model, probe=x[:16])
            for i, attack in enumerate(plan.attacks):
                if i < len(state.finished):
                    continue
                _run_attack(i, attack, ctx, state, spath, x, y, positions, deployed, report, strict)
                state.aa_warnings = list(collector.messages)
                state.save(spath)
            probe_flags, probe_passes = diagnostics.convergence_probe(
                plan.attacks, model, x, y, positions, [b is None for b in state.broken_by], threat, int(seed), deployed)
    finally:
        aa_log.removeHandler(collector)
        deployed.restore()

    seconds_total = time.perf_counter() - t_start
    per_attack = [AttackRecord(**r) for r in state.finished]
    outcomes = Outcomes(
        indices=positions.tolist(),
        labels=y.tolist(),
        clean_pred=state.clean_pred,
        clean_correct=[p == t for p, t in zip(state.clean_pred, y.tolist())],
        broken_by=state.broken_by,
        adv_pred=state.adv_pred,
        adv_distance=state.adv_distance,
    )
    flags = [Flag(**f) for f in state.flags]
    flags += diagnostics.apgd_warning_flags(state.aa_warnings)
    flags += diagnostics.black_box_flags(per_attack, n)
    flags += diagnostics.unconfirmed_flags(per_attack, state.unconfirmed)
    flags += diagnostics.budget_flags(state.violations)
    flags += diagnostics.failed_flags(per_attack)
    flags += diagnostics.transfer_flags(per_attack, n)
    flags += diagnostics.adaptive_flags(per_attack, n)
    flags += diagnostics.convergence_flags(plan.attacks, per_attack, n) + probe_flags
    record = _build_record(loaded_model, model, info.name, threat, plan, per_attack, outcomes, flags, seed, n,
                           seconds_total, dev, spec, a3_summary(model) if has_a3(model) else None, identity["model"])
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        opath = outcomes_path(out_path)
        record.outcomes_file = opath.name
        write_json_atomic(opath, outcomes.to_dict())
        write_record(out_path, record)
        if spath is not None:
            spath.unlink(missing_ok=True)
    report("done", robust=sum(outcomes.robust), total=n)
    return EvaluationResult(record, outcomes, out_path)


def _run_attack(i, attack: Attack, ctx: AttackContext, state: _State, spath, x, y, positions, deployed: DeployedModel, report, strict: bool) -> None:
    n = x.shape[0]
    threat, bs = ctx.threat, ctx.batch_size
    robust_now = lambda: sum(b is None for b in state.broken_by)  # noqa: E731
    reason = attack.applies_to(ctx)
    if reason:
        rec = AttackRecord(attack.name, 100.0 * robust_now() / n if n else None, status="skipped", note=reason,
                           group=attack.group, config=attack.config())
        state.finished.append(asdict(rec))
        state.current = None
        state.save(spath)
        report("skipped", attack.name, i, robust=robust_now(), note=reason)
        return
    cur = state.current if state.current and state.current.get("index") == i else None
    if cur is None:
        todo = [k for k in range(n) if state.broken_by[k] is None]
        rec = AttackRecord(attack.name, None, n_attacked=len(todo), group=attack.group, config=attack.config())
        cur = {"index": i, "todo": todo, "batches_done": 0, "record": asdict(rec), "unconfirmed": 0}
        state.current = cur
    rec = cur["record"]
    todo = cur["todo"]
    report("attack-start", attack.name, i, done=min(len(todo), cur["batches_done"] * bs), total=len(todo), robust=robust_now(), fwd=rec["forward_passes"])
    n_batches = (len(todo) + bs - 1) // bs
    for b in range(cur["batches_done"], n_batches):
        idx_list = todo[b * bs : (b + 1) * bs]
        idx = torch.tensor(idx_list, dtype=torch.long, device=x.device)
        xb, yb = x[idx], y[idx]
        t0 = time.perf_counter()
        try:
            if b == cur["batches_done"]:
                attack.setup(ctx)
            out = attack(ctx.model, xb, yb, threat, seed=ctx.seed, indices=positions[idx.cpu()])
        except (A3BenchError, BudgetViolation, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 — one attack that cannot handle a model must not end a long run
            # what it broke in earlier batches stands (valid adversarial examples); the rest
            # of its share goes unattacked, and the attack-failed flag says so
            rec["status"] = "failed"
            rec["note"] = f"failed after {b} of {n_batches} batch(es): {type(e).__name__}: {one_line(e)}"
            break
        rc = recheck(attack.name, out, xb, yb, threat, deployed, strict=strict)
        if rc.outside.any():
            state.violations[attack.name] = state.violations.get(attack.name, 0) + int(rc.outside.sum())
        broken, pred = rc.broken, rc.pred
        cur["unconfirmed"] += int((rc.claimed & ~rc.outside & ~broken).sum())
        dist = threat.distance(out.x_adv.detach(), xb)
        for j in broken.nonzero().flatten().tolist():
            k = idx_list[j]
            state.broken_by[k] = attack.name
            state.adv_pred[k] = int(pred[j])
            state.adv_distance[k] = float(dist[j])
        rec["broken"] += int(broken.sum())
        rec["forward_passes"] += int(out.forward_passes) + rc.forward_passes  # + the re-check
        rec["backward_passes"] += int(out.backward_passes)
        rec["seconds"] += time.perf_counter() - t0
        cur["batches_done"] = b + 1
        state.save(spath)
        report("batch", attack.name, i, done=min(len(todo), (b + 1) * bs), total=len(todo), robust=robust_now(), fwd=rec["forward_passes"])
    rec["robust_acc"] = 100.0 * robust_now() / n if n else None
    rec["seconds"] = round(rec["seconds"], 3)
    if cur["unconfirmed"]:
        state.unconfirmed[attack.name] = cur["unconfirmed"]
        unconfirmed = f"{cur['unconfirmed']} claimed success(es) not confirmed by the re-check"
        rec["note"] = f"{rec['note']}; {unconfirmed}" if rec["note"] else unconfirmed
    state.finished.append(rec)
    state.current = None
    state.save(spath)  # before reporting: a kill in the callback must not lose a finished attack
    if rec["status"] == "failed":
        report("failed", attack.name, i, robust=robust_now(), note=rec["note"])
        return
    report("attack-end", attack.name, i, done=len(todo), total=len(todo), robust=robust_now(), fwd=rec["forward_passes"])


def _handles_randomness(attacks) -> bool:
    return any(getattr(a, "version", None) == "rand" or "eot" in a.name for a in attacks)


def _build_record(loaded, model, dataset, threat, plan, per_attack, outcomes, flags, seed, n, seconds, dev, spec, a3, fingerprint) -> ResultRecord:
    card = loaded.card or {}
    meta = loaded.meta or {}
    n_clean = sum(outcomes.clean_correct)
    n_robust = sum(outcomes.robust)
    pct = lambda k: round(100.0 * k / n, 4) if n else 0.0  # noqa: E731
    lo, hi = wilson_interval(n_robust, n)
    # autoattack_acc: AutoAttack's own number, known when its components ran first.
    aa_acc = None
    ran = [r for r in per_attack if r.status == "ran"]
    for group in ("autoattack", "autoattack-rand"):
        k = 0
        while k < len(ran) and ran[k].group == group:
            k += 1
        if k and k == sum(1 for r in per_attack if r.group == group) and aa_acc is None:
            aa_acc = round(ran[k - 1].robust_acc, 4)
    fwd = sum(r.forward_passes for r in per_attack) + n
    bwd = sum(r.backward_passes for r in per_attack)
    verdict, reason = diagnostics.verdict(flags)
    reported = card.get("reported")
    for r in per_attack:
        if r.robust_acc is not None:
            r.robust_acc = round(r.robust_acc, 4)
    return ResultRecord(
        name=str(card.get("name") or loaded.name),
        dataset=dataset,
        eps=threat.eps,
        clean_acc=pct(n_clean),
        robust_acc=pct(n_robust),
        link=card.get("link"),
        authors=card.get("authors"),
        additional_data=bool(card.get("additional_data", False)),
        number_forward_passes=int(card.get("number_forward_passes", 1)),
        venue=card.get("venue"),
        architecture=meta.get("architecture") or card.get("architecture") or getattr(model, "arch", None) or type(model).__name__,
        reported=float(reported) if isinstance(reported, (int, float)) and not isinstance(reported, bool) else None,
        autoattack_acc=aa_acc,
        footnote=card.get("footnote"),
        norm=threat.norm.value,
        eps_text=format_eps(threat.eps),
        n_examples=n,
        seed=int(seed),
        suite=plan.suite,
        attacks=list(plan.names),
        per_attack=per_attack,
        robust_acc_ci=[round(lo, 4), round(hi, 4)],
        flags=flags,
        verdict=verdict,
        verdict_reason=reason,
        compute={
            "seconds": round(seconds, 3),
            "forward_passes": fwd,
            "backward_passes": bwd,
            "forward_passes_per_example": round(fwd / n, 3) if n else 0.0,
            "backward_passes_per_example": round(bwd / n, 3) if n else 0.0,
        },
        a3=asdict(a3) if a3 is not None else None,
        model={
            "spec": spec if spec is not None else loaded.name,
            "name": loaded.name,
            "source": loaded.source,
            "path": loaded.path,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "sha256": fingerprint,
            "trained_for": loaded.dataset,
        },
        provenance=provenance(dev),
    )
