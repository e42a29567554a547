"""Is the evaluation trustworthy? Flags computed from the run, never hand-set (docs/architecture.md#diagnostics-and-the-verdict).

This module owns the flag set and the verdict roll-up. Each ``*_flags`` function looks at
the model, the finished cascade or a sweep and returns :class:`~a3bench.schema.Flag`
objects; :func:`run_flags` gathers those of one evaluation and :func:`verdict` turns all
flags into reliable / suspicious / unreliable. Attacks are told apart by what they declare
(``kind``, ``reveals``), never by their names.

To add a flag: write a function here returning ``list[Flag]``, call it from
:func:`run_flags` (or from a sweep), and give it a section (anchor = flag name) in
docs/diagnostics.md. AutoAttack's own sanity checks (``pyautoattack/checks.py``) are reused
as they are: their warnings are collected instead of printed and become flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.attacks.pgd import input_grad
from a3bench import flags as F_
from a3bench.schema import AttackKind, AttackRecord, AttackStatus, Flag, ProbeRecord, Severity, Strength, Verdict
from a3bench.threat import Norm, format_eps, parse_norm

WARNING, ERROR = Severity.WARNING, Severity.ERROR
GAP_POINTS = 1.0  # percentage points: what a later attack may add before a flag fires
PROBE_EXAMPLES = 200
NEAR_CHANCE = 0.1  # clean accuracy within 10 % of the way from chance to 100 % is "near chance"
# no-saturation: a sound evaluation drives accuracy to about 0 once eps is large enough to
# turn any image into any other: half the pixel range in Linf, 5.0 in L2 (typical 28×28
# images are 5–10 apart; on 3×32×32 more, so 5.0 is a floor).
SATURATION_EPS = {Norm.LINF: 0.5, Norm.L2: 5.0}
SATURATION_ACC = 5.0  # percent



class _Collect:
    """A stand-in for the ``logger`` argument of pyautoattack's checks: keeps the messages."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def warning(self, msg: str) -> None:
        self.messages.append(" ".join(str(msg).split()))

    info = debug = warning


def _run_check(check: Callable[[_Collect], object]) -> list[str]:
    sink = _Collect()
    check(sink)
    return sink.messages


# --------------------------------------------------------------------------- the model itself


@dataclass
class Sanity:
    """What the checks before any attack found."""

    flags: list[Flag]
    diagnostics: dict  # kept in the record (where the input's gradient path is cut)


def sanity_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, randomised: bool, threat=None, seed: int = 0) -> Sanity:
    """AutoAttack's checks on one batch — randomised outputs (decided by the caller with
    :func:`~a3bench.eval.judge.detect_randomness`; a warning: the runner handles it with
    EOT and majority-of-draws judging), softmax instead of logits, zero gradients, a
    dynamic (autograd inside forward) defense — and whether the output depends
    differentiably on the input at all (``no-input-gradient``; then where the path is cut,
    when :func:`~a3bench.attacks.graph.locate_lie` can find it)."""
    from a3bench._compat import import_autoattack

    checks = import_autoattack().checks
    flags: list[Flag] = []
    kept: dict = {}
    if randomised:
        with torch.no_grad():
            spread = (model(x) - model(x)).abs().nan_to_num(0.0).max().item()
        flags.append(F_.RANDOMIZED_OUTPUTS(
            "the model's outputs change between identical forward passes: gradient attacks see noise; "
            "a3bench judges it by the majority of fresh draws and adds EOT", value=spread, severity=WARNING))
    msgs = _run_check(lambda log: checks.check_range_output(model, x, logger=log))
    if msgs:
        flags.append(F_.SOFTMAX_OUTPUTS("the model returns probabilities, not logits: CE/DLR gradients vanish; return logits"))
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(xg), y, reduction="sum")
        grad = input_grad(loss, xg) if loss.requires_grad else None
    if grad is None:
        where = _cut_location(model, x, threat, seed)
        kept["input_gradient"] = {"present": False, "where": where}
        flags.append(F_.NO_INPUT_GRADIENT(
            "the output does not depend differentiably on the input (no autograd path from the input to the logits"
            + (f"; {where}" if where else "") + "): " + F_.NO_INPUT_GRADIENT.advice))
    elif _run_check(lambda log: checks.check_zero_gradients(grad, logger=log)):
        frac = (grad.flatten(1).abs().sum(1) == 0).float().mean().item()
        flags.append(F_.ZERO_GRADIENTS(f"{100 * frac:.1f} % of examples have an exactly zero input gradient: "
                                       + F_.ZERO_GRADIENTS.advice, value=round(100 * frac, 4)))
    # autograd inside forward (check_dynamic). Its call counters are module globals that
    # never reset, so one dynamic model would flag every later one: reset them first.
    for key in checks.funcs:
        checks.funcs[key] = 0
    with torch.no_grad():
        msgs = _run_check(lambda log: checks.check_dynamic(model, x, False, logger=log))
    if msgs:
        flags.append(F_.DYNAMIC_DEFENSE("the forward pass calls autograd (a test-time optimisation defense?): standard attacks may be insufficient"))
    return Sanity(flags, kept)


