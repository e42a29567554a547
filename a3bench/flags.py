"""Every diagnostic flag a3bench can raise, declared once (docs/architecture.md#diagnostics-and-the-verdict).

A flag kind knows its name, its default severity, what it means in one line, and where
it is explained: the section ``## <name>`` of docs/diagnostics.md (shipped with the
package; ``a3bench flags NAME`` prints it). Code that raises a flag asks its kind for one
(``ZERO_GRADIENTS(message, value=…)``) instead of spelling the name; the tests check that
every registered kind has its section, so a flag can never point to nothing.

To add a flag: register it here and give it a section in docs/diagnostics.md — two files.

>>> from a3bench.flags import ZERO_GRADIENTS, flag_kind
>>> ZERO_GRADIENTS("12.0 % of examples have an exactly zero input gradient", value=12.0).name
'zero-gradients'
>>> flag_kind("zero-gradients").docs
'docs/diagnostics.md#zero-gradients'
"""

from __future__ import annotations

from dataclasses import dataclass

from a3bench.schema import Flag, Severity

WARNING, ERROR = Severity.WARNING, Severity.ERROR
DOCS = "docs/diagnostics.md"


@dataclass(frozen=True)
class FlagKind:
    """One kind of diagnostic flag."""

    name: str
    severity: Severity  # the usual severity; a call may override it
    summary: str  # what it means, one line
    advice: str = ""  # what to do about it, one line ("" when the message says it)
    threshold: float | None = None  # percentage points above which an attack that ``reveals`` it fires it

    def __call__(self, message: str, *, value: float | None = None, severity: Severity | str | None = None) -> Flag:
        return Flag(self.name, Severity(severity) if severity is not None else self.severity, message, value=value)

    @property
    def docs(self) -> str:
        """Where the flag is explained (a path relative to the repository, and the anchor)."""
        return f"{DOCS}#{self.name}"


_FLAGS: dict[str, FlagKind] = {}


def register_flag(name: str, severity: Severity, summary: str, *, advice: str = "", threshold: float | None = None) -> FlagKind:
    if name in _FLAGS:
        raise ValueError(f"flag {name!r} registered twice")
    kind = FlagKind(name, Severity(severity), summary, advice, threshold)
    _FLAGS[name] = kind
    return kind


def flag_kind(name: str) -> FlagKind | None:
    """The kind of a flag name; None for a name a3bench does not know (an old or foreign record)."""
    return _FLAGS.get(name)


def all_flags() -> dict[str, FlagKind]:
    """Name → kind, in registration order."""
    return dict(_FLAGS)


# --------------------------------------------------------------------------- the model itself

RANDOMIZED_OUTPUTS = register_flag(
    "randomized-outputs", ERROR, "the model's outputs change between identical forward passes",
    advice="a3bench judges it by the majority of fresh draws and adds EOT; report the expected accuracy over draws too")
SOFTMAX_OUTPUTS = register_flag(
    "softmax-outputs", ERROR, "the model returns probabilities, not logits", advice="return logits; pre-softmax attacks the logits")
ZERO_GRADIENTS = register_flag(
    "zero-gradients", WARNING, "examples have an exactly zero input gradient",
    advice="a quantiser or detach blocks the gradient: bpda (or bpda-graph) replaces it in the backward pass; "
           "a saturated softmax: loss=logit-scaled")
NO_INPUT_GRADIENT = register_flag(
    "no-input-gradient", ERROR, "the output does not depend differentiably on the input at all",
    advice="gradient attacks cannot run; the gradient-free and surrogate attacks (square, spsa-K, transfer:distill) "
           "carry the evaluation: run --suite full")
DYNAMIC_DEFENSE = register_flag(
    "dynamic-defense", WARNING, "the forward pass calls autograd (a test-time optimisation defense?)",
    advice="standard attacks may be insufficient: attack the whole procedure")
