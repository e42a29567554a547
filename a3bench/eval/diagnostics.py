"""Is the evaluation trustworthy? Flags computed from the run, never hand-set (DESIGN §4).

This module owns the flag set and the verdict roll-up. Each ``*_flags`` function looks
at the model or the finished cascade and returns :class:`~a3bench.eval.record.Flag`
objects; :func:`verdict` turns all flags into reliable / suspicious / unreliable.
To add a flag: write a function here returning ``list[Flag]``, call it from the runner
(or from a sweep), and give it a section (anchor = flag name) in docs/diagnostics.md.

AutoAttack's own sanity checks (``pyautoattack/checks.py``) are reused as they are:
their warnings are collected instead of printed and become flags.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.attacks.pgd import input_grad
from a3bench.eval.record import AttackRecord, Flag

WARNING, ERROR = "warning", "error"
WHITE_BOX_GROUPS_EXCLUDED = ("square",)  # names of black-box attacks (AttackRecord.name)
SQUARE_ALPHA = 0.2  # percentage points, AutoAttack's check_square_sr threshold (0.002)


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


def sanity_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, randomized_ok: bool = False) -> list[Flag]:
    """AutoAttack's checks on one batch: randomised outputs, softmax instead of logits,
    zero gradients, dynamic (autograd inside forward) defense.

    ``randomized_ok``: the suite handles randomness (EOT, ``autoattack-rand``); a
    randomised model is then noted as a warning, not an error.
    """
    from a3bench._compat import import_autoattack

    checks = import_autoattack().checks
    flags: list[Flag] = []
    # randomised outputs: 5 forward passes must agree (check_randomized)
    msgs = _run_check(lambda log: checks.check_randomized(model, x, y, bs=x.shape[0], logger=log))
    if msgs:
        with torch.no_grad():
            spread = (model(x) - model(x)).abs().max().item()
        flags.append(Flag("randomized-outputs", WARNING if randomized_ok else ERROR,
                          "the model's outputs change between identical forward passes: gradient attacks see noise; "
                          "use EOT (eot-pgd-K) or autoattack-rand", value=spread))
    # softmax instead of logits (check_range_output)
    msgs = _run_check(lambda log: checks.check_range_output(model, x, logger=log))
    if msgs:
        flags.append(Flag("softmax-outputs", ERROR, "the model returns probabilities, not logits: CE/DLR gradients vanish; return logits"))
    # zero gradients of the CE loss (check_zero_gradients, on the first APGD gradient in AutoAttack)
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        grad = input_grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    msgs = _run_check(lambda log: checks.check_zero_gradients(grad, logger=log))
    if msgs:
        frac = (grad.flatten(1).abs().sum(1) == 0).float().mean().item()
        flags.append(Flag("zero-gradients", WARNING,
                          f"{100 * frac:.1f} % of examples have an exactly zero input gradient: gradient masking or a saturated "
                          "softmax; try loss=logit-scaled or loss=dlr", value=round(100 * frac, 4)))
    # autograd inside forward (check_dynamic). Its call counters are module globals that
    # never reset, so one dynamic model would flag every later one: reset them first.
    for key in checks.funcs:
        checks.funcs[key] = 0
    with torch.no_grad():
        msgs = _run_check(lambda log: checks.check_dynamic(model, x, False, logger=log))
    if msgs:
        flags.append(Flag("dynamic-defense", WARNING, "the forward pass calls autograd (a test-time optimisation defense?): standard attacks may be insufficient"))
    return flags


def apgd_warning_flags(messages: Sequence[str]) -> list[Flag]:
    """Warnings pyautoattack logged while attacking (e.g. zero gradients inside APGD)."""
    zero = [m for m in messages if "zero gradient" in m]
    if not zero:
        return []
    return [Flag("zero-gradients-in-apgd", WARNING, f"APGD met zero gradients ({len(zero)} batch(es)): {zero[0]}")]


def black_box_flags(per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """Square (black-box) broke examples that every white-box attack before it survived:
    the gradients are misleading (AutoAttack's check_square_sr, same 0.2-point threshold)."""
    flags = []
    white_box_before = False
    for rec in per_attack:
        if rec.status != "ran":
            continue
        if rec.name in WHITE_BOX_GROUPS_EXCLUDED:
            share = 100.0 * rec.broken / n if n else 0.0
            if white_box_before and share > SQUARE_ALPHA:
                flags.append(Flag("black-box-beats-white-box", ERROR,
                                  f"square broke {rec.broken} example(s) ({share:.2f} %) that every white-box attack before it "
                                  "missed: gradient masking; the white-box numbers are unreliable, run adaptive attacks",
                                  value=round(share, 4)))
        else:
            white_box_before = True
    return flags


def unconfirmed_flags(per_attack: Sequence[AttackRecord], unconfirmed: dict[str, int]) -> list[Flag]:
    """Attacks claimed successes that a fresh forward pass did not confirm (randomness, train-mode
    layers, fp16 ...). One flag for the run; the message names each attack and its count."""
    counts = {name: count for name, count in unconfirmed.items() if count}
    if not counts:
        return []
    total = sum(counts.values())
    per = ", ".join(f"{name} {count}" for name, count in counts.items())
    return [Flag("unconfirmed-successes", WARNING,
                 f"{total} claimed success(es) not confirmed by a fresh eval-mode forward pass ({per}); "
                 "they count as robust", value=float(total))]


def failed_flags(per_attack: Sequence[AttackRecord]) -> list[Flag]:
    """Attacks that raised an error on this model: the worst case lacks (part of) them."""
    failed = [rec for rec in per_attack if rec.status == "failed"]
    if not failed:
        return []
    what = "; ".join(f"{rec.name} {rec.note}" for rec in failed)
    return [Flag("attack-failed", WARNING, f"{len(failed)} attack(s) stopped with an error and were left out: {what}",
                 value=float(len(failed)))]


def budget_flags(violations: dict[str, int]) -> list[Flag]:
    """Adversarial examples outside the eps-ball or [0,1] (only reported when the runner is not strict)."""
    return [Flag("budget-violation", ERROR, f"{name}: {count} example(s) outside the threat model; they count as robust", value=float(count))
            for name, count in violations.items() if count]


_RANK = {"reliable": 0, "suspicious": 1, "unreliable": 2}


def verdict(flags: Sequence[Flag]) -> tuple[str, str]:
    """Roll flags up: any error → unreliable, any warning → suspicious, else reliable.

    Returns (verdict, one-line reason naming the flags that decided it).
    """
    errors = [f for f in flags if f.severity == ERROR]
    warnings = [f for f in flags if f.severity == WARNING]
    if errors:
        return "unreliable", "; ".join(sorted({f.name for f in errors}))
    if warnings:
        return "suspicious", "; ".join(sorted({f.name for f in warnings}))
    return "reliable", "no diagnostic fired"


# --------------------------------------------------------------------------- adaptive evaluation (DESIGN §4)

GAP_POINTS = 1.0  # percentage points: what a later attack may add before a flag fires
TRANSFER_ATTACKS = ("mode-transfer",)  # plus every "transfer:SPEC"
PROBE_EXAMPLES = 200


def _is_transfer(name: str) -> bool:
    return name.startswith("transfer:") or name.split(":")[0] in TRANSFER_ATTACKS


def transfer_flags(per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """A transfer attack (crafted on another model or another A3 mode) broke examples that
    every white-box attack on the deployed model missed: its own gradients mislead."""
    flags, white_box_before = [], False
    for rec in per_attack:
        if rec.status != "ran":
            continue
        if _is_transfer(rec.name):
            share = 100.0 * rec.broken / n if n else 0.0
            if white_box_before and share > GAP_POINTS:
                flags.append(Flag("transfer-beats-white-box", ERROR,
                                  f"{rec.name} broke {rec.broken} example(s) ({share:.2f} %) that the white-box attacks before it "
                                  "missed: the deployed model's gradients are masked", value=round(share, 4)))
        elif rec.name not in WHITE_BOX_GROUPS_EXCLUDED:
            white_box_before = True
    return flags


def adaptive_flags(per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """The attacks after AutoAttack broke more than GAP_POINTS of the examples AutoAttack
    left robust: AutoAttack's number is not reliable for this model."""
    groups = [rec.group for rec in per_attack]
    if "autoattack" not in groups:
        return []
    last_aa = max(i for i, g in enumerate(groups) if g == "autoattack")
    if any(g != "autoattack" for g in groups[: last_aa + 1]):
        return []  # AutoAttack did not run first: its own number is not in the cascade
    after = [rec for rec in per_attack[last_aa + 1 :] if rec.status == "ran"]
    broken = sum(rec.broken for rec in after)
    share = 100.0 * broken / n if n else 0.0
    if share <= GAP_POINTS:
        return []
    top = max(after, key=lambda r: r.broken)
    return [Flag("adaptive-beats-autoattack", ERROR,
                 f"the attacks after AutoAttack lowered robust accuracy by {share:.2f} points (most: {top.name}, {top.broken}): "
                 "AutoAttack is unreliable for this model; report the worst case", value=round(share, 4))]


def _pgd_family(attack) -> tuple | None:
    """(loss, step, random start) of a plain a3bench PGD attack, None for anything else."""
    from a3bench.attacks.pgd import FGSM, PGD

    if type(attack) is not PGD or isinstance(attack, FGSM):
        return None
    return (attack.loss_name, attack.step_size, attack.random_start)


def convergence_flags(attacks, per_attack: Sequence[AttackRecord], n: int) -> list[Flag]:
    """PGD-2K (or more) after PGD-K in the cascade still broke > GAP_POINTS: not converged."""
    flags = []
    ran = {rec.name: rec for rec in per_attack if rec.status == "ran"}
    for i, a in enumerate(attacks):
        fam = _pgd_family(a)
        if fam is None or a.name not in ran:
            continue
        for b in attacks[i + 1 :]:
            if _pgd_family(b) == fam and b.steps >= 2 * a.steps and b.name in ran:
                share = 100.0 * ran[b.name].broken / n if n else 0.0
                if share > GAP_POINTS:
                    flags.append(Flag("not-converged", WARNING,
                                      f"{b.name} still broke {share:.2f} % after {a.name}: PGD has not converged; run more iterations",
                                      value=round(share, 4)))
                break
    return flags


def convergence_probe(attacks, model: nn.Module, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor,
                      robust: Sequence[bool], threat, seed: int, deployed) -> tuple[list[Flag], int]:
    """When the cascade has no PGD-K/PGD-2K pair: run PGD with twice the largest K on the
    still-robust examples among the first PROBE_EXAMPLES. Diagnostic only — the record's
    numbers are not changed — so the flag tells the user to rerun with more iterations.

    Returns (flags, forward+backward passes spent).
    """
    from a3bench.attacks.pgd import PGD

    pgds = [a for a in attacks if _pgd_family(a) is not None]
    if not pgds or convergence_pairs_present(attacks):
        return [], 0
    top = max(pgds, key=lambda a: a.steps)
    m = min(len(x), PROBE_EXAMPLES)
    idx = torch.tensor([i for i in range(m) if robust[i]], dtype=torch.long)
    if idx.numel() == 0:
        return [], 0
    probe = PGD(2 * top.steps, step_size=top.step_size, loss=top.loss_name, random_start=top.random_start, name=f"pgd-{2 * top.steps}")
    out = probe(model, x[idx], y[idx], threat, seed=seed, indices=positions[idx])
    from a3bench.eval.runner import recheck

    broken = int(recheck(probe.name, out, x[idx], y[idx], threat, deployed).broken.sum())
    share = 100.0 * broken / m
    flags = []
    if share > GAP_POINTS:
        flags.append(Flag("not-converged", WARNING,
                          f"probe: {probe.name} broke {broken} of the first {m} examples ({share:.2f} %) that {top.name} left robust; "
                          f"the numbers overestimate robustness: rerun with pgd-{4 * top.steps} or --suite pgd", value=round(share, 4)))
    return flags, out.forward_passes + out.backward_passes


def convergence_pairs_present(attacks) -> bool:
    fams = [(_pgd_family(a), getattr(a, "steps", 0)) for a in attacks]
    return any(fa is not None and fa == fb and kb >= 2 * ka for i, (fa, ka) in enumerate(fams) for fb, kb in fams[i + 1 :])
