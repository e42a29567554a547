"""The worst-case evaluation behind ``a3bench attack`` (DESIGN §3).

A clean pass, then each attack of the plan on the examples still robust (the one
:class:`~a3bench.eval.cascade.Cascade`); an example is robust only if it survives every
attack, and the record says which attack broke it. Everything an attack returns is
re-checked by the judge (:mod:`a3bench.eval.judge`): inside the eps-ball and [0,1], and
misclassified by a fresh eval-mode fp32 forward pass of the deployed model (over R draws,
by majority, for a randomised model). The flags (:mod:`a3bench.eval.diagnostics`) roll up
into the verdict. The resume state is saved after every batch; ``torchrun`` shards the
batches over processes with the same per-example outcomes.

>>> from a3bench.eval.runner import evaluate
>>> res = evaluate(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist", "test"),
...                ThreatModel("Linf", 0.1), "pgd-20,apgd-ce", n_examples=1000, out="r.json")
>>> res.record.robust_acc, res.record.robust_acc_ci
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from a3bench.attacks.base import Attack, AttackContext
from a3bench.errors import AttackError, ResultError
from a3bench.eval import diagnostics
from a3bench.eval.cascade import BatchResult, Cascade
from a3bench.eval.distributed import current_shard
from a3bench.eval.judge import DeployedModel, as_loaded_model, check_model_matches, frozen_parameters, model_fingerprint, users_model
from a3bench.eval.provenance import provenance
from a3bench.results import OutputLock as _OutputLock, audit_path, check_output_path, state_path, write_run  # noqa: F401 - re-exported
from a3bench.schema import (
    AttackRecord,
    AttackStatus,
    Flag,
    Outcomes,
    ProbeRecord,
    ModelCard,
    ResultRecord,
    ResumeState,
    read_state,
    write_state,
)
from a3bench.device import resolve_device
from a3bench.stats import wilson_interval
from a3bench.threat import ThreatModel, format_eps

SANITY_EXAMPLES = 100  # AutoAttack's checks run on one batch; 100 examples detect the same and cost little
DEFAULT_DRAWS = 10  # fresh forward passes per verdict on a randomised model
ESCALATING_SUITES = ("adaptive", "full")  # suites that spend more when the gradients are found to lie
PROBE_STAGE = 10_000  # seeds of the convergence probe never meet an attack's


# --------------------------------------------------------------------------- public types


@dataclass
class ProgressEvent:
    """What the runner reports to its ``progress`` callback (the CLI draws it)."""

    stage: str  # "clean" | "attack-start" | "batch" | "attack-end" | "skipped" | "failed" | "probe" | "done"
    attack: str | None
    attack_index: int  # 0-based position in the cascade (-1 for the clean pass; n_attacks for the probe)
    n_attacks: int
    done: int  # examples of this stage processed so far
    total: int  # examples this stage processes
    robust: int  # examples robust right now (of n)
    n: int
    forward_passes: int = 0  # this stage so far (summed over examples): iterations × examples
    note: str | None = None


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class EvaluationResult:
    record: ResultRecord
    outcomes: Outcomes
    path: Path | None = None  # where the record was written


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
    device: str | torch.device | None = "auto",
    out: str | Path | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    strict: bool = True,
    spec: str | None = None,
    probe: bool = True,
    draws: int = DEFAULT_DRAWS,
    keep_state: bool = False,
    adapt_plan: bool = True,
    audit: int | None = None,
    data_dir: str | Path | None = None,
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
        out: record path; the outcomes (``<stem>.outcomes.json``), and while running the
            resume state (``<stem>.state.json``, saved after every batch) and a lock, sit beside it.
        resume: continue from the state file at ``out``: refused if the weights, examples,
            threat, seed or batch size differ, or if its attacks are not the plan's first ones.
        progress: called with :class:`ProgressEvent`; raising in it (KeyboardInterrupt) stops the run, the state stays.
        strict: a perturbation outside the threat model raises BudgetViolation (default);
            with False it only counts as robust and flags the record unreliable.
        spec: the --model SPEC as typed (for the record).
        probe: run the convergence probe when the losses say it could matter (docs/diagnostics.md#not-converged).
        draws: fresh forward passes per verdict when the model turns out to be randomised.
        keep_state: keep the resume state after the record is written, so that a later
            ``--resume`` with more attacks after these extends this evaluation.
        adapt_plan: adapt the plan to a randomised model (autoattack-rand for autoattack,
            EOT-PGD added; each said in ``record.notes``). False runs exactly the plan given
            (an ablation that must compare one attack across model variants).
        audit: after the cascade, audit the plan's attacks on the first ``audit`` examples
            (binarization test and indicators of attack failure, docs/audit.md): the audit
            file goes beside the record, its summary into ``record.audit``, its flags into the verdict.
        data_dir: where the dataset's files are (attacks that train a surrogate read its training split).
    """
    run = _Run(loaded_model, dataset, threat, attacks, suite=suite, n_examples=n_examples, seed=seed, batch_size=batch_size,
               device=device, out=out, progress=progress, strict=strict, spec=spec, draws=draws, adapt_plan=adapt_plan, data_dir=data_dir)
    if resume and run.out is None:
        raise AttackError("--resume needs --out (the state file sits beside the record)")
    with _OutputLock(run.out if run.shard.is_main else None, run.loaded):
        with frozen_parameters(run.model):
            try:
                state = run.initial_state(resume)
                run.cascade_all(state)
                if run.escalate_after(state):
                    run.cascade_all(state)
                probe_record = run.probe(state) if probe else None
            finally:
                run.deployed.restore()
        audited = run.audit(dataset, audit) if audit else None
        return run.finish(state, probe_record, probe_asked=probe, keep_state=keep_state, audited=audited)


