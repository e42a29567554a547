"""The worst-case evaluation behind ``a3bench attack`` (docs/architecture.md#the-cascade).

A clean pass, then each attack of the plan on the examples still robust (the one
:class:`~a3bench.eval.cascade.Cascade`); an example is robust only if it survives every
attack, and the record says which attack broke it. Everything an attack returns is
re-checked by the judge (:mod:`a3bench.eval.judge`): inside the eps-ball and [0,1], and
misclassified by a fresh eval-mode fp32 forward pass of the deployed model (over R draws,
by majority, for a randomised model). The flags (:mod:`a3bench.eval.diagnostics`) roll up
into the verdict. The set-up is the one :class:`~a3bench.eval.setup.Evaluation` every
command shares; the resume state is saved after every round of batches; ``torchrun``
shards the batches over processes with the same per-example outcomes.

>>> from a3bench.eval.runner import evaluate
>>> res = evaluate(load_model("smallcnn.pgdat_fmnist"), load_dataset("fmnist", "test"),
...                ThreatModel("Linf", 0.1), "pgd-20,apgd-ce", n_examples=1000, out="r.json")
>>> res.record.robust_acc, res.record.robust_acc_ci
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from a3bench.advfile import AdvExamples, KeptPoints, read_adv, write_adv
from a3bench.attacks.base import Attack
from a3bench.errors import AttackError, ResultError, excerpt, one_line
from a3bench.eval import diagnostics
from a3bench.eval.cascade import BatchResult
from a3bench.eval.judge import users_model
from a3bench.eval.provenance import provenance
from a3bench.eval.strength import strength_of
from a3bench.eval.setup import DEFAULT_DRAWS, SANITY_EXAMPLES, EvalOptions, Evaluation  # noqa: F401 — re-exported
from a3bench.flags import ESCALATION_CAPPED, NO_INPUT_GRADIENT, RANDOMIZED_OUTPUTS
from a3bench.io import staged_writes
from a3bench.results import OutputLock, adv_state_path, audit_path, check_output_path, state_path, write_run  # noqa: F401 - re-exported
from a3bench.schema import (
    AttackRecord,
    AttackStatus,
    Flag,
    ModelCard,
    Outcomes,
    ProbeRecord,
    ResultRecord,
    ResumeState,
    read_state,
    write_state,
)
from a3bench.stats import wilson_interval
from a3bench.threat import ThreatModel, format_eps

PROBE_STAGE = 10_000  # seeds of the convergence probe never meet an attack's
EOT_FOR_RANDOMISED = "eot-pgd-20:n=10"  # added for a randomised model whose plan averages over nothing


# --------------------------------------------------------------------------- public types


@dataclass
class AttackOptions(EvalOptions):
    """:class:`~a3bench.eval.setup.EvalOptions` plus what only ``a3bench attack`` decides.

    out: record path; the outcomes (``<stem>.outcomes.json``), and while running the
    resume state (``<stem>.state.json``) and a lock, sit beside it. resume: continue from
    the state file at ``out`` (refused if the weights, examples, threat, seed or batch size
    differ, or if its attacks are not the plan's first ones). probe: run the convergence
    probe when the losses say it could matter (docs/diagnostics.md#not-converged).
    keep_state: keep the resume state after the record is written, so that a later
    ``--resume`` with more attacks after these extends this evaluation. adapt_plan: adapt
    the plan to a randomised model (autoattack-rand for autoattack, EOT-PGD added) and
    escalate when gradients lie (suites that escalate); False runs exactly the plan given.
    save_adv: keep the point that broke each example, with the attack that found it, in
    ``<stem>.adv.pt`` beside the record (docs/results.md#adversarial-examples-advpt;
    ``a3bench verify`` re-checks them); False (``--no-adv``) keeps none.
    audit: after the cascade, audit the plan's attacks on the first ``audit`` examples
    (docs/audit.md). max_passes: the most forward passes the escalation may spend
    (projected before it runs; what does not fit is left out, listed in the record and
    flagged ``escalation-capped``); None: no cap. name: the label boards show (default:
    the model card's name, else the model's); the default record path is named after it.
    """

    out: str | Path | None = None
    resume: bool = False
    probe: bool = True
    keep_state: bool = False
    adapt_plan: bool = True
    audit: int | None = None
    max_passes: int | None = None
    name: str | None = None  # the label boards show (default: the model card's name, else the model's)
    save_adv: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200
                                      or not self.name.isprintable()):
            raise AttackError(f"--name must be printable text of 1 to 200 characters, got {self.name!r}")
        if self.audit is not None and (isinstance(self.audit, bool) or not isinstance(self.audit, int) or self.audit < 1):
            raise AttackError(f"--audit needs a number of examples ≥ 1, got {self.audit!r}")
        if self.max_passes is not None and (isinstance(self.max_passes, bool) or not isinstance(self.max_passes, int) or self.max_passes < 0):
            raise AttackError(f"--max-passes must be an integer ≥ 0, got {self.max_passes!r}")
        if self.resume and self.out is None:
            raise AttackError("--resume needs --out (the state file sits beside the record)")


@dataclass
class ProgressEvent:
    """What the runner reports to its ``progress`` callback (the CLI draws it)."""

    stage: str  # "clean" | "attack-start" | "batch" | "tick" (inside a batch) | "attack-end" | "skipped" | "failed" | "escalation" | "probe" | "done"
    attack: str | None
    attack_index: int  # 0-based position in the cascade (-1 for the clean pass; n_attacks for the probe)
    n_attacks: int
    done: int  # examples of this stage processed so far
    total: int  # examples this stage processes
    robust: int  # examples robust right now (of n)
    n: int
    forward_passes: int = 0  # this stage so far (summed over examples): iterations × examples
    note: str | None = None
    eta_attack_s: float | None = None  # seconds left in this attack (measured rate), None: not known yet
    eta_total_s: float | None = None  # seconds left in the whole run, at most (each remaining attack's budget)


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class EvaluationResult:
    record: ResultRecord
    outcomes: Outcomes
    path: Path | None = None  # where the record was written
    adv: AdvExamples | None = None  # the points that broke the examples an attack broke (None: --no-adv)


def evaluate(loaded_model, dataset, threat: ThreatModel, attacks=None, *, suite: str | None = None,
             options: AttackOptions | None = None, progress: ProgressFn | None = None, **kwargs: Any) -> EvaluationResult:
    """Run the worst-case cascade and build the result record.

    Args:
        loaded_model: a :class:`~a3bench.models.LoadedModel` or a bare ``nn.Module`` on [0,1] inputs.
        dataset: an :class:`~a3bench.data.ImageDataset` (the test split).
        threat: norm and eps. attacks: names (``"pgd-20,autoattack"`` or a list), an
            :class:`~a3bench.attacks.registry.AttackPlan`, or Attack objects; None with
            ``suite`` None means suite ``quick``.
        options: an :class:`AttackOptions`; or its fields as keyword arguments
            (``n_examples=``, ``seed=``, ``out=``, ``resume=`` …).
        progress: called with :class:`ProgressEvent`; raising in it (KeyboardInterrupt) stops the run, the state stays.
    """
    if options is None:
        options = AttackOptions(**kwargs)
    elif kwargs:
        raise TypeError("give options= or keyword options, not both")
    run = _Run(Evaluation(loaded_model, dataset, options), _as_plan(attacks, suite), threat, options, progress)
    with OutputLock(run.out if run.ev.shard.is_main else None, run.ev.loaded):
        with run.ev.frozen():
            state = run.initial_state()
            run.cascade_all(state)
            if run.escalate_after(state):
                run.cascade_all(state)
            probe_record = run.probe(state) if options.probe else None
        audited = run.audit(dataset, options.audit) if options.audit else None
        return run.finish(state, probe_record, audited=audited)


# --------------------------------------------------------------------------- the plan


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


def for_randomised_model(plan):
    """The plan for a randomised model: AutoAttack's version for randomised defenses in
    place of the standard one, and EOT-PGD when nothing in the plan averages over the
    randomness. Returns (a new plan, the notes that say so); the plan given is not changed."""
    from a3bench.attacks.registry import autoattack_composite, build_attack

    attacks, notes = list(plan.attacks), []
    standard = [a for a in attacks if a.autoattack == "standard"]
    if standard and not any(a.autoattack == "rand" for a in attacks):
        first = attacks.index(standard[0])
        attacks = attacks[:first] + build_attack(autoattack_composite("rand")) + [a for a in attacks[first:] if a.autoattack != "standard"]
        notes.append("the model is randomised: AutoAttack ran as autoattack-rand (its version for randomised "
                     "defenses, EOT over 20 draws) instead of standard")
    if not any(a.handles_randomness for a in attacks):
        attacks += build_attack(EOT_FOR_RANDOMISED)
        notes.append(f"the model is randomised: {EOT_FOR_RANDOMISED} was added (gradients averaged over 10 draws)")
    return plan.with_attacks(attacks), notes


def _stamp(a: Attack) -> dict:
    """What identifies an attack in the resume state (unchanged since state version 1)."""
    return {"name": a.name, "type": type(a).__name__, "config": a.config(), "group": a.group}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))  # as it reads back from disk (tuples → lists)


# --------------------------------------------------------------------------- one run


class _Run:
    """One ``a3bench attack`` run on a prepared :class:`Evaluation`."""

    def __init__(self, ev: Evaluation, plan, threat: ThreatModel, options: AttackOptions, progress: ProgressFn | None) -> None:
        self.ev, self.plan, self.threat, self.options, self.progress = ev, plan, threat, options, progress
        self.n = ev.n
        self.out = Path(options.out) if options.out is not None else None
        self.state_file = state_path(self.out) if self.out is not None else None
        self.adv_state_file = adv_state_path(self.out) if self.out is not None else None
        # the points the judge confirmed, per example, with their attack (rank 0 keeps them)
        self.kept = KeptPoints() if options.save_adv else None
        ev.cascade.keep_points = options.save_adv
        self.identity = _jsonable({
            "model": ev.fingerprint,
            "dataset": ev.info.name,
            "n_examples": self.n,
            "positions": ev.positions_digest,
            "norm": threat.norm.value,
            "eps": threat.eps,
            "seed": ev.seed,
            "batch_size": ev.batch_size,
        })
        ev.shard.same_everywhere(self.identity, "the model, examples and settings")
        self.ctx = ev.context(threat)
        self.notes: list[str] = []
        self.probe_target = None
        self.t_start = time.perf_counter()
        self.meter = _Meter()

    # ------------------------------------------------------------------ progress and state

    def report(self, stage, attack=None, index=-1, done=0, total=0, robust=None, fwd=0, note=None, state=None,
               eta_attack=None) -> None:
        if self.progress is None or not self.ev.shard.is_main:
            return
        if robust is None:
            robust = sum(b is None for b in state.broken_by) if state is not None else 0
        eta_total = self._eta_total(index, robust, eta_attack) if state is not None else None
        self.progress(ProgressEvent(stage, attack, index, len(self.plan.attacks), done, total, robust, self.n, fwd, note,
                                    eta_attack, eta_total))

    def _eta_total(self, index: int, robust: int, eta_attack: float | None) -> float | None:
        """The remaining attacks' budgets (forward-pass equivalents per still-robust example)
        at the rate measured so far: an upper bound, since broken examples stop early."""
        rate = self.meter.rate()
        if rate is None:
            return None
        rest = 0.0
        for attack in self.plan.attacks[index + 1 :]:
            budget = attack.max_passes()
            if budget is None:
                return None
            f, b, once = budget
            rest += (f + 2 * b) * robust + once
        return (eta_attack or 0.0) + rest / rate

    def save(self, state: ResumeState) -> None:
        """The resume state; with it, when new points came in, the points so far
        (``<stem>.adv.state.pt``, renamed into place just before the state: a kill between
        the two leaves points for a batch the state does not count, dropped on resume)."""
        if self.state_file is not None and self.ev.shard.is_main:
            state.elapsed = self.elapsed(state)
            with staged_writes():
                if self.kept is not None and self.kept.dirty:
                    write_adv(self.adv_state_file, self._adv_examples(state, all_kept=True))
                write_state(self.state_file, state)
            if self.kept is not None:
                self.kept.dirty = False

    def elapsed(self, state: ResumeState) -> float:
        """Seconds this evaluation has run, over every session that resumed it."""
        return self.elapsed_before + (time.perf_counter() - self.t_start)

    def initial_state(self) -> ResumeState:
        """The resume state (rank 0 reads it) or a fresh one: rank 0 runs the checks, every
        rank its share of the clean pass; every rank ends with the same state."""
        shard = self.ev.shard
        self.elapsed_before = 0.0
        resuming = shard.broadcast(bool(self.options.resume and self.state_file is not None and self.state_file.is_file()))
        if resuming:
            state = None
            if shard.is_main:
                state = read_state(self.state_file)
                self._check_identity(state)
            state = shard.broadcast(state)
            self.elapsed_before = state.elapsed
            if shard.is_main and self.kept is not None:
                self._resume_points(state)
        else:
            if shard.is_main and self.adv_state_file is not None:
                self.adv_state_file.unlink(missing_ok=True)  # an earlier run's points are not this run's
            checks = None
            if shard.is_main:
                with users_model("the clean pass"):
                    checks = self.ev.model_checks(self.threat)
            checks = shard.broadcast(checks)
            self.ev.randomised = checks.randomised
            self.ev.detect_randomness()
            with users_model("the clean pass"):
                state = self._fresh_state(checks)
        self.ev.randomised = _randomised(state)
        self.ev.detect_randomness()  # sets the judge's draws from the state's verdict
        self.ev.input_gradient = not any(f.name == NO_INPUT_GRADIENT.name for f in state.flags)
        self._finalise_plan(state)
        self.save(state)
        return state

    def _resume_points(self, state: ResumeState) -> None:
        """The points of the batches done before the kill, read back like any untrusted input
        (docs/untrusted-input.md): the same examples, threat and attacks as the state, every
        point inside the threat model around its own example. A point for an example the
        state counts as robust was saved just before a kill (its batch runs again): dropped.
        A state from before a3bench kept points has none: the record says how many lack one."""
        path = self.adv_state_file
        if path is None or not path.is_file():
            return

        def refuse(why: str):
            return ResultError(f"cannot resume from {path}: {why}; delete it to resume without its points")

        try:
            adv = read_adv(path, ResultError)
        except ResultError as e:
            raise ResultError(f"{e}; delete it to resume without its points") from None
        ev = self.ev
        theirs = (adv.dataset, adv.norm, adv.eps, adv.n_examples, tuple(adv.points.shape[1:]))
        ours = (ev.info.name, self.threat.norm.value, self.threat.eps, self.n, tuple(ev.x.shape[1:]))
        if (theirs if len(adv) else theirs[:4]) != (ours if len(adv) else ours[:4]):
            raise refuse(f"its points are of another evaluation ({excerpt(adv.dataset)}, {excerpt(adv.norm)} eps {adv.eps:g}, "
                         f"n {adv.n_examples}, shape {theirs[4]}), not this one")
        where = {int(p): k for k, p in enumerate(ev.positions.tolist())}
        rows, ks = [], []
        for i, p in enumerate(adv.positions.tolist()):
            k = where.get(p)
            if k is None:
                raise refuse(f"point {i} is for position {p}, not an example of this evaluation")
            by = state.broken_by[k]
            if by is None:
                continue  # saved ahead of the state: its batch runs again
            if by != adv.attack_of(i):
                raise refuse(f"point {i} (position {p}) says {excerpt(adv.attack_of(i))} broke it, the state says {excerpt(by)}")
            rows.append(i)
            ks.append(k)
        if not rows:
            return
        points = adv.points[rows]
        outside = self.threat.violations(points, ev.x[ks].cpu())
        if bool(outside.any()):
            i = rows[int(outside.nonzero()[0])]
            raise refuse(f"point {i} (position {int(adv.positions[i])}) lies outside {self.threat.label} or [0,1] around its example")
        for k, point in zip(ks, points):
            self.kept.rows[k] = (state.broken_by[k], point)

    def _adv_examples(self, state: ResumeState, *, all_kept: bool = False) -> AdvExamples:
        """The kept points as a file's content: those of the examples an attack broke (all
        kept ones for the resume state's file)."""
        return self.kept.examples(self.ev.positions, tuple(self.ev.x.shape[1:]), n_examples=self.n, dataset=self.ev.info.name,
                                  norm=self.threat.norm.value, eps=self.threat.eps,
                                  keep=lambda k, attack: all_kept or state.broken_by[k] == attack)

    def _check_identity(self, state: ResumeState) -> None:
        old = {k: v for k, v in state.identity.items() if k != "attacks"}
        diff = [k for k in sorted(set(old) | set(self.identity)) if old.get(k) != self.identity.get(k)]
        if diff:
            raise ResultError(f"cannot resume from {self.state_file}: it was made with a different {', '.join(diff)}; "
                              "rerun without --resume (or with the same settings)")

    def _fresh_state(self, checks) -> ResumeState:
        self.report("clean", total=self.n, robust=0)
        t0 = time.perf_counter()
        clean = self.ev.clean_pass(lambda done, correct: self.report("clean", done=done, total=self.n, robust=correct))
        self.meter.add(self.n * self.ev.deployed.draws, 0, time.perf_counter() - t0)
        return ResumeState(
            identity=self.identity,
            clean_pred=clean.pred,
            broken_by=[None if ok else "clean" for ok in clean.correct(self.ev.labels)],
            adv_pred=[None] * self.n,
            adv_distance=[None] * self.n,
            flags=checks.flags,
            correct_share=clean.correct_share,
            nonfinite=clean.nonfinite,
            diagnostics=checks.diagnostics,
        )

    def _finalise_plan(self, state: ResumeState) -> None:
        """Adapt the plan to the model (randomised, escalation already decided); check a
        resumed state's attacks are the plan's first ones (a plan may only add attacks after them)."""
        if _randomised(state) and self.options.adapt_plan:
            self.plan, notes = for_randomised_model(self.plan)
            self.notes += notes
        if self._escalates():
            self._rejudge_escalation(state)
            self._escalate(state, state.flags)
        stamps = _jsonable([_stamp(a) for a in self.plan.attacks])
        started = len(state.finished) + (1 if state.current else 0)
        done = state.identity.get("attacks", stamps)[:started]
        if done != stamps[: len(done)] or len(done) < started:
            raise ResultError(f"cannot resume from {self.state_file}: it was made with different attacks "
                              f"({', '.join(a['name'] for a in done)}); rerun without --resume (or with the same attacks)")
        state.identity = {**state.identity, "attacks": stamps}
        for rec, attack in zip(state.finished, self.plan.attacks):  # records from before kinds existed
            rec.kind = attack.kind
        self.probe_target = diagnostics.probe_target(self.plan.attacks)
        if self.probe_target is not None:
            self.probe_target.trace_loss = True  # the probe reads its losses (no extra pass)

    # ------------------------------------------------------------------ escalation

    def _escalates(self) -> bool:
        """Escalation belongs to the suites that promise an adaptive evaluation; a plan of
        named attacks runs exactly what it names."""
        return self.options.adapt_plan and self.plan.escalates

    def _escalate(self, state: ResumeState, flags) -> bool:
        """When the gradients are found to lie (before the cascade: ``gradient-inconsistent``,
        ``no-input-gradient``; after it: ``black-box-beats-white-box``), add the attacks that
        are not fooled, within a stated budget (docs/diagnostics.md#escalation). The decision
        is kept in the state: a resumed run escalates the same way. Returns whether attacks were added now."""
        from a3bench.attacks.escalation import escalation

        added = False
        if state.escalation is None:
            robust = sum(b is None for b in state.broken_by)
            plan_e = escalation(flags, already=[a.name for a in self.plan.attacks], robust=robust, rate=self.meter.rate(),
                                max_passes=self.options.max_passes)
            if plan_e is None:
                return False
            state.escalation = plan_e.to_dict()
            added = True
            self.report("escalation", note=plan_e.reason, state=state)
        attacks, names = list(self.plan.attacks), {a.name for a in self.plan.attacks}
        for name in state.escalation.get("attacks", []):
            for attack in self._build_or_fail(name, state):
                if attack.name not in names:
                    attacks.append(attack)
                    names.add(attack.name)
        self.plan = self.plan.with_attacks(attacks)
        if added or not any(n.startswith("escalation:") for n in self.notes):
            self.notes.append(f"escalation: {state.escalation.get('reason')}")
            if state.escalation.get("withdrawn"):
                self.notes.append(f"escalation withdrawn: {state.escalation['withdrawn']}")
        return added

    def _rejudge_escalation(self, state: ResumeState) -> None:
        """A resumed run judges its escalation again under today's rule: when none of its
        triggers fires any more (a raw count that the significance test now calls chance),
        the escalation is withdrawn — the attacks of it that already ran stay in the record
        (their results are valid), the rest are not run, and the record says so."""
        esc = state.escalation
        if not esc or esc.get("withdrawn"):
            return
        suite = [a for a in self.plan.attacks]
        before = [r for r in state.finished[: len(suite)]]
        fired = {f.name for f in state.flags} | {f.name for f in diagnostics.reveal_flags(suite, before, self.n)}
        if any(t in fired for t in esc.get("triggers", [])):
            return
        ran = [r.name for r in state.finished[len(suite):]]
        dropped = [a for a in esc.get("attacks", []) if a not in ran]
        state.escalation = {**esc, "attacks": ran, "withdrawn": (
            f"{', '.join(esc.get('triggers', []))} no longer fires under the significance rule (one-sided binomial test at "
            f"n = {self.n}, docs/diagnostics.md#escalation): the escalation is withdrawn; "
            + (f"{', '.join(ran)} had already run and stay{'s' if len(ran) == 1 else ''} in the record; " if ran else "")
            + (f"{', '.join(dropped)} not run" if dropped else "nothing left out"))}

    def _build_or_fail(self, name: str, state: ResumeState) -> list[Attack]:
        """An escalation attack that cannot even be built is recorded as failed (the run goes on)."""
        from a3bench.attacks.registry import build_attack

        try:
            return build_attack(name)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 — the failure policy covers building too
            note = f"could not be built: {type(e).__name__}: {one_line(e)}"
            if not any(r.name == name for r in state.finished):
                state.finished.append(AttackRecord(name, self._acc(state), status=AttackStatus.FAILED, note=note))
            return []

    def escalate_after(self, state: ResumeState) -> bool:
        """After the cascade: a gradient-free attack broke significantly more than the white-box
        attacks missed, and nothing escalated yet → add the escalation attacks (they run on
        what is still robust)."""
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

    def _skip_reason(self, attack: Attack) -> str | None:
        """Why ``attack`` does not run on this model (None: it runs). Asking is part of the
        attack, so an attack that raises here fails like one that raises while attacking."""
        if attack.needs_input_gradient and not self.ev.input_gradient:
            return "the model's output does not depend differentiably on its input (no-input-gradient): a gradient attack cannot run"
        return attack.applies_to(self.ctx)

    def attack(self, i: int, attack: Attack, state: ResumeState) -> None:
        try:
            reason = self._skip_reason(attack)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 — the failure policy covers every step of an attack
            self._record_without_running(i, attack, state, AttackStatus.FAILED,
                                         f"failed before its first batch: {type(e).__name__}: {one_line(e)}")
            return
        if reason:
            self._record_without_running(i, attack, state, AttackStatus.SKIPPED, reason)
            return
        cur = state.current if state.current and state.current.get("index") == i else None
        if cur is None:
            todo = [k for k in range(self.n) if state.broken_by[k] is None]
            rec = AttackRecord(attack.name, None, n_attacked=len(todo), group=attack.group, config=attack.config(), kind=attack.kind)
            cur = {"index": i, "todo": todo, "batches_done": 0, "record": _jsonable(asdict(rec)), "unconfirmed": 0,
                   "unit": self.ev.cascade.unit(attack)}
            state.current = cur
        rec, todo = cur["record"], cur["todo"]
        bs = cur.get("unit") or self.ev.batch_size  # a state from before units: its batches
        t_attack, done_at_start = time.perf_counter(), cur["batches_done"]
        self.report("attack-start", attack.name, i, done=min(len(todo), cur["batches_done"] * bs), total=len(todo),
                    fwd=rec["forward_passes"], state=state)

        budget = attack.max_passes()
        per_example = budget[0] if budget and budget[0] else None
        engine, passes_at_start = self.ev.engine, self.ev.engine.passes

        def fraction() -> float:
            """Of this attack, done so far: finished batches, or the passes spent against its budget."""
            total = max(len(todo), 1)
            by_batches = (cur["batches_done"] - done_at_start) * bs / total
            by_passes = (engine.passes - passes_at_start) / (per_example * total) if per_example else 0.0
            left_at_start = 1.0 - done_at_start * bs / total
            return min(0.999, max(by_batches, by_passes) / max(left_at_start, 1e-9))

        def eta() -> float | None:
            f = fraction()
            return (time.perf_counter() - t_attack) / f * (1 - f) if f > 0.01 else None

        def on_batch(r: BatchResult) -> None:
            self._apply(attack, r, state, cur)
            self.meter.add(r.forward_passes, r.backward_passes, r.seconds)
            self.save(state)
            done = min(len(todo), (r.batch + 1) * bs)
            self.report("batch", attack.name, i, done=done, total=len(todo), fwd=rec["forward_passes"], state=state, eta_attack=eta())

        def tick(passes: int) -> None:
            done = min(len(todo), done_at_start * bs + int(fraction() * (len(todo) - done_at_start * bs)))
            self.report("tick", attack.name, i, done=done, total=len(todo), fwd=rec["forward_passes"] + passes - passes_at_start,
                        state=state, eta_attack=eta())

        engine.on_pass = tick if self.progress is not None else None
        try:
            end = self.ev.cascade.run(attack, self.ctx, todo, stage=i, start=cur["batches_done"], on_batch=on_batch, unit=bs)
        finally:
            engine.on_pass = None
        self._finish_attack(i, attack, state, cur, end)

    def _record_without_running(self, i: int, attack: Attack, state: ResumeState, status: AttackStatus, note: str) -> None:
        state.finished.append(AttackRecord(attack.name, self._acc(state), status=status, note=note, group=attack.group,
                                           config=_safe_config(attack), kind=attack.kind))
        state.current = None
        self.save(state)
        self.report("skipped" if status is AttackStatus.SKIPPED else "failed", attack.name, i, note=note, state=state)

    def _apply(self, attack: Attack, r: BatchResult, state: ResumeState, cur: dict) -> None:
        rec = cur["record"]
        for j, k in enumerate(r.examples):
            if r.correct_share is not None and state.correct_share is not None:
                state.correct_share[k] = min(state.correct_share[k], r.correct_share[j])
            if r.broken[j]:
                state.broken_by[k] = attack.name
                state.adv_pred[k] = int(r.pred[j])
                state.adv_distance[k] = float(r.distance[j])
        if r.points is not None and self.kept is not None and self.ev.shard.is_main:
            for k, point in zip((k for j, k in enumerate(r.examples) if r.broken[j]), r.points):
                self.kept.add(k, attack.name, point)
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
            self.report("probe", attack.name, index, done=min(len(todo), (r.batch + 1) * self.ev.batch_size), total=len(todo),
                        fwd=rec.forward_passes, state=state)

        end = self.ev.cascade.run(attack, self.ctx, todo, stage=PROBE_STAGE, on_batch=on_batch)
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
        from a3bench.eval.audit import audit_evaluation

        if not self.ev.shard.is_main:
            return None
        return audit_evaluation(self.ev, self.threat, self.plan.attacks, n_examples=min(n, self.n))

    # ------------------------------------------------------------------ the record

    def finish(self, state: ResumeState, probe_record: ProbeRecord | None, *, audited=None) -> EvaluationResult:
        n = self.n
        per_attack = [AttackRecord(**{**r.__dict__, "robust_acc": round(r.robust_acc, 4) if r.robust_acc is not None else None})
                      for r in state.finished]
        labels = self.ev.labels
        outcomes = Outcomes(
            robust=[b is None for b in state.broken_by],
            indices=self.ev.positions.tolist(),
            labels=labels,
            clean_pred=state.clean_pred,
            clean_correct=[p == t for p, t in zip(state.clean_pred, labels)],
            broken_by=state.broken_by,
            adv_pred=state.adv_pred,
            adv_distance=state.adv_distance,
            correct_share=state.correct_share,
        )
        flags = diagnostics.run_flags(self.plan.attacks, per_attack, state, n=n, num_classes=self.ev.info.num_classes,
                                      clean_acc=100.0 * sum(outcomes.clean_correct) / n if n else 0.0, probe=probe_record)
        flags += _escalation_flags(state)
        if audited is not None:
            flags += audited.flags
        record = self._record(per_attack, outcomes, flags, probe_record, state)
        if audited is not None:
            record.audit = {"file": audit_path(self.out).name if self.out is not None else None, **audited.summary()}
            record.compute["audit_seconds"] = round(float(audited.compute.get("seconds", 0.0)), 3)
        if not self.options.probe:
            record.compute["probe"] = "off (--no-probe)"
        adv = None
        if self.kept is not None and self.ev.shard.is_main:
            adv = self._adv_examples(state)
            broken = sum(1 for ok, by in zip(outcomes.clean_correct, state.broken_by) if ok and by is not None)
            record.adv = {"file": None, "points": len(adv), "broken": broken}
            if len(adv) < broken:
                record.notes.append(f"adversarial examples kept for {len(adv)} of the {broken} example(s) an attack broke: "
                                    "the others were broken before this run resumed, by an a3bench that kept none")
        elif not self.options.save_adv:
            record.compute["adv"] = "off (--no-adv)"
        path = None
        if self.out is not None and self.ev.shard.is_main:
            path = write_run(self.out, record, outcomes, audited, adv)  # together or not at all, under one run id
            if not self.options.keep_state:
                self.state_file.unlink(missing_ok=True)
                self.adv_state_file.unlink(missing_ok=True)
        self.report("done", robust=sum(outcomes.robust), total=n)
        return EvaluationResult(record, outcomes, path, adv)

    def _record(self, per_attack, outcomes: Outcomes, flags: list[Flag], probe_record, state) -> ResultRecord:
        from a3bench.models.a3 import a3_summary, has_a3

        ev, loaded, model, n = self.ev, self.ev.loaded, self.ev.model, self.n
        card, meta = loaded.card or ModelCard(), loaded.meta or {}
        n_clean, n_robust = sum(outcomes.clean_correct), sum(outcomes.robust)
        pct = lambda k: round(100.0 * k / n, 4) if n else 0.0  # noqa: E731
        lo, hi = wilson_interval(n_robust, n)
        fwd = sum(r.forward_passes for r in per_attack) + n * ev.deployed.draws + (probe_record.forward_passes if probe_record else 0)
        bwd = sum(r.backward_passes for r in per_attack) + (probe_record.backward_passes if probe_record else 0)
        verdict, reason = diagnostics.verdict(flags, strength_of(per_attack, self.plan.suite, randomised=outcomes.correct_share is not None),
                                              per_attack, state.escalation)
        randomised = None
        if outcomes.correct_share is not None:
            shares = outcomes.correct_share
            robust_shares = [s if ok else 0.0 for s, ok in zip(shares, outcomes.clean_correct)]
            randomised = {"draws": ev.deployed.draws, "rule": "broken when the majority of the draws misclassify (ties: correct)",
                          "expected_robust_acc": round(100.0 * sum(robust_shares) / n, 4) if n else 0.0}
        return ResultRecord(
            name=self.options.name or card.name or loaded.name,
            dataset=ev.info.name,
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
            seed=ev.seed,
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
                # over every session that resumed it; a state from before the clock was kept
                # knows at least what its attacks spent
                "seconds": round(max(self.elapsed(state), sum(r.seconds for r in per_attack)
                                     + (probe_record.seconds if probe_record else 0.0)), 3),
                "forward_passes": fwd,
                "backward_passes": bwd,
                "forward_passes_per_example": round(fwd / n, 3) if n else 0.0,
                "backward_passes_per_example": round(bwd / n, 3) if n else 0.0,
                **({"randomised": randomised} if randomised else {}),
            },
            a3=asdict(a3_summary(model)) if has_a3(model) else None,
            model={
                "spec": ev.options.spec if ev.options.spec is not None else loaded.name,
                "name": loaded.name,
                "source": loaded.source,
                "path": loaded.path,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "sha256": self.identity["model"],
                "trained_for": loaded.dataset,
            },
            provenance={**provenance(ev.dev, ev.shard.world), "engine": ev.engine.describe()},
        )


class _Meter:
    """The rate the model answers at in this run (forward-pass equivalents per second; a
    backward pass costs about two forward passes), for ETAs and projected costs."""

    def __init__(self) -> None:
        self.passes, self.seconds = 0.0, 0.0

    def add(self, forward: int, backward: int, seconds: float) -> None:
        self.passes += forward + 2 * backward
        self.seconds += seconds

    def rate(self) -> float | None:
        return self.passes / self.seconds if self.seconds > 0.5 and self.passes > 0 else None


def _safe_config(attack: Attack) -> dict:
    try:
        return attack.config()
    except Exception:  # noqa: BLE001 — a failing attack's record must still be written
        return {}


def _escalation_flags(state: ResumeState) -> list[Flag]:
    esc = state.escalation or {}
    left = esc.get("left_out") or []
    if not left:
        return []
    return [ESCALATION_CAPPED(f"--max-passes {esc.get('max_passes'):,} left out {', '.join(left)} (projected "
                              f"{esc.get('projected_forward_passes', 0):,} forward passes in all): the worst case lacks them",
                              value=float(len(left)))]


def _randomised(state: ResumeState) -> bool:
    return any(f.name == RANDOMIZED_OUTPUTS.name for f in state.flags)
