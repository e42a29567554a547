"""Attacks that rescale a vision transformer's attention (Jain & Dutta, CVPR 2024).

The softmax of a ViT's attention can saturate: when one pre-softmax logit exceeds the
others by more than ~17, the attention weights are one-hot in float32 and the gradient
through them vanishes, so gradient attacks are weaker than they look. Both attacks below
multiply the pre-softmax logits of every block by a scale λ < 1 at run time
(:func:`~a3bench.models.attention.attention_scales`; weights untouched, everything
restored afterwards, also when the attack raises), **craft** the perturbation on that
rescaled model with a base attack (``pgd-K`` or ``gama-pgd-K``), and **judge** it —
early stopping, success, the runner's re-check — on the original model.

- ``attn-scale:s=0.01``: one hand-picked λ for every block (the paper's Table 1);
  ``attn-scale:s=auto``: per block the λ that brings its mean top-1 − top-2 logit gap
  down to 3 (this project's addition: see docs/vit.md for why).
- ``aas``: Adaptive Attention Scaling, the paper's Algorithm 1: per-block scales
  S ∈ [1e-7, 1] found by 10 ascent steps on the normalised feature distance between the
  rescaled and the original model over the outputs of every attention block, from
  S = clamp(1 + δ), δ ~ N(0, 1) (:mod:`a3bench.attacks.scale_search`, the search
  ``a3-scale`` also uses); once per batch, on (at most 64 of) its clean inputs.

Both are skipped, with a note, on models without attention layers. When one breaks more
than 1 point of what the white-box attacks before it missed, the record gets the
``attention-saturation`` flag (docs/diagnostics.md).

>>> out = AAS(PGD(100))(vit, x, y, ThreatModel("Linf", 0.1), seed=0)
>>> out = AttentionScale(0.01, GamaPGD(100))(vit, x, y, ThreatModel("Linf", 0.1), seed=0)
"""

from __future__ import annotations

import re

import torch
from torch import nn

from a3bench.attacks.base import Attack, AttackContext, AttackOutput
from a3bench.attacks.gama import GAMA_OPTIONS, gama_from_spec
from a3bench.attacks.pgd import PGD
from a3bench.attacks.registry import AttackSpec, float_option, int_option, loss_option, register_attack, step_option
from a3bench.attacks.scale_search import AAS_SEARCH, ScaleSearch, search_scales
from a3bench.errors import AttackError
from a3bench.models.attention import DESATURATED_GAP, attention_layers, attention_scales, desaturating_scales
from a3bench.models.state import swapped
from a3bench.flags import ATTENTION_SATURATION

NO_ATTENTION = "the model has no attention layers (no pre-softmax logit_scale to rescale)"
DEFAULT_BASE = "pgd-100"


class _AttentionScaling(Attack):
    """Craft with ``base`` on the model at pre-softmax scales :meth:`scales`; judge on the model."""

    reveals = ATTENTION_SATURATION

    def __init__(self, base: PGD, name: str) -> None:
        self.base, self.name = base, name

    def applies_to(self, ctx: AttackContext) -> str | None:
        return None if attention_layers(ctx.model) else NO_ATTENTION

    def config(self) -> dict:
        return {"base": self.base.name, "base_config": self.base.config()}

    def scales(self, model: nn.Module, x: torch.Tensor, seed: int, indices: torch.Tensor) -> tuple[float | torch.Tensor, int, int]:
        """The scales to craft at, and the forward/backward passes (summed over examples) spent finding them."""
        raise NotImplementedError

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        scales, fwd, bwd = self.scales(model, x, seed, indices)

        def rescaled(xg: torch.Tensor) -> torch.Tensor:
            with attention_scales(model, scales):
                return model(xg)

        with swapped([self.base], "surrogate", rescaled):
            out = self.base.run(model, x, y, threat, seed=seed, indices=indices)
        return AttackOutput(out.x_adv, out.success, out.forward_passes + fwd, out.backward_passes + bwd)


class AttentionScale(_AttentionScaling):
    """``attn-scale``: one pre-softmax scale λ for every attention block (Jain & Dutta 2024, Table 1).

    Args:
        scale: λ (> 0; 0.01 by default, the paper's hand-picked value), or None (``s=auto``):
            per block and per batch, λ_i = min(1, gap / mean top-1 − top-2 logit gap of
            block i on the clean inputs) — each block just unsaturated
            (:func:`~a3bench.models.attention.desaturating_scales`).
        base: the attack crafted on the rescaled model (a ``PGD`` or ``GamaPGD``).
        gap: the target mean logit gap of ``s=auto`` (3: top weights ≈ 0.95 : 0.05).

    Shapes: x N×C×H×W in [0,1], y N. Linf or L2 (the base's threat model).

    >>> out = AttentionScale(0.01, PGD(100))(vit, x, y, ThreatModel("Linf", 0.1), seed=0)
    >>> out = AttentionScale(None, PGD(100))(vit, x, y, ThreatModel("Linf", 0.1), seed=0)  # s=auto
    """

    def __init__(self, scale: float | None = 0.01, base: PGD | None = None, name: str | None = None, *, gap: float = DESATURATED_GAP) -> None:
        if scale is not None and not scale > 0:
            raise ValueError("the attention scale must be > 0")
        if not gap > 0:
            raise ValueError("the target gap must be > 0")
        base = base or PGD(100)
        super().__init__(base, name or ("attn-scale:s=auto" if scale is None else f"attn-scale:s={scale:g}"))
        self.scale, self.gap = scale, gap
        self.last_scales: list[float] | None = None

    def config(self) -> dict:
        return {"scale": "auto" if self.scale is None else self.scale, **({"gap": self.gap} if self.scale is None else {}), **super().config()}

    def scales(self, model, x, seed, indices):
        if self.scale is not None:
            return float(self.scale), 0, 0
        self.last_scales = desaturating_scales(model, x, target_gap=self.gap)
        return self.last_scales, len(x), 0