def _cut_location(model: nn.Module, x: torch.Tensor, threat, seed: int) -> str | None:
    """Where the input's gradient path is cut, in words; None when the lie location cannot say."""
    from a3bench.attacks.graph import locate_lie

    try:
        loc = locate_lie(model, x[:8], threat=threat, seed=seed)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception:  # noqa: BLE001 — a finding about the model; where exactly is a bonus
        return None
    return loc.message if loc.found else None


def gradient_lies(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat, *, seed: int, positions: torch.Tensor,
                  randomised: bool, input_gradient: bool = True) -> tuple[list[Flag], dict]:
    """Is the gradient the gradient? autograd against finite differences per example
    (:mod:`a3bench.eval.gradcheck`); when it is not, where it stops matching
    (:func:`a3bench.attacks.graph.locate_lie`). Returns the flags and what the record keeps.
    A model without an input gradient is not checked (``no-input-gradient`` says it all)."""
    from a3bench.attacks.graph import locate_lie
    from a3bench.eval.gradcheck import check_gradients, gradient_flags

    if not input_gradient:
        return [], {"gradient_check": {"skipped": "the output does not depend differentiably on the input"}}
    check = check_gradients(model, x, y, threat, seed=seed, indices=positions, randomized=randomised)
    kept: dict = {"gradient_check": check.to_dict()}
    flags = gradient_flags(check)
    if flags:
        try:
            location = locate_lie(model, x[:16], threat=threat, seed=seed)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # noqa: BLE001 — the lie stands; only where it sits is unknown
            from a3bench.errors import one_line

            kept["lie_location"] = {"found": False, "message": f"the lie could not be located: {type(e).__name__}: {one_line(e)}"}
        else:
            kept["lie_location"] = location.to_dict()
            flags = gradient_flags(check, location=location)
    return flags, kept


def near_chance_flags(clean_acc: float, num_classes: int) -> list[Flag]:
    """A model near chance has nothing to be robust about: its robust number means nothing."""
    chance = 100.0 / max(num_classes, 1)
    if clean_acc > chance + NEAR_CHANCE * (100.0 - chance):
        return []
    return [F_.CLEAN_NEAR_CHANCE(f"clean accuracy {clean_acc:.2f} % is near chance ({chance:.1f} % for {num_classes} "
                                               "classes): the model, its weights or the dataset are wrong", value=round(clean_acc, 4))]


def nonfinite_flags(count: int) -> list[Flag]:
    if not count:
        return []
    return [F_.NON_FINITE_OUTPUTS(f"{count} verdict(s) met NaN or infinite logits (counted as misclassified): "
                                              "the model is numerically broken, its numbers mean nothing", value=float(count))]


