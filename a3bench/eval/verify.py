"""``a3bench verify``: re-check the adversarial examples behind a worst case, with forward
passes only (docs/verify.md).

- :func:`verify_record`: a record a3bench wrote, with its outcomes and its adversarial
  examples (``<stem>.adv.pt``, docs/results.md#adversarial-examples-advpt), all three of
  one run (run ids). Every example the record counts as broken is a *claim*: a clean
  misclassification is re-checked on the clean image; an attack's point must lie in the
  threat model (norm, eps, [0,1], tolerance 1e-6, as the judge's) and be misclassified —
  for a randomised model by the record's own rule, the majority of its ``draws`` fresh
  passes (:meth:`~a3bench.eval.judge.DeployedModel.judge`). The worst case is recomputed
  from the confirmed claims alone: an example counts as broken only if it is. On a
  randomised model a fresh vote can go the other way on a close call (6 of 10 draws wrong
  at the run, 4 of 10 now): a claim *fails* only when the fresh draws classify the point
  correctly significantly more often than not (the one-sided binomial test every verdict
  of a3bench uses, :func:`~a3bench.stats.significantly_above`); a close call is listed
  apart, not confirmed, and does not fail the verification.
- :func:`verify_external`: a RobustBench-style evaluation — a tensor of adversarial images
  for the first n test examples, made by anyone. Each point is checked the same way (a
  point outside the threat model counts as not broken, and is named) and the result is a
  verified robust-accuracy row, an ``external`` record that ``report`` shows beside
  a3bench's own (never ``reliable``: how hard the points were searched for is not known).

Cost: forward passes only — claims × draws for a record, (n + points judged) × draws for
an external file (the clean pass, then the points of the examples it classifies correctly).
The model is set up as every command sets it up (:class:`~a3bench.eval.setup.Evaluation`)
and judged as the judge judges (:mod:`a3bench.eval.judge`); every file read is untrusted
input (docs/untrusted-input.md).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from a3bench.advfile import AdvExamples, KeptPoints, read_adv, read_external_adv
from a3bench.errors import ModelSpecError, ResultError, excerpt, one_line
from a3bench.eval.judge import NO_PREDICTION, DeployedModel
from a3bench.eval.setup import DEFAULT_DRAWS, EvalOptions, Evaluation
from a3bench.eval.strength import EXTERNAL_SUITE
from a3bench.results import adv_path, outcomes_path, verify_run_ids
from a3bench.schema import (AttackKind, AttackRecord, ModelCard, Outcomes, ResultRecord, Verdict, outcome_problems, read_outcomes,
                            read_record)
from a3bench.threat import ThreatModel, format_eps

VerifyProgress = Callable[[int, int], None]  # (claims judged so far, claims to judge)
EXTERNAL_ATTACK = "external"  # the name the points of an external evaluation go by (per_attack, outcomes' broken_by)


@dataclass
class Failure:
    """A claim that did not hold: the example (its position in the test split), who claimed
    it (``clean`` or the attack) and why it failed."""

    position: int
    attack: str
    why: str


@dataclass
class Verification:
    """What ``verify`` found (docs/verify.md)."""

    n: int  # examples evaluated
    claimed: int  # examples claimed broken: clean misclassifications + attacks' points
    confirmed: int
    robust_acc: float  # percent, recomputed: broken only where a claim was confirmed
    claimed_robust_acc: float | None  # the record's (None for an external file)
    draws: int  # fresh forward passes per verdict (1: a deterministic model)
    forward_passes: int
    seconds: float
    failures: list[Failure] = field(default_factory=list)
    unverifiable: list[Failure] = field(default_factory=list)  # claimed broken by an attack, no point kept
    close: list[Failure] = field(default_factory=list)  # randomised model: the fresh vote went the other way, within chance
    clean_claims: int = 0
    point_claims: int = 0
    outside: int = 0  # points outside the threat model (external: counted as not broken)
    notes: list[str] = field(default_factory=list)
    record: ResultRecord | None = None  # external: the verified row
    outcomes: Outcomes | None = None
    adv: AdvExamples | None = None  # external: the confirmed points
    path: Path | None = None  # external: where the row was written

    @property
    def passed(self) -> bool:
        """Every claim confirmed (exit 0); else exit 1."""
        return not self.failures and not self.unverifiable


# --------------------------------------------------------------------------- the model a record names


def spec_runs_code(spec: str) -> bool:
    """Whether loading ``spec`` would import and run Python (``file.py:factory``,
    ``package.module:factory``, an ensemble with such a member). A record is untrusted
    input: ``verify`` loads only data from the spec it names (zoo names, checkpoints, read
    with weights only; RobustBench's zoo); a spec that runs code must be given with
    ``--model``, knowingly (docs/untrusted-input.md#your-code-by-design)."""
    from a3bench.models.spec import ENSEMBLE_PREFIX, parse_ensemble_spec
    from a3bench.models.zoo import zoo_path

    if spec.startswith(ENSEMBLE_PREFIX):
        return any(spec_runs_code(m) for m in parse_ensemble_spec(spec).members)
    if spec.startswith("robustbench:") or zoo_path(spec) is not None:
        return False
    try:
        exists = Path(spec).exists()
    except (OSError, ValueError):
        exists = False
    return ":" in spec and not exists


def _load_model(spec: str | None, record: ResultRecord, device, *, allow_different_model: bool):
    """The model to verify with: ``spec`` (--model) or the record's own; its weights must be
    the record's (sha256) unless ``allow_different_model``."""
    from a3bench.eval.judge import model_fingerprint
    from a3bench.models import load_model

    given = spec is not None
    spec = spec if given else (record.model or {}).get("spec")
    if not isinstance(spec, str) or not spec:
        raise ModelSpecError("the record names no model spec: pass --model SPEC")
    if not given and spec_runs_code(spec):
        raise ModelSpecError(f"the record's model spec {excerpt(spec, 120)} would import and run Python code: "
                             "a record is not trusted to do that; pass --model SPEC to run it knowingly")
    try:
        loaded = load_model(spec, dataset=record.dataset, norm=record.norm, device=device)
    except ModelSpecError as e:
        hint = "" if given else " (the record's spec; pass --model SPEC to load it from elsewhere)"
        raise ModelSpecError(f"{e}{hint}") from None
    theirs = (record.model or {}).get("sha256")
    if not allow_different_model:
        ours = model_fingerprint(loaded.model)
        if not theirs:
            raise ResultError("the record does not say which weights it evaluated (model.sha256): "
                              "pass --allow-different-model to verify with these anyway")
        if ours != theirs:
            raise ResultError(f"model {excerpt(spec, 80)} has other weights than the record's (sha256 {ours[:12]}… vs "
                              f"{str(theirs)[:12]}…): pass the model the record evaluated, or --allow-different-model")
    return spec, loaded


# --------------------------------------------------------------------------- judging


@dataclass
class _Judged:
    pred: list[int]
    share: list[float]  # of the draws that classified correctly

    def wrong(self, i: int) -> bool:
        return self.share[i] < 0.5


def _judge(deployed: DeployedModel, x: torch.Tensor, y: torch.Tensor, batch_size: int, progress: Callable[[int], None]) -> _Judged:
    """The judge's verdict on ``x``, batch by batch (its device is the model's)."""
    pred: list[int] = []
    share: list[float] = []
    for s in range(0, x.shape[0], batch_size):
        v = deployed.judge(x[s : s + batch_size], y[s : s + batch_size])
        pred += v.pred.tolist()
        share += v.correct_share.tolist()
        progress(x[s : s + batch_size].shape[0])
    deployed.restore()
    return _Judged(pred, share)


def _refuted(judged: _Judged, i: int, draws: int) -> bool:
    """Not confirmed, and not by chance: a deterministic model classified it correctly, or a
    randomised one did so in significantly more than half of the fresh draws."""
    from a3bench.stats import significantly_above

    return draws == 1 or significantly_above(round(judged.share[i] * draws), draws, 0.5)


def _why_correct(judged: _Judged, i: int, label: int, draws: int, at_run: float | None = None) -> str:
    if draws > 1:
        wrong = round((1 - judged.share[i]) * draws)
        run = f" (at the run: {round((1 - at_run) * draws)} of {draws})" if at_run is not None else ""
        return f"{wrong} of {draws} fresh draws misclassify it{run}: not a majority"
    if judged.pred[i] == NO_PREDICTION:
        return "the model's logits are not finite on it"
    return f"the model classifies it correctly (as {label}, its label)"


def _counter(total: int, progress: VerifyProgress | None) -> Callable[[int], None]:
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    return step


def _distance_note(threat: ThreatModel, point: torch.Tensor, x: torch.Tensor) -> str:
    d = float(threat.distance(point[None], x[None]).item())
    if d > threat.eps + 1e-6:
        return f"outside {threat.label}: its {threat.norm.value} distance to the example is {d:.6g}"
    return "outside [0,1]"


# --------------------------------------------------------------------------- a record


def verify_record(record_path: str | Path, *, model: str | None = None, allow_different_model: bool = False,
                  device: Any = "auto", batch_size: int = 256, data_dir: str | Path | None = None,
                  progress: VerifyProgress | None = None) -> Verification:
    """Re-check every claim of the record at ``record_path`` (module docstring). Bad input —
    a missing or malformed file, files of different runs, a record that disagrees with its
    outcomes, another model — is one A3BenchError line; claims that fail are in the result."""
    from a3bench.data import load_dataset

    path = Path(record_path)
    record = read_record(path)
    named = path.parent / Path(record.outcomes_file).name if record.outcomes_file else None
    opath = named if named is not None and named.is_file() else outcomes_path(path)
    outcomes = read_outcomes(opath)
    problems = verify_run_ids(path) + outcome_problems(record, outcomes)
    if problems:
        raise ResultError(f"{path}: {problems[0]}")
    if outcomes.indices is None or outcomes.clean_correct is None or outcomes.broken_by is None:
        raise ResultError(f"{opath} lacks indices, clean_correct or broken_by: it cannot say which examples are claimed broken")
    vpath = adv_path(path)
    if not vpath.is_file():
        why = ("the run kept none (--no-adv)" if (record.compute or {}).get("adv") else
               "made by an a3bench that kept none, or the file was removed" if record.adv is None else "it is missing")
        raise ResultError(f"no adversarial examples beside {path} ({vpath.name}): {why}; rerun the evaluation to verify it")
    adv = read_adv(vpath, ResultError)
    if adv.run_id != record.run_id:
        raise ResultError(f"{vpath} is from another run than the record {path}")
    mine = (record.dataset, record.norm, float(record.eps), record.n_examples)
    if (adv.dataset, adv.norm, adv.eps, adv.n_examples) != mine:
        raise ResultError(f"{vpath} is for {excerpt(adv.dataset)} {excerpt(adv.norm)} eps {adv.eps:g} n {adv.n_examples}, "
                          f"the record for {record.dataset} {record.norm} eps {record.eps:g} n {record.n_examples}")
    if record.adv is not None and record.adv.get("points") != len(adv):
        raise ResultError(f"{vpath} holds {len(adv)} point(s); the record says {record.adv.get('points')}")
    n = outcomes.n
    where = {int(p): k for k, p in enumerate(outcomes.indices)}
    if len(where) != n:
        raise ResultError(f"{opath}: indices list an example twice")
    point_of: dict[int, int] = {}
    for i, p in enumerate(adv.positions.tolist()):
        k = where.get(p)
        if k is None:
            raise ResultError(f"{vpath}: point {i} is for position {p}, not an example of the record")
        by = outcomes.broken_by[k]
        if not outcomes.clean_correct[k] or by is None or by != adv.attack_of(i):
            said = "robust" if by is None else "misclassified clean" if not outcomes.clean_correct[k] else f"broken by {by}"
            raise ResultError(f"{vpath}: point {i} (position {p}) says {excerpt(adv.attack_of(i))} broke it; "
                              f"the outcomes say it is {excerpt(said)}")
        point_of[k] = i

    from a3bench.device import resolve_device

    threat = ThreatModel(record.norm, record.eps)
    device = resolve_device(device)
    spec, loaded = _load_model(model, record, device, allow_different_model=allow_different_model)
    data = load_dataset(record.dataset, "test", data_dir)
    if n > len(data) or data.first(n).positions.tolist() != list(outcomes.indices):
        raise ResultError(f"{opath}: its examples are not the first {n} of {record.dataset}'s test split")
    randomised = (record.compute or {}).get("randomised")
    draws = randomised.get("draws") if isinstance(randomised, dict) else 1
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= 10_000:
        raise ResultError(f"{path}: compute.randomised.draws must be an integer in 1…10000, got {excerpt(draws)}")
    ev = Evaluation(loaded, data, EvalOptions(n_examples=n, seed=record.seed, batch_size=batch_size, device=device, draws=draws,
                                              spec=spec, data_dir=data_dir, engine="plain"))
    if outcomes.labels is not None and outcomes.labels != ev.labels:
        raise ResultError(f"{opath}: its labels are not {record.dataset}'s")
    if tuple(adv.points.shape[1:]) != tuple(ev.x.shape[1:]) and len(adv):
        raise ResultError(f"{vpath}: points of shape {tuple(adv.points.shape[1:])}, {record.dataset}'s images are {tuple(ev.x.shape[1:])}")
    ev.deployed.draws = draws

    clean_claims = [k for k in range(n) if not outcomes.clean_correct[k]]
    attack_claims = [k for k in range(n) if outcomes.clean_correct[k] and outcomes.broken_by[k] is not None]
    positions = outcomes.indices
    res = Verification(n=n, claimed=len(clean_claims) + len(attack_claims), confirmed=0, robust_acc=0.0,
                       claimed_robust_acc=record.robust_acc, draws=draws, forward_passes=0, seconds=0.0,
                       clean_claims=len(clean_claims), point_claims=len(point_of))
    for k in attack_claims:
        if k not in point_of:
            res.unverifiable.append(Failure(positions[k], str(outcomes.broken_by[k]), "no point kept (the run resumed a state "
                                            "from an a3bench that kept none)"))
    t0 = time.perf_counter()
    with ev.frozen():
        torch.manual_seed(record.seed)  # a randomised model's draws: the same verdicts every time verify runs
        pts = sorted(point_of)
        points = adv.points[[point_of[k] for k in pts]].to(ev.dev) if pts else ev.x[:0]
        x = ev.x[pts] if pts else ev.x[:0]
        outside = threat.violations(points, x) if pts else torch.zeros(0, dtype=torch.bool)
        inside = [j for j in range(len(pts)) if not bool(outside[j])]
        for j in range(len(pts)):
            if bool(outside[j]):
                k = pts[j]
                res.failures.append(Failure(positions[k], adv.attack_of(point_of[k]), _distance_note(threat, points[j], x[j])))
        res.outside = len(pts) - len(inside)
        step = _counter(len(clean_claims) + len(inside), progress)
        labels = ev.y
        confirmed: set[int] = set()
        share = outcomes.correct_share  # randomised: the share of the run's draws still correct
        for ks, xs, name in ((clean_claims, lambda ks: ev.x[ks], lambda k: "clean"),
                             ([pts[j] for j in inside], lambda ks: points[inside], lambda k: adv.attack_of(point_of[k]))):
            if not ks:
                continue
            judged = _judge(ev.deployed, xs(ks), labels[ks], batch_size, step)
            for i, k in enumerate(ks):
                if judged.wrong(i):
                    confirmed.add(k)
                    continue
                why = _why_correct(judged, i, int(labels[k]), draws, share[k] if share is not None else None)
                if name(k) == "clean":
                    why = "misclassified without attack, says the record; " + why
                (res.failures if _refuted(judged, i, draws) else res.close).append(Failure(positions[k], name(k), why))
    res.seconds = time.perf_counter() - t0
    res.forward_passes = (len(clean_claims) + len(inside)) * draws
    res.confirmed = len(confirmed)
    res.robust_acc = 100.0 * (n - len(confirmed)) / n if n else 0.0
    res.failures.sort(key=lambda f: f.position)
    res.close.sort(key=lambda f: f.position)
    return res


# --------------------------------------------------------------------------- an external evaluation


def verify_external(adv_file: str | Path, loaded_model, dataset, threat: ThreatModel, *, spec: str | None = None,
                    device: Any = "auto", batch_size: int = 256, draws: int = DEFAULT_DRAWS, seed: int = 0,
                    data_dir: str | Path | None = None, out: str | Path | None = None,
                    progress: VerifyProgress | None = None) -> Verification:
    """A verified robust-accuracy row from a tensor of adversarial images for the first n
    test examples (module docstring); with ``out``, written as an ``external`` record with
    its outcomes and the confirmed points (so ``a3bench verify OUT`` re-checks it too)."""
    from a3bench.results import OutputLock, write_run

    adv_file = Path(adv_file)
    points = read_external_adv(adv_file, ResultError)
    n = int(points.shape[0])
    if n == 0:
        raise ResultError(f"{adv_file} holds no images")
    if n > len(dataset):
        raise ResultError(f"{adv_file} holds {n} images; {dataset.info.name}'s test split has {len(dataset)}")
    shape = tuple(dataset.first(1).tensors("cpu")[0].shape[1:])
    if tuple(points.shape[1:]) != shape:
        raise ResultError(f"{adv_file}: images of shape {tuple(points.shape[1:])}; {dataset.info.name}'s are {shape} "
                          f"(expected {n}×{'×'.join(map(str, shape))}: the first {n} test images)")
    sha = _sha256(adv_file)
    ev = Evaluation(loaded_model, dataset, EvalOptions(n_examples=n, seed=seed, batch_size=batch_size, device=device, draws=draws,
                                                       spec=spec, data_dir=data_dir, engine="plain"))
    with OutputLock(out if ev.shard.is_main else None, ev.loaded):
        t0 = time.perf_counter()
        with ev.frozen():
            randomised = ev.detect_randomness()
            d = ev.deployed.draws
            clean = ev.clean_pass()
            correct = clean.correct(ev.labels)
            points = points.to(ev.dev)
            outside = threat.violations(points, ev.x)
            judge = [k for k in range(n) if correct[k] and not bool(outside[k])]
            step = _counter(len(judge), progress)
            torch.manual_seed(seed)
            judged = _judge(ev.deployed, points[judge], ev.y[judge], batch_size, step) if judge else _Judged([], [])
        seconds = time.perf_counter() - t0
        res = Verification(n=n, claimed=len(judge), confirmed=0, robust_acc=0.0, claimed_robust_acc=None, draws=d,
                           forward_passes=(n + len(judge)) * d, seconds=seconds, point_claims=len(judge))
        positions = ev.positions.tolist()
        for k in range(n):
            if bool(outside[k]):
                res.failures.append(Failure(positions[k], EXTERNAL_ATTACK, _distance_note(threat, points[k], ev.x[k]) + ": counted as not broken"))
        res.outside = int(outside.sum())
        broken_by: list[str | None] = [None if ok else "clean" for ok in correct]
        adv_pred: list[int | None] = [None] * n
        adv_distance: list[float | None] = [None] * n
        share = list(clean.correct_share) if clean.correct_share is not None else None
        distance = threat.distance(points, ev.x).float().cpu().tolist()
        kept = KeptPoints()
        for i, k in enumerate(judge):
            if share is not None:
                share[k] = min(share[k], judged.share[i])
            if judged.wrong(i):
                broken_by[k], adv_pred[k], adv_distance[k] = EXTERNAL_ATTACK, judged.pred[i], distance[k]
                kept.add(k, EXTERNAL_ATTACK, points[k].cpu())
        res.confirmed = len(kept)
        outcomes = Outcomes(robust=[b is None for b in broken_by], indices=positions, labels=ev.labels, clean_pred=clean.pred,
                            clean_correct=correct, broken_by=broken_by, adv_pred=adv_pred, adv_distance=adv_distance,
                            correct_share=share)
        res.robust_acc = 100.0 * sum(outcomes.robust) / n
        adv = kept.examples(ev.positions, shape, n_examples=n, dataset=ev.info.name, norm=threat.norm.value, eps=threat.eps)
        record = _external_record(ev, threat, outcomes, adv_file, sha, res, randomised=randomised)
        record.adv = {"file": None, "points": len(adv), "broken": len(adv)}
        res.record, res.outcomes, res.adv = record, outcomes, adv
        if out is not None and ev.shard.is_main:
            res.path = write_run(out, record, outcomes, adv=adv)
    return res


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _external_record(ev: Evaluation, threat: ThreatModel, outcomes: Outcomes, adv_file: Path, sha: str, res: Verification, *,
                     randomised: bool) -> ResultRecord:
    """The verified row: a record of the existing schema, suite ``external``, one step in
    ``per_attack`` (the file), never ``reliable``."""
    from a3bench.eval.judge import model_fingerprint
    from a3bench.eval.provenance import provenance
    from a3bench.stats import wilson_interval

    loaded, model, n = ev.loaded, ev.model, ev.n
    card, meta = loaded.card or ModelCard(), loaded.meta or {}
    n_clean, n_robust = sum(outcomes.clean_correct), sum(outcomes.robust)
    lo, hi = wilson_interval(n_robust, n)
    d = ev.deployed.draws
    inside = n - res.outside
    step = AttackRecord(
        EXTERNAL_ATTACK, round(100.0 * n_robust / n, 4), broken=res.confirmed, n_attacked=n_clean, seconds=round(res.seconds, 3),
        forward_passes=res.point_claims * d,
        note=(f"adversarial examples from {one_line(adv_file.name, 120)} (sha256 {sha[:12]}…), re-checked by a3bench verify: "
              f"{inside} of {n} in {threat.label} and [0,1]" + (f", {res.outside} outside (counted as not broken)" if res.outside else "")),
        config={"file": one_line(adv_file.name, 200), "sha256": sha},
        kind=AttackKind.TRANSFER)  # crafted elsewhere, only judged here: the closest declared kind
    compute = {"seconds": round(res.seconds, 3), "forward_passes": res.forward_passes, "backward_passes": 0,
               "forward_passes_per_example": round(res.forward_passes / n, 3), "backward_passes_per_example": 0.0}
    if randomised:
        compute["randomised"] = {"draws": d, "rule": "broken when the majority of the draws misclassify (ties: correct)",
                                 "expected_robust_acc": round(100.0 * sum(s if ok else 0.0 for s, ok in
                                                                          zip(outcomes.correct_share, outcomes.clean_correct)) / n, 4)}
    return ResultRecord(
        name=card.name or loaded.name, dataset=ev.info.name, eps=threat.eps, clean_acc=round(100.0 * n_clean / n, 4),
        robust_acc=round(100.0 * n_robust / n, 4), link=card.link, authors=card.authors_text, additional_data=card.additional_data,
        number_forward_passes=card.number_forward_passes, venue=card.venue,
        architecture=str(meta.get("architecture") or card.architecture or getattr(model, "arch", None) or type(model).__name__),
        reported=card.reported, footnote=card.footnote, norm=threat.norm.value, eps_text=format_eps(threat.eps), n_examples=n,
        seed=ev.seed, suite=EXTERNAL_SUITE, attacks=[EXTERNAL_ATTACK], per_attack=[step],
        notes=[f"external evaluation: the adversarial examples of {one_line(adv_file.name, 120)}, each re-checked by a3bench verify "
               "(in the threat model, misclassified by a fresh forward pass); how they were found is not known here"],
        robust_acc_ci=[round(lo, 4), round(hi, 4)], flags=[], verdict=Verdict.NOT_EVALUATED_FULLY,
        verdict_reason=("an external evaluation: a3bench re-checked its adversarial examples, not how hard they were searched "
                        "for; a3bench attack --suite standard or full gives a number to rank"),
        compute=compute,
        model={"spec": ev.options.spec if ev.options.spec is not None else loaded.name, "name": loaded.name, "source": loaded.source,
               "path": loaded.path, "parameters": int(sum(p.numel() for p in model.parameters())),
               "sha256": model_fingerprint(model), "trained_for": loaded.dataset},
        provenance={**provenance(ev.dev, ev.shard.world), "engine": ev.engine.describe()},
    )