class AAS(_AttentionScaling):
    """``aas``: Adaptive Attention Scaling (Jain & Dutta 2024, Algorithm 1).

    Per batch: per-block scales S ∈ [1e-7, 1] maximising the normalised feature distance
    Σ_i ‖f_i(S)(x) − f_i(x)‖² / (‖f_i(S)(x)‖·‖f_i(x)‖) over the outputs f_i of every
    attention block (10 ascent steps from S = clamp(1 + δ), δ ~ N(0, 1), on the first 64
    clean inputs of the batch); then the base attack crafted at S, judged on the original.

    Args:
        base: the attack crafted on the rescaled model (``PGD(100)`` by default; ``GamaPGD``).
        search: the scale-search settings (:data:`~a3bench.attacks.scale_search.AAS_SEARCH`).

    Shapes: x N×C×H×W in [0,1], y N. ``last_scales`` holds the scales of the last batch.

    >>> out = AAS(GamaPGD(100))(vit, x, y, ThreatModel("Linf", 0.1), seed=0)
    """

    def __init__(self, base: PGD | None = None, search: ScaleSearch = AAS_SEARCH, name: str | None = None) -> None:
        base = base or PGD(100)
        super().__init__(base, name or "aas")
        self.search = search
        self.last_scales: list[float] | None = None

    def config(self) -> dict:
        return {**super().config(), "search_steps": self.search.steps, "search_start": self.search.start, "search_lr": self.search.lr, "search_examples": self.search.max_examples}

    def scales(self, model, x, seed, indices):
        found = search_scales(
            model, x, attention_layers(model), lambda s: attention_scales(model, s), self.search, seed * 7919 + int(indices[0])
        )
        self.last_scales = found.scales.tolist()
        return found.scales, found.forward_passes, found.backward_passes


# --------------------------------------------------------------------------- registration

_BASE = re.compile(r"(gama-)?pgd-(\d+)")
_OPTIONS = ("base", "loss") + GAMA_OPTIONS


def base_from_spec(spec: AttackSpec) -> PGD:
    """``base=pgd-K`` (options loss, restarts, step) or ``base=gama-pgd-K`` (options w, decay, restarts, step)."""
    text = (spec.option("base") or DEFAULT_BASE).strip().lower()
    m = _BASE.fullmatch(text)
    if m is None or int(m.group(2)) < 1:
        raise AttackError(f"attack {spec.text!r}: base must be pgd-K or gama-pgd-K (K ≥ 1), got {text!r}")
    steps = int(m.group(2))
    if m.group(1):
        if spec.option("loss") is not None:
            raise AttackError(f"attack {spec.text!r}: loss does not apply to a gama-pgd base (GAMA has its own loss)")
        return gama_from_spec(spec, steps, text)
    stray = [k for k in ("w", "decay") if spec.option(k) is not None]
    if stray:
        raise AttackError(f"attack {spec.text!r}: {', '.join(stray)} only apply to a gama-pgd base")
    return PGD(steps, step_size=step_option(spec), restarts=int_option(spec, "restarts", 1), loss=loss_option(spec), name=text)



@register_attack(
    "attn-scale",
    help=f"one pre-softmax attention scale s for every ViT block (default s=0.01; s=auto: each block just unsaturated); base={DEFAULT_BASE} crafted on the rescaled model, judged on the original",
    options=_OPTIONS + ("s", "gap"),
    example="attn-scale:base=pgd-3",
)
def _attn_scale(spec: AttackSpec) -> AttentionScale:
    auto = (spec.option("s") or "").strip().lower() == "auto"
    try:
        scale = None if auto else float_option(spec, "s", 0.01, low=0.0, open_low=True)
    except AttackError as e:
        raise AttackError(f"{e} (or s=auto)") from None
    if spec.option("gap") is not None and not auto:
        raise AttackError(f"attack {spec.text!r}: gap only applies to s=auto")
    gap = float_option(spec, "gap", DESATURATED_GAP, low=0.0, open_low=True)
    return AttentionScale(scale, base_from_spec(spec), gap=gap)


@register_attack(
    "aas",
    help=f"Adaptive Attention Scaling (Jain & Dutta 2024): per-block scales in [1e-7, 1] (10-step search), base={DEFAULT_BASE} crafted on the rescaled ViT, judged on the original",
    options=_OPTIONS + ("search_steps",),
    example="aas:base=pgd-3:search_steps=2",
)
def _aas(spec: AttackSpec) -> AAS:
    from dataclasses import replace

    search = replace(AAS_SEARCH, steps=int_option(spec, "search_steps", AAS_SEARCH.steps))
    return AAS(base_from_spec(spec), search)