# --------------------------------------------------------------------------- the cascade


def apgd_warning_flags(messages: Sequence[str]) -> list[Flag]:
    """Warnings pyautoattack logged while attacking (e.g. zero gradients inside APGD). Its
    pointer to its own "flags_doc.md" is dropped: a3bench's user has no such file, and the
    flag's docs are ``a3bench flags zero-gradients-in-apgd``."""
    zero = [re.sub(r"\s*See \S+ for details\.?", "", m) for m in messages if "zero gradient" in m]
    if not zero:
        return []
    return [F_.ZERO_GRADIENTS_IN_APGD(f"APGD met zero gradients ({len(zero)} batch(es)): {zero[0]}")]


def reveal_flags(attacks: Sequence, per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """An attack that declares ``reveals`` (a :class:`~a3bench.flags.FlagKind`) broke
    significantly more than the flag's threshold of the examples that every white-box attack
    before it survived: it shows what the white-box numbers missed. Significantly: the
    one-sided binomial test at this n (:func:`~a3bench.stats.significantly_above`), so that a
    count of 2 of 500 against a 0.2 % threshold is not taken for a signal."""
    from a3bench.stats import significantly_above

    flags: dict[str, Flag] = {}
    white_box_before = False
    for attack, rec in zip(attacks, per_attack):
        if rec.status is not AttackStatus.RAN:
            continue
        kind = getattr(attack, "reveals", None)
        if kind is not None and white_box_before and kind.name not in flags:
            threshold = kind.threshold if kind.threshold is not None else GAP_POINTS
            share = 100.0 * rec.broken / n if n else 0.0
            if significantly_above(rec.broken, n, threshold / 100.0):
                flags[kind.name] = kind(f"{rec.name} broke {rec.broken} example(s) ({share:.2f} %) that every white-box attack "
                                        f"before it missed, significantly more than {threshold:g} %: {kind.advice}",
                                        value=round(share, 4))
        if rec.kind in (AttackKind.WHITE_BOX, AttackKind.EOT) and kind is None:
            white_box_before = True
    return list(flags.values())


def unconfirmed_flags(per_attack: Sequence[AttackRecord], unconfirmed: dict[str, int], n: int) -> list[Flag]:
    """Attacks claimed successes that a fresh forward pass did not confirm (randomness, train-mode
    layers, fp16 ...). One flag for the run; the message names each attack and its count.
    AutoAttack's own claims get their own flag: its self-reported number is then not its number."""
    counts = {name: count for name, count in unconfirmed.items() if count}
    if not counts:
        return []
    total = sum(counts.values())
    per = ", ".join(f"{name} {count}" for name, count in counts.items())
    flags = [F_.UNCONFIRMED_SUCCESSES(
                  f"{total} claimed success(es) not confirmed by a fresh eval-mode forward pass ({per}); they count as robust",
                  value=float(total))]
    aa = sum(counts.get(r.name, 0) for r in per_attack if r.group in ("autoattack", "autoattack-rand"))
    aa_acc = autoattack_accuracy(per_attack)
    if aa and aa_acc is not None and n:
        own = aa_acc - 100.0 * aa / n
        flags.append(F_.AUTOATTACK_SELF_REPORT_DIFFERS(
                          f"AutoAttack's own robust accuracy would be {own:.2f} %, the re-check of its adversarial examples "
                          f"gives {aa_acc:.2f} %: {aa} of its successes do not hold on the deployed model", value=round(aa_acc - own, 4)))
    return flags


def failed_flags(per_attack: Sequence[AttackRecord]) -> list[Flag]:
    """Attacks that raised an error on this model: the worst case lacks (part of) them."""
    failed = [rec for rec in per_attack if rec.status is AttackStatus.FAILED]
    if not failed:
        return []
    what = "; ".join(f"{rec.name} {rec.note}" for rec in failed)
    return [F_.ATTACK_FAILED(f"{len(failed)} attack(s) stopped with an error and were left out: {what}",
                 value=float(len(failed)))]


def budget_flags(violations: dict[str, int]) -> list[Flag]:
    """Adversarial examples outside the eps-ball or [0,1] (only reported when the runner is not strict)."""
    return [F_.BUDGET_VIOLATION(f"{name}: {count} example(s) outside the threat model; they count as robust", value=float(count))
            for name, count in violations.items() if count]


def autoattack_accuracy(per_attack: Sequence[AttackRecord]) -> float | None:
    """AutoAttack's own number: known when all its components ran first in the cascade."""
    ran = [r for r in per_attack if r.status is AttackStatus.RAN]
    for group in ("autoattack", "autoattack-rand"):
        k = 0
        while k < len(ran) and ran[k].group == group:
            k += 1
        if k and k == sum(1 for r in per_attack if r.group == group) and ran[k - 1].robust_acc is not None:
            return round(ran[k - 1].robust_acc, 4)
    return None


def adaptive_flags(per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """The attacks after AutoAttack broke more than GAP_POINTS of the examples AutoAttack
    left robust: AutoAttack's number is not reliable for this model."""
    groups = [rec.group for rec in per_attack]
    aa = [g for g in ("autoattack", "autoattack-rand") if g in groups]
    if not aa:
        return []
    last_aa = max(i for i, g in enumerate(groups) if g == aa[0])
    if any(g != aa[0] for g in groups[: last_aa + 1]):
        return []  # AutoAttack did not run first: its own number is not in the cascade
    after = [rec for rec in per_attack[last_aa + 1 :] if rec.status is AttackStatus.RAN]
    broken = sum(rec.broken for rec in after)
    share = 100.0 * broken / n if n else 0.0
    if share <= GAP_POINTS:
        return []
    top = max(after, key=lambda r: r.broken)
    return [F_.ADAPTIVE_BEATS_AUTOATTACK(
                 f"the attacks after AutoAttack lowered robust accuracy by {share:.2f} points (most: {top.name}, {top.broken}): "
                 "AutoAttack is unreliable for this model; report the worst case", value=round(share, 4))]


# --------------------------------------------------------------------------- convergence


def _pgd_family(attack) -> tuple | None:
    """(loss, step, random start) of a plain a3bench PGD attack, None for anything else."""
    from a3bench.attacks.pgd import FGSM, PGD

    if type(attack) is not PGD or isinstance(attack, FGSM):
        return None
    return (attack.loss_name, attack.step_size, attack.random_start)


def convergence_pairs_present(attacks) -> bool:
    fams = [(_pgd_family(a), getattr(a, "steps", 0)) for a in attacks]
    return any(fa is not None and fa == fb and kb >= 2 * ka for i, (fa, ka) in enumerate(fams) for fb, kb in fams[i + 1 :])


def convergence_flags(attacks, per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """PGD-2K (or more) after PGD-K in the cascade still broke > GAP_POINTS: not converged."""
    flags = []
    ran = {rec.name: rec for rec in per_attack if rec.status is AttackStatus.RAN}
    for i, a in enumerate(attacks):
        fam = _pgd_family(a)
        if fam is None or a.name not in ran:
            continue
        for b in attacks[i + 1 :]:
            if _pgd_family(b) == fam and b.steps >= 2 * a.steps and b.name in ran:
                share = 100.0 * ran[b.name].broken / n if n else 0.0
                if share > GAP_POINTS:
                    flags.append(F_.NOT_CONVERGED(
                                      f"{b.name} still broke {share:.2f} % after {a.name}: PGD has not converged; run more iterations",
                                      value=round(share, 4)))
                break
    return flags


def probe_target(attacks):
    """The PGD whose convergence the probe checks: the plan's longest plain PGD, when the
    plan has no PGD-K / PGD-2K pair that answers the question already."""
    pgds = [a for a in attacks if _pgd_family(a) is not None]
    if not pgds or convergence_pairs_present(attacks):
        return None
    return max(pgds, key=lambda a: a.steps)


def probe_attack(target):
    """PGD with twice the target's iterations, same loss, step and start."""
    from a3bench.attacks.pgd import PGD

    steps = 2 * target.steps
    return PGD(steps, step_size=target.step_size, loss=target.loss_name, random_start=target.random_start, name=f"pgd-{steps}")


def probe_flags(probe: ProbeRecord | None, target_name: str | None, n: int, candidates: int) -> list[Flag]:
    """The probe broke, extrapolated to every still-rising example, more than GAP_POINTS of n."""
    if probe is None or probe.n_attacked == 0 or not n:
        return []
    share = 100.0 * probe.broken / probe.n_attacked * candidates / n
    if share <= GAP_POINTS:
        return []
    return [F_.NOT_CONVERGED(
                 f"probe: {probe.attack} broke {probe.broken} of the {probe.n_attacked} example(s) whose loss was still rising after "
                 f"{target_name} (about {share:.2f} points of accuracy): the numbers overestimate robustness; rerun with more "
                 "iterations or --suite pgd", value=round(share, 4))]


# --------------------------------------------------------------------------- one evaluation


def run_flags(attacks, per_attack: Sequence[AttackRecord], state, *, n: int, num_classes: int, clean_acc: float,
              probe: ProbeRecord | None) -> list[Flag]:
    """Every flag of one evaluation, in a stable order."""
    target = probe_target(attacks)
    candidates = sum(1 for k in state.rising if state.broken_by[k] is None)
    flags = list(state.flags)
    flags += near_chance_flags(clean_acc, num_classes)
    flags += nonfinite_flags(state.nonfinite)
    flags += apgd_warning_flags(state.aa_warnings)
    flags += reveal_flags(attacks, per_attack, n)
    flags += unconfirmed_flags(per_attack, state.unconfirmed, n)
    flags += budget_flags(state.violations)
    flags += failed_flags(per_attack)
    flags += adaptive_flags(per_attack, n)
    flags += convergence_flags(attacks, per_attack, n)
    flags += probe_flags(probe, target.name if target is not None else None, n, candidates)
    return flags


# --------------------------------------------------------------------------- sweeps


def sweep_flags(norm, eps: Sequence[float], curves: dict[str, list[float | None]], worst_case: Sequence[float],
                *, saturation_eps: float | None = None) -> list[Flag]:
    """``not-monotone``: some curve rises with eps (only possible without the cascade: the
    attack is weaker at a larger eps, so the smaller-eps number cannot be trusted either).
    ``no-saturation``: the largest eps is large (≥ ``saturation_eps``, default
    :data:`SATURATION_EPS`) and the worst case is still above 5 %."""
    flags: list[Flag] = []
    rises = []
    for name, values in curves.items():
        for i in range(1, len(values)):
            a, b = values[i - 1], values[i]
            if a is not None and b is not None and b > a + 1e-9:
                rises.append((b - a, name, eps[i - 1], eps[i]))
    if rises:
        worst = max(rises)
        flags.append(F_.NOT_MONOTONE(
                          f"robust accuracy rises with eps ({len(rises)} time(s); largest: {worst[1]} +{worst[0]:.2f} points "
                          f"from eps {format_eps(worst[2])} to {format_eps(worst[3])}): the attack is weaker at the larger eps; "
                          "use the cascade (the default) or a stronger attack", value=round(worst[0], 4)))
    large = SATURATION_EPS[parse_norm(norm)] if saturation_eps is None else float(saturation_eps)
    if eps and worst_case and eps[-1] >= large and worst_case[-1] > SATURATION_ACC:
        flags.append(F_.NO_SATURATION(
                          f"worst-case accuracy is still {worst_case[-1]:.2f} % at eps {format_eps(eps[-1])} (≥ {format_eps(large)}, "
                          f"where a sound evaluation reaches about 0): gradient masking or a weak attack", value=round(worst_case[-1], 4)))
    return flags


# --------------------------------------------------------------------------- the verdict


LIE_FLAGS = (F_.GRADIENT_INCONSISTENT.name, F_.NO_INPUT_GRADIENT.name, F_.BLACK_BOX_BEATS_WHITE_BOX.name)


def verdict(flags: Sequence[Flag], strength: Strength | None = None, per_attack: Sequence[AttackRecord] = (),
            escalation: dict | None = None) -> tuple[Verdict, str]:
    """Roll flags up: any error → unreliable, any warning → suspicious; else, when the
    evaluation was weaker than AutoAttack (``strength``, :mod:`a3bench.eval.strength`),
    not-evaluated-fully; else reliable. The runner always passes ``strength``, the
    per-attack records and the escalation, so that an unreliable verdict says what would
    make the number reportable (:func:`path_to_a_number`).

    Returns (verdict, one-line reason naming the flags, or the shortfall, that decided it).
    """
    from a3bench.eval.strength import shortfall

    errors = [f for f in flags if f.severity is ERROR]
    warnings = [f for f in flags if f.severity is WARNING]
    if errors:
        reason = "; ".join(sorted({f.name for f in errors}))
        path = path_to_a_number(errors, per_attack, escalation)
        return Verdict.UNRELIABLE, f"{reason} — {path}" if path else reason
    if warnings:
        return Verdict.SUSPICIOUS, "; ".join(sorted({f.name for f in warnings}))
    if strength is not None and not strength.complete:
        return Verdict.NOT_EVALUATED_FULLY, (f"no diagnostic fired, but the evaluation is weaker than AutoAttack: {shortfall(strength)}; "
                                             "--suite standard or full gives a number to rank")
    return Verdict.RELIABLE, "no diagnostic fired"


def path_to_a_number(errors: Sequence[Flag], per_attack: Sequence[AttackRecord], escalation: dict | None) -> str | None:
    """When the gradients mislead, what the worst case is worth and what would make it
    reportable: either the attacks that do not use the gradient ran after the lie was
    found and the last of them broke nothing more (they agree on the worst case: report it,
    as an upper bound), or they did not run, or did not all run, or still broke examples
    (nothing got past the lie yet, or not for sure: what to run)."""
    if not any(f.name in LIE_FLAGS for f in errors):
        if any(f.name == F_.ADAPTIVE_BEATS_AUTOATTACK.name for f in errors):
            return "report the worst case of the whole suite, not AutoAttack's number"
        return None
    esc = escalation or {}
    names = list(esc.get("attacks") or [])
    ran = {r.name: r for r in per_attack if r.status is AttackStatus.RAN}
    if not names or esc.get("withdrawn"):
        return ("gradients mislead and nothing got past them yet: run --suite full, which adds the attacks that do not use "
                "the gradient (bpda-graph, transfer:distill, spsa-100, square-20000), for a number to report")
    missing = [n for n in names if n not in ran] + list(esc.get("left_out") or [])
    if missing:
        return (f"gradients mislead and not every attack past them ran ({', '.join(missing)}): rerun with --resume"
                + (" and a larger --max-passes" if esc.get("left_out") else "") + " for a number to report")
    last = ran[names[-1]]
    if last.broken == 0:
        return (f"gradients mislead, and the attacks that do not use them agree on the worst case ({', '.join(names)} ran; "
                f"the last, {last.name}, broke nothing more): report the worst case, an upper bound on robust accuracy")
    return (f"gradients mislead, and the last attack past them ({last.name}) still broke {last.broken} example(s): the worst "
            "case may be lower still; run it with more queries before reporting it")