# --------------------------------------------------------------------------- one run


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
    """What identifies an attack in the resume state (unchanged since state version 1)."""
    return {"name": a.name, "type": type(a).__name__, "config": a.config(), "group": a.group}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))  # as it reads back from disk (tuples → lists)


class _Run:
    """The pieces of one evaluation, prepared once: model, examples, plan, judge, cascade."""

    def __init__(self, loaded_model, dataset, threat, attacks, *, suite, n_examples, seed, batch_size, device, out,
                 progress, strict, spec, draws, adapt_plan=True, data_dir=None) -> None:
        self.loaded = as_loaded_model(loaded_model, dataset, batch_size)
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise AttackError(f"draws must be an integer ≥ 1, got {draws!r}")
        self.plan = _as_plan(attacks, suite)
        self.threat, self.seed, self.batch_size, self.strict, self.spec = threat, int(seed), int(batch_size), strict, spec
        self.draws, self.progress, self.adapt_plan = int(draws), progress, adapt_plan
        self.dev = resolve_device(device)
        self.shard = current_shard(self.dev)
        self.model = self.loaded.model.to(self.dev).eval()
        data = dataset.first(n_examples)
        self.n = len(data)
        self.x, self.y = data.tensors(self.dev)
        # Positions in the test split: per-example seeds and outcomes refer to them, so a
        # subset gives each example the same randomness as the full set.
        self.positions = data.positions.clone()
        self.info = data.info
        check_model_matches(self.model, self.x, self.info.num_classes, self.info.name)
        self.out = Path(out) if out is not None else None
        self.state_file = state_path(self.out) if self.out is not None else None
        self.identity = _jsonable({
            "model": model_fingerprint(self.model),
            "dataset": self.info.name,
            "n_examples": self.n,
            "positions": hashlib.sha256(self.positions.numpy().astype("int64").tobytes()).hexdigest()[:16],
            "norm": threat.norm.value,
            "eps": threat.eps,
            "seed": self.seed,
            "batch_size": self.batch_size,
        })
        self.shard.same_everywhere(self.identity, "the model, examples and settings")
        self.deployed = DeployedModel(self.model)
        self.cascade = Cascade(self.x, self.y, self.positions, self.deployed, batch_size=self.batch_size, seed=self.seed,
                               strict=strict, shard=self.shard)
        self.ctx = AttackContext(model=self.model, threat=threat, device=self.dev, seed=self.seed, batch_size=self.batch_size,
                                 num_classes=self.info.num_classes, dataset=self.info.name, loaded=self.loaded, probe=self.x[:16],
                                 data_dir=str(data_dir) if data_dir is not None else None)
        self.notes: list[str] = []
        self.t_start = time.perf_counter()

    # ------------------------------------------------------------------ progress and state

    def report(self, stage, attack=None, index=-1, done=0, total=0, robust=None, fwd=0, note=None, state=None) -> None:
        if self.progress is None or not self.shard.is_main:
            return
        if robust is None:
            robust = sum(b is None for b in state.broken_by) if state is not None else 0
        self.progress(ProgressEvent(stage, attack, index, len(self.plan.attacks), done, total, robust, self.n, fwd, note))

    def save(self, state: ResumeState) -> None:
        if self.state_file is not None and self.shard.is_main:
            write_state(self.state_file, state)

    def initial_state(self, resume: bool) -> ResumeState:
        """Rank 0 reads the resume state or makes a fresh one (sanity checks, clean pass); every rank gets it."""
        state = None
        if self.shard.is_main:
            if resume and self.state_file is not None and self.state_file.is_file():
                state = read_state(self.state_file)
                self._check_identity(state)
            else:
                with users_model("the clean pass"):
                    state = self._fresh_state()
        state = self.shard.broadcast(state)
        self.deployed.draws = self.draws if _randomised(state) else 1
        self._finalise_plan(state)
        self.save(state)
        return state

    def _check_identity(self, state: ResumeState) -> None:
        old = {k: v for k, v in state.identity.items() if k != "attacks"}
        diff = [k for k in sorted(set(old) | set(self.identity)) if old.get(k) != self.identity.get(k)]
        if diff:
            raise ResultError(f"cannot resume from {self.state_file}: it was made with a different {', '.join(diff)}; "
                              "rerun without --resume (or with the same settings)")

    def _fresh_state(self) -> ResumeState:
        n, bs = self.n, self.batch_size
        check_n = min(n, bs, SANITY_EXAMPLES)
        flags = diagnostics.sanity_flags(self.model, self.x[:check_n], self.y[:check_n], randomized_ok=True)
        randomised = any(f.name == "randomized-outputs" for f in flags)
        self.deployed.draws = self.draws if randomised else 1
        found, checked = diagnostics.gradient_lies(self.model, self.x[:check_n], self.y[:check_n], self.threat, seed=self.seed,
                                                   positions=self.positions[:check_n], randomised=randomised)
        flags += found
        self.report("clean", total=n, robust=0)
        preds, shares, nonfinite, correct = [], [], 0, 0
        for s in range(0, n, bs):
            torch.manual_seed(self.seed * 7_919 + s)  # the clean verdicts of a randomised model are seeded too
            v = self.deployed.judge(self.x[s : s + bs], self.y[s : s + bs])
            preds.append(v.pred)
            shares.append(v.correct_share)
            nonfinite += v.nonfinite
            correct += int((~v.wrong).sum())
            self.report("clean", done=min(n, s + bs), total=n, robust=correct)
        clean_pred = torch.cat(preds).tolist() if preds else []
        self.deployed.restore()
        return ResumeState(
            identity=self.identity,
            clean_pred=clean_pred,
            broken_by=[None if p == t else "clean" for p, t in zip(clean_pred, self.y.tolist())],
            adv_pred=[None] * n,
            adv_distance=[None] * n,
            flags=flags,
            correct_share=torch.cat(shares).tolist() if self.deployed.draws > 1 and shares else None,
            nonfinite=nonfinite,
            diagnostics=checked,
        )

    def _finalise_plan(self, state: ResumeState) -> None:
        """Add EOT for a randomised model the plan does not handle; check a resumed state's
        attacks are the plan's first ones (a plan may only add attacks after them)."""
        plan = self.plan
        if _randomised(state) and self.adapt_plan:
            self._for_randomised_model(plan)
        if self._escalates():
            self._escalate(state, state.flags)
        stamps = _jsonable([_stamp(a) for a in plan.attacks])
        started = len(state.finished) + (1 if state.current else 0)
        done = state.identity.get("attacks", stamps)[:started]
        if done != stamps[: len(done)] or len(done) < started:
            raise ResultError(f"cannot resume from {self.state_file}: it was made with different attacks "
                              f"({', '.join(a['name'] for a in done)}); rerun without --resume (or with the same attacks)")
        state.identity = {**state.identity, "attacks": stamps}
        for rec, attack in zip(state.finished, plan.attacks):  # records from before kinds existed
            rec.kind = attack.kind
        self.probe_target = diagnostics.probe_target(plan.attacks)
        if self.probe_target is not None:
            self.probe_target.trace_loss = True  # the probe reads its losses (no extra pass)

    def _for_randomised_model(self, plan) -> None:
        """A randomised model gets AutoAttack's own version for randomised defenses in place
        of the standard one, and EOT-PGD when the plan has no EOT attack (DESIGN §3)."""
        from a3bench.attacks.registry import build_attack

        groups = [a.group for a in plan.attacks]
        if "autoattack" in groups and "autoattack-rand" not in groups:
            first = groups.index("autoattack")
            rand = build_attack("autoattack-rand")
            plan.attacks = [a for a in plan.attacks[:first]] + rand + [a for a in plan.attacks[first:] if a.group != "autoattack"]
            self.notes.append("the model is randomised: AutoAttack ran as autoattack-rand (its version for randomised "
                              "defenses, EOT over 20 draws) instead of standard")
        if not any(a.kind.value == "eot" for a in plan.attacks):
            from a3bench.attacks.adaptive import EOTPGD

            plan.attacks = [*plan.attacks, EOTPGD(20, samples=10, name="eot-pgd-20:n=10")]
            self.notes.append("the model is randomised: eot-pgd-20:n=10 was added (gradients averaged over 10 draws)")

    def _escalate(self, state: ResumeState, flags) -> bool:
        """When the gradients are found to lie (``gradient-inconsistent`` before the cascade,
        ``black-box-beats-white-box`` after it), add the attacks that are not fooled, within
        a stated budget (docs/diagnostics.md#escalation). Kept in the state: a resumed run
        escalates the same way. Returns whether attacks were added now."""
        from a3bench.attacks.escalation import escalation
        from a3bench.attacks.registry import build_attack

        added = False
        if state.escalation is None:
            plan_e = escalation(flags, already=[a.name for a in self.plan.attacks])
            if plan_e is None:
                return False
            state.escalation = plan_e.to_dict()
            added = True
        names = {a.name for a in self.plan.attacks}
        for name in state.escalation.get("attacks", []):
            for attack in build_attack(name):
                if attack.name not in names:
                    self.plan.attacks.append(attack)
                    names.add(attack.name)
        if added or not any(n.startswith("escalation:") for n in self.notes):
            self.notes.append(f"escalation: {state.escalation.get('reason')}")
        return added

    def _escalates(self) -> bool:
        """Escalation belongs to the suites that promise an adaptive evaluation; a plan of
        named attacks runs exactly what it names."""
        return self.adapt_plan and self.plan.suite in ESCALATING_SUITES

    def escalate_after(self, state: ResumeState) -> bool:
        """After the cascade: Square broke what the white-box attacks missed, and nothing
        escalated yet → add the escalation attacks (they run on what is still robust)."""
        if not self._escalates() or state.escalation is not None:
            return False
        fired = diagnostics.reveal_flags(self.plan.attacks, state.finished, self.n)
        if not self._escalate(state, fired):
            return False
        state.identity = {**state.identity, "attacks": _jsonable([_stamp(a) for a in self.plan.attacks])}
        self.save(state)
        return True

    # ------------------------------------------------------------------ one attack

    def cascade_all(self, state: ResumeState) -> None:
        for i, attack in enumerate(self.plan.attacks):
            if i >= len(state.finished):
                self.attack(i, attack, state)

    def attack(self, i: int, attack: Attack, state: ResumeState) -> None:
        reason = attack.applies_to(self.ctx)
        if reason:
            state.finished.append(AttackRecord(attack.name, self._acc(state), status=AttackStatus.SKIPPED, note=reason,
                                               group=attack.group, config=attack.config(), kind=attack.kind))
            state.current = None
            self.save(state)
            self.report("skipped", attack.name, i, note=reason, state=state)
            return
        cur = state.current if state.current and state.current.get("index") == i else None
        if cur is None:
            todo = [k for k in range(self.n) if state.broken_by[k] is None]
            rec = AttackRecord(attack.name, None, n_attacked=len(todo), group=attack.group, config=attack.config(), kind=attack.kind)
            cur = {"index": i, "todo": todo, "batches_done": 0, "record": _jsonable(asdict(rec)), "unconfirmed": 0}
            state.current = cur
        rec, todo = cur["record"], cur["todo"]
        self.report("attack-start", attack.name, i, done=min(len(todo), cur["batches_done"] * self.batch_size), total=len(todo),
                    fwd=rec["forward_passes"], state=state)

        def on_batch(r: BatchResult) -> None:
            self._apply(attack, r, state, cur)
            self.save(state)
            self.report("batch", attack.name, i, done=min(len(todo), (r.batch + 1) * self.batch_size), total=len(todo),
                        fwd=rec["forward_passes"], state=state)

        end = self.cascade.run(attack, self.ctx, todo, stage=i, start=cur["batches_done"], on_batch=on_batch)
        self._finish_attack(i, attack, state, cur, end)

    def _apply(self, attack: Attack, r: BatchResult, state: ResumeState, cur: dict) -> None:
        rec = cur["record"]
        for j, k in enumerate(r.examples):
            if r.correct_share is not None and state.correct_share is not None:
                state.correct_share[k] = min(state.correct_share[k], r.correct_share[j])
            if r.broken[j]:
                state.broken_by[k] = attack.name
                state.adv_pred[k] = int(r.pred[j])
                state.adv_distance[k] = float(r.distance[j])
        if r.rising is not None and attack is self.probe_target:
            state.rising = sorted(set(state.rising) | {k for k, up in zip(r.examples, r.rising) if up})
        if r.outside:
            state.violations[attack.name] = state.violations.get(attack.name, 0) + r.outside
        state.nonfinite += r.nonfinite
        state.aa_warnings.extend(r.warnings)
        cur["unconfirmed"] += r.unconfirmed
        rec["broken"] += sum(r.broken)
        rec["forward_passes"] += r.forward_passes
        rec["backward_passes"] += r.backward_passes
        rec["seconds"] += r.seconds
        cur["batches_done"] = r.batch + 1

    def _finish_attack(self, i: int, attack: Attack, state: ResumeState, cur: dict, end) -> None:
        rec = AttackRecord(**{**cur["record"], "robust_acc": self._acc(state), "seconds": round(cur["record"]["seconds"], 3)})
        if end.status is AttackStatus.FAILED:
            rec.status, rec.note = end.status, end.note
        learned = attack.record_note()
        if learned:
            rec.note = f"{rec.note}; {learned}" if rec.note else learned
        if cur["unconfirmed"]:
            state.unconfirmed[attack.name] = cur["unconfirmed"]
            unconfirmed = f"{cur['unconfirmed']} claimed success(es) not confirmed by the re-check"
            rec.note = f"{rec.note}; {unconfirmed}" if rec.note else unconfirmed
        state.finished.append(rec)
        state.current = None
        self.save(state)  # before reporting: a kill in the callback must not lose a finished attack
        if rec.status is AttackStatus.FAILED:
            self.report("failed", attack.name, i, note=rec.note, state=state)
        else:
            self.report("attack-end", attack.name, i, done=rec.n_attacked, total=rec.n_attacked, fwd=rec.forward_passes, state=state)

    def _acc(self, state: ResumeState) -> float | None:
        return 100.0 * sum(b is None for b in state.broken_by) / self.n if self.n else None

    # ------------------------------------------------------------------ the convergence probe

    def probe(self, state: ResumeState) -> ProbeRecord | None:
        """PGD with twice the iterations on the examples whose loss was still rising at the
        end of the plan's longest PGD — only when they are enough to move the worst case by
        more than a point (docs/diagnostics.md#not-converged). Diagnostic only."""
        target = self.probe_target
        if target is None:
            return None
        candidates = [k for k in state.rising if state.broken_by[k] is None]
        attack = diagnostics.probe_attack(target)
        if 100.0 * len(candidates) / max(self.n, 1) <= diagnostics.GAP_POINTS:
            return ProbeRecord(attack.name, 0, 0, note=f"not run: the loss of {len(candidates)} robust example(s) was still "
                                                        f"rising at the end of {target.name}, too few to move the worst case by "
                                                        f"{diagnostics.GAP_POINTS:g} point")
        todo = candidates[: diagnostics.PROBE_EXAMPLES]
        rec = ProbeRecord(attack.name, len(todo), 0)
        index = len(self.plan.attacks)
        self.report("probe", attack.name, index, total=len(todo), state=state)

        def on_batch(r: BatchResult) -> None:
            rec.broken += sum(r.broken)
            rec.forward_passes += r.forward_passes
            rec.backward_passes += r.backward_passes
            rec.seconds += r.seconds
            self.report("probe", attack.name, index, done=min(len(todo), (r.batch + 1) * self.batch_size), total=len(todo),
                        fwd=rec.forward_passes, state=state)

        end = self.cascade.run(attack, self.ctx, todo, stage=PROBE_STAGE, on_batch=on_batch)
        rec.seconds = round(rec.seconds, 3)
        rec.note = (f"diagnostic only: {attack.name} on the {len(todo)} example(s) (of {len(candidates)}) whose loss was still "
                    f"rising at the end of {target.name}")
        if end.status is AttackStatus.FAILED:
            rec.note += f"; {end.note}"
        return rec

    # ------------------------------------------------------------------ the audit

    def audit(self, dataset, n: int):
        """The binarization test and the indicators of attack failure of the plan's attacks
        on the first ``n`` examples (rank 0 only: the other ranks write nothing)."""
        from a3bench.eval.audit import run_audit

        if not self.shard.is_main:
            return None
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AttackError(f"--audit needs a number of examples ≥ 1, got {n!r}")
        return run_audit(self.loaded, dataset, self.threat, self.plan.attacks, n_examples=min(n, self.n), seed=self.seed,
                         batch_size=self.batch_size, device=self.dev)

    # ------------------------------------------------------------------ the record

    def finish(self, state: ResumeState, probe_record: ProbeRecord | None, *, probe_asked: bool, keep_state: bool = False,
               audited=None) -> EvaluationResult:
        n = self.n
        per_attack = [AttackRecord(**{**r.__dict__, "robust_acc": round(r.robust_acc, 4) if r.robust_acc is not None else None})
                      for r in state.finished]
        labels = self.y.tolist()
        outcomes = Outcomes(
            robust=[b is None for b in state.broken_by],
            indices=self.positions.tolist(),
            labels=labels,
            clean_pred=state.clean_pred,
            clean_correct=[p == t for p, t in zip(state.clean_pred, labels)],
            broken_by=state.broken_by,
            adv_pred=state.adv_pred,
            adv_distance=state.adv_distance,
            correct_share=state.correct_share,
        )
        flags = diagnostics.run_flags(self.plan.attacks, per_attack, state, n=n, num_classes=self.info.num_classes,
                                      clean_acc=100.0 * sum(outcomes.clean_correct) / n if n else 0.0, probe=probe_record)
        if audited is not None:
            flags += audited.flags
        record = self._record(per_attack, outcomes, flags, probe_record, state)
        if audited is not None:
            record.audit = {"file": audit_path(self.out).name if self.out is not None else None, **audited.summary()}
            record.compute["audit_seconds"] = round(float(audited.compute.get("seconds", 0.0)), 3)
        if not probe_asked:
            record.compute["probe"] = "off (--no-probe)"
        path = None
        if self.out is not None and self.shard.is_main:
            path = write_run(self.out, record, outcomes, audited)  # together or not at all, under one run id
            if not keep_state:
                self.state_file.unlink(missing_ok=True)
        self.report("done", robust=sum(outcomes.robust), total=n)
        return EvaluationResult(record, outcomes, path)

    def _record(self, per_attack, outcomes: Outcomes, flags: list[Flag], probe_record, state) -> ResultRecord:
        from a3bench.models.a3 import a3_summary, has_a3

        loaded, model, n = self.loaded, self.model, self.n
        card, meta = loaded.card or ModelCard(), loaded.meta or {}
        n_clean, n_robust = sum(outcomes.clean_correct), sum(outcomes.robust)
        pct = lambda k: round(100.0 * k / n, 4) if n else 0.0  # noqa: E731
        lo, hi = wilson_interval(n_robust, n)
        fwd = sum(r.forward_passes for r in per_attack) + n * self.deployed.draws + (probe_record.forward_passes if probe_record else 0)
        bwd = sum(r.backward_passes for r in per_attack) + (probe_record.backward_passes if probe_record else 0)
        seconds = time.perf_counter() - self.t_start
        verdict, reason = diagnostics.verdict(flags)
        randomised = None
        if outcomes.correct_share is not None:
            shares = outcomes.correct_share
            robust_shares = [s if ok else 0.0 for s, ok in zip(shares, outcomes.clean_correct)]
            randomised = {"draws": self.deployed.draws, "rule": "broken when the majority of the draws misclassify (ties: correct)",
                          "expected_robust_acc": round(100.0 * sum(robust_shares) / n, 4) if n else 0.0}
        return ResultRecord(
            name=card.name or loaded.name,
            dataset=self.info.name,
            eps=self.threat.eps,
            clean_acc=pct(n_clean),
            robust_acc=pct(n_robust),
            link=card.link,
            authors=card.authors_text,
            additional_data=card.additional_data,
            number_forward_passes=card.number_forward_passes,
            venue=card.venue,
            architecture=str(meta.get("architecture") or card.architecture or getattr(model, "arch", None) or type(model).__name__),
            reported=card.reported,
            autoattack_acc=diagnostics.autoattack_accuracy(per_attack),
            footnote=card.footnote,
            norm=self.threat.norm.value,
            eps_text=format_eps(self.threat.eps),
            n_examples=n,
            seed=self.seed,
            suite=self.plan.suite,
            attacks=list(self.plan.names),
            notes=list(self.notes),
            diagnostics={**state.diagnostics, **({"escalation": state.escalation} if state.escalation else {})},
            per_attack=per_attack,
            probe=probe_record,
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
                **({"randomised": randomised} if randomised else {}),
            },
            a3=asdict(a3_summary(model)) if has_a3(model) else None,
            model={
                "spec": self.spec if self.spec is not None else loaded.name,
                "name": loaded.name,
                "source": loaded.source,
                "path": loaded.path,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "sha256": self.identity["model"],
                "trained_for": loaded.dataset,
            },
            provenance=provenance(self.dev, self.shard.world),
        )


def _randomised(state: ResumeState) -> bool:
    return any(f.name == "randomized-outputs" for f in state.flags)