GRADIENT_INCONSISTENT = register_flag(
    "gradient-inconsistent", ERROR, "the autograd gradient disagrees with finite differences",
    advice="white-box attacks follow a gradient the model does not have: bpda, bpda-graph, spsa-K, transfer:distill "
           "and square get past it (--suite full escalates to them)")
CLEAN_NEAR_CHANCE = register_flag(
    "clean-near-chance", WARNING, "clean accuracy is near chance", advice="the model, its weights or the dataset are wrong")
NON_FINITE_OUTPUTS = register_flag(
    "non-finite-outputs", ERROR, "verdicts met NaN or infinite logits", advice="the model is numerically broken")

# --------------------------------------------------------------------------- the cascade

ZERO_GRADIENTS_IN_APGD = register_flag("zero-gradients-in-apgd", WARNING, "APGD met zero gradients",
                                       advice="see zero-gradients: bpda, loss=logit-scaled")
BLACK_BOX_BEATS_WHITE_BOX = register_flag(
    "black-box-beats-white-box", ERROR, "a gradient-free attack broke what the white-box attacks missed",
    advice="the gradients are misleading (gradient masking): the white-box numbers are unreliable; --suite full escalates",
    threshold=0.2)  # AutoAttack's own check_square_sr threshold (0.002)
TRANSFER_BEATS_WHITE_BOX = register_flag(
    "transfer-beats-white-box", ERROR, "an attack crafted on another model broke what the white-box attacks missed",
    advice="the deployed model's own gradients are masked", threshold=1.0)
ATTENTION_SATURATION = register_flag(
    "attention-saturation", WARNING, "the attention softmax saturates and masks gradients",
    advice="attacks without attention scaling overestimate robustness: attn-scale:s=auto", threshold=1.0)
UNCONFIRMED_SUCCESSES = register_flag(
    "unconfirmed-successes", WARNING, "claimed successes not confirmed by a fresh eval-mode forward pass",
    advice="they count as robust; randomness, train-mode layers or fp16 in the model")
AUTOATTACK_SELF_REPORT_DIFFERS = register_flag(
    "autoattack-self-report-differs", WARNING, "AutoAttack's own number differs from the re-check of its examples")
ATTACK_FAILED = register_flag("attack-failed", WARNING, "attacks stopped with an error and were left out of the worst case")
BUDGET_VIOLATION = register_flag("budget-violation", ERROR, "adversarial examples outside the threat model")
ADAPTIVE_BEATS_AUTOATTACK = register_flag(
    "adaptive-beats-autoattack", ERROR, "the attacks after AutoAttack lowered robust accuracy",
    advice="AutoAttack is unreliable for this model; report the worst case")
NOT_CONVERGED = register_flag("not-converged", WARNING, "more iterations still lower robust accuracy",
                              advice="run more iterations or restarts")
ESCALATION_CAPPED = register_flag(
    "escalation-capped", WARNING, "the escalation was cut short by the budget",
    advice="the attacks it did not run are listed in the record; rerun with a larger --max-passes to finish it")

# --------------------------------------------------------------------------- sweeps

NOT_MONOTONE = register_flag("not-monotone", WARNING, "robust accuracy rises with eps somewhere")
NO_SATURATION = register_flag("no-saturation", WARNING, "robust accuracy does not reach about 0 at large eps")

# --------------------------------------------------------------------------- the audit

BINARIZATION_TEST_FAILED = register_flag(
    "binarization-test-failed", ERROR, "the attacks missed adversarial examples known to exist",
    advice="run attacks that are not fooled (bpda, square, eot)")
UNCONSTRAINED_ATTACK_FAILURE = register_flag(
    "unconstrained-attack-failure", ERROR, "an attack failed even with an unbounded eps")
SILENT_SUCCESS = register_flag("silent-success", WARNING, "successes without the attack's loss rising")
NON_CONVERGING_LOSS = register_flag("non-converging-loss", WARNING, "an attack ended while its loss was still rising")
