"""Adaptive attacks aimed at A3's own mechanism and at common gradient masking (docs/architecture.md#the-attack-contract).

All of them are PGD with a different *gradient* and the deployed model as the judge:
each step computes the gradient on a surrogate (another A3 mode, a straight-through
backward, rescaled A3 strengths, an average over random draws, another model) while
early stopping, success and the runner's re-check use the deployed model.

- ``mode-transfer``: craft on the same model in mode ``off`` and in mode ``amplify``,
  evaluate on the deployed ``attenuate`` mode.
- ``bpda-a3``: deployed forward, every A3 layer the identity in the backward pass
  (BPDA, Athalye, Carlini & Wagner, ICML 2018).
- ``bpda``: the same for any module that blocks the gradient — input quantisers,
  rounding, ``detach``, a saturated softmax — found on clean inputs.
- ``a3-scale``: Adaptive Attention Scaling (Jain & Dutta, CVPR 2024) applied to A3 —
  per-layer strengths λ' ∈ [1e-7, 1]·λ that maximise the normalised feature distance
  Σ_l ‖φ_l(λ') − φ_l(λ)‖² / (‖φ_l(λ')‖‖φ_l(λ)‖), 10 ascent steps from a random start (the
  search of :mod:`a3bench.attacks.scale_search`, shared with the ViT attack ``aas``);
  attack the rescaled model, evaluate on the original.
- ``eot-pgd-K``: Expectation over Transformation (Athalye et al. 2018): the gradient
  averaged over ``n`` forward passes of a randomised model.
- ``transfer:SPEC``: craft on a surrogate model (any ``--model`` SPEC), evaluate on the target.

>>> out = BPDAA3(steps=50)(a3_model, x, y, ThreatModel("Linf", 0.1), seed=0)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import torch
from torch import nn

from a3bench.attacks.base import AttackContext, AttackKind, AttackOutput
from a3bench.attacks.bypass import BASE_OPTIONS, BypassBase, Bypassed, parse_base
from a3bench.attacks.pgd import PGD, GradFn, MostCorrectDraw, default_step_size, input_grad, pgd_loop, surrogate_grad_fn
from a3bench.attacks.registry import AttackSpec, int_option, loss_option, register_attack, step_option
from a3bench.attacks.scale_search import A3_SCALE_SEARCH, search_scales
from a3bench.models.a3 import a3_layers, a3_mode, a3_straight_through, a3_strength_scales
from a3bench.threat import example_seeds
from a3bench.flags import TRANSFER_BEATS_WHITE_BOX

NO_A3 = "the model has no A3 layers"


class _A3Only:
    def applies_to(self, ctx: AttackContext) -> str | None:
        return None if a3_layers(ctx.model) else NO_A3


class BPDAA3(_A3Only, BypassBase, PGD):
    """PGD-K (or ``base=apgd-…``, :mod:`a3bench.attacks.bypass`) through a straight-through
    (identity) backward of every A3 layer."""

    def __init__(self, steps: int = 50, *, base: str = "pgd", **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "bpda-a3"), **kw)
        self._init_base(base)

    def config(self) -> dict:
        return self.base_config(super().config())

    def max_passes(self) -> tuple[int, int, int]:
        return self.base_max_passes(super().max_passes())

    def bypassed(self, model: nn.Module) -> nn.Module:
        return Bypassed(model, lambda: a3_straight_through(model))

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        return self.run_base(super().run, model, x, y, threat, seed=seed, indices=indices)

    def grad_fn(self, model: nn.Module) -> GradFn:
        def grad_fn(xa, ya):
            xg = xa.detach().requires_grad_(True)
            with torch.enable_grad(), a3_straight_through(model):
                logits = model(xg)
                grad = input_grad(self.loss_fn(logits, ya).sum(), xg)
            return logits.detach(), grad

        return grad_fn


def zero_gradient_modules(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the leaf modules that keep their input's shape but pass no gradient back:
    the vector-Jacobian product with a random vector is exactly zero for at least half of
    the examples of ``x`` (input quantisers, rounding and ``detach`` block every example; a
    saturated softmax all but the least confident). These are what BPDA replaces by the
    identity."""
    names = {m: n for n, m in model.named_modules()}
    seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def hook(module, inputs, output):
        inp = inputs[0] if inputs else None
        if isinstance(inp, torch.Tensor) and isinstance(output, torch.Tensor) and inp.requires_grad and inp.shape == output.shape:
            seen.append((names[module], inp, output))

    leaves = [m for m in model.modules() if m is not model and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            model(xg)
            found: list[str] = []
            gen = torch.Generator(device=x.device).manual_seed(0)
            for name, inp, out in seen:
                if name in found:
                    continue
                if not out.requires_grad:
                    found.append(name)
                    continue
                v = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
                (g,) = torch.autograd.grad(out, inp, v, retain_graph=True, allow_unused=True)
                if g is None or (g.flatten(1) == 0).all(dim=1).float().mean() >= 0.5:
                    found.append(name)
    finally:
        for h in handles:
            h.remove()
    return found


@contextmanager
def straight_through(model: nn.Module, names: list[str]) -> Iterator[nn.Module]:
    """BPDA (Athalye et al. 2018): the named modules keep their forward output but are the
    identity in the backward pass (``x + (f(x) - x).detach()``)."""
    modules = dict(model.named_modules())

    def hook(module, inputs, output):
        inp = inputs[0]
        return inp + (output - inp).detach()

    handles = [modules[n].register_forward_hook(hook) for n in names if n in modules]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


class BPDA(BypassBase, PGD):
    """PGD-K (or ``base=apgd-…``, :mod:`a3bench.attacks.bypass`) through a straight-through
    backward of every module that blocks the gradient.

    The modules are found on clean inputs (:func:`zero_gradient_modules`): leaf modules
    that keep the shape and whose local gradient is exactly zero — an input quantiser, a
    rounding or JPEG-like step written as a module, a ``detach``, a saturated softmax.
    Each becomes the identity in the backward pass; the forward pass (and the verdict) is
    the deployed model's. Skipped when no such module exists (nothing to approximate);
    transformations written inside another module's ``forward`` cannot be found this way.
    """

    needs_input_gradient = False  # it replaces what blocks the gradient: it decides in applies_to

    def __init__(self, steps: int = 50, *, base: str = "pgd", **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "bpda"), **kw)
        self._init_base(base)
        self._found: dict[int, list[str]] = {}

    def config(self) -> dict:
        return self.base_config(super().config())

    def max_passes(self) -> tuple[int, int, int]:
        return self.base_max_passes(super().max_passes())

    def bypassed(self, model: nn.Module) -> nn.Module:
        return Bypassed(model, lambda: straight_through(model, self._found.get(id(model), [])))

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        self._modules(model, x)
        return self.run_base(super().run, model, x, y, threat, seed=seed, indices=indices)

    def _modules(self, model: nn.Module, x: torch.Tensor) -> list[str]:
        key = id(model)
        if key not in self._found:
            self._found[key] = zero_gradient_modules(model, x)
        return self._found[key]

    def applies_to(self, ctx: AttackContext) -> str | None:
        if ctx.probe is None:
            return None  # found on the first batch
        self._found.pop(id(ctx.model), None)
        return None if self._modules(ctx.model, ctx.probe) else "no module with a zero local gradient (nothing for BPDA to replace)"

    def grad_fn(self, model: nn.Module) -> GradFn:
        def grad_fn(xa, ya):
            names = self._modules(model, xa)
            xg = xa.detach().requires_grad_(True)
            with torch.enable_grad(), straight_through(model, names):
                logits = model(xg)
                grad = input_grad(self.loss_fn(logits, ya).sum(), xg)
            return logits.detach(), grad

        return grad_fn


class ModeTransfer(_A3Only, PGD):
    """PGD-K crafted on the model in other A3 modes (``off``, ``amplify``), judged in the deployed mode.

    An example is broken if the adversarial example from any surrogate mode breaks it.
    """

    kind = AttackKind.TRANSFER
    reveals = TRANSFER_BEATS_WHITE_BOX

    def __init__(self, steps: int = 50, modes: tuple[str, ...] = ("off", "amplify"), **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "mode-transfer"), **kw)
        self.modes = tuple(modes)

    def config(self) -> dict:
        return {**super().config(), "modes": list(self.modes)}

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        x_best = x.clone()
        success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        fwd = bwd = 0
        step = self.step_size if self.step_size is not None else default_step_size(threat, self.steps)
        for k, mode in enumerate(self.modes):
            todo = (~success).nonzero().flatten()
            if todo.numel() == 0:
                break

            def surrogate(xg, mode=mode):
                with a3_mode(model, mode):
                    return model(xg)

            xs, ys = x[todo], y[todo]
            x0 = threat.random_start(xs, seeds=example_seeds(seed, indices[todo], salt=101 + k))
            out = pgd_loop(model, xs, ys, threat, x0, steps=self.steps, step_size=step, grad_fn=surrogate_grad_fn(model, surrogate, self.loss_fn))
            x_best[todo], success[todo] = out.x_adv, out.success
            fwd += 2 * out.forward_passes  # surrogate and judge forward each step
            bwd += out.backward_passes
        return AttackOutput(x_best, success, fwd, bwd)


class A3Scale(_A3Only, PGD):
    """AAS applied to A3: attack the model with adversarially rescaled A3 strengths.

    Args:
        steps: PGD iterations on the rescaled model. search_steps: ascent steps of the
        strength search (10, as in the seed paper). search_lr: step on the scale in [1e-7, 1].
    """

    LOW = 1e-7

    def __init__(self, steps: int = 50, search_steps: int = 10, search_lr: float = 0.1, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", "a3-scale"), **kw)
        self.search_steps, self.search_lr = search_steps, search_lr

    def config(self) -> dict:
        return {**super().config(), "search_steps": self.search_steps, "search_lr": self.search_lr}

    def find_scales(self, model: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
        """Per-layer multipliers s ∈ [1e-7, 1] of λ maximising the normalised feature distance
        (the shared search of :mod:`a3bench.attacks.scale_search`, a3-scale's settings)."""
        search = replace(A3_SCALE_SEARCH, steps=self.search_steps, lr=self.search_lr, low=self.LOW)
        found = search_scales(model, x, a3_layers(model), lambda s: a3_strength_scales(model, list(s.unbind())), search, seed)
        return found.scales

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        scales = self.find_scales(model, x, seed * 7919 + int(indices[0]))
        self.last_scales = scales.tolist()

        def surrogate(xg):
            with a3_strength_scales(model, list(scales.unbind())):
                return model(xg)

        step = self.step_size if self.step_size is not None else default_step_size(threat, self.steps)
        x0 = threat.random_start(x, seeds=example_seeds(seed, indices, salt=211))
        out = pgd_loop(model, x, y, threat, x0, steps=self.steps, step_size=step, grad_fn=surrogate_grad_fn(model, surrogate, self.loss_fn))
        search = (self.search_steps + 1) * len(x)
        return AttackOutput(out.x_adv, out.success, 2 * out.forward_passes + search, out.backward_passes + self.search_steps * len(x))


def _final_softmax(model: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """The nn.Softmax module whose output *is* the model's output, if there is one."""
    outputs: dict[nn.Module, torch.Tensor] = {}
    candidates = [m for m in model.modules() if isinstance(m, nn.Softmax)]
    hooks = [m.register_forward_hook(lambda mod, _i, out: outputs.__setitem__(mod, out)) for m in candidates]
    try:
        with torch.no_grad():
            out = model(x[:2])
    finally:
        for h in hooks:
            h.remove()
    for mod, value in outputs.items():
        if value is out or (value.shape == out.shape and torch.equal(value, out)):
            return mod
    return None


class PreSoftmax(PGD):
    """PGD-K on the *input* of a model's final softmax: a model that returns probabilities
    (saturated in float32, so every gradient is zero) is attacked through its logits.

    Default loss ``cw`` (margin): unaffected by a temperature in front of the softmax.
    """

    def __init__(self, steps: int = 50, **kw) -> None:
        kw.setdefault("loss", "cw")
        super().__init__(steps, name=kw.pop("name", "pre-softmax"), **kw)
        self.softmax: nn.Module | None = None

    def applies_to(self, ctx: AttackContext) -> str | None:
        if not any(isinstance(m, nn.Softmax) for m in ctx.model.modules()):
            return "the model has no softmax layer at its output"
        return None

    def setup(self, ctx: AttackContext) -> None:
        self.softmax = None  # found again on the first batch of each evaluation

    def grad_fn(self, model: nn.Module) -> GradFn:
        def logits_of(xg: torch.Tensor) -> torch.Tensor:
            captured: list[torch.Tensor] = []
            hook = self.softmax.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0]))
            try:
                model(xg)
            finally:
                hook.remove()
            return captured[0]

        return surrogate_grad_fn(model, logits_of, self.loss_fn)

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        if self.softmax is None:
            self.softmax = _final_softmax(model, x)
        if self.softmax is None:  # a softmax inside the model, not at its output: nothing to strip
            with torch.no_grad():
                return AttackOutput(x.clone(), model(x).argmax(1) != y, forward_passes=len(x))
        out = super().run(model, x, y, threat, seed=seed, indices=indices)
        out.forward_passes *= 2
        return out


class EOTPGD(PGD):
    """PGD-K whose gradient averages ``samples`` forward passes of a randomised model.

    An example stops early only when *every* one of the ``samples`` draws misclassifies
    it: stopping as soon as the average (or one draw) is wrong leaves the iterate on the
    decision boundary, where the runner's re-check — a fresh draw — classifies it
    correctly about half the time.
    """

    kind = AttackKind.EOT

    def __init__(self, steps: int = 20, samples: int = 10, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", f"eot-pgd-{steps}"), **kw)
        self.samples = samples

    def config(self) -> dict:
        return {**super().config(), "samples": self.samples}

    def grad_fn(self, model: nn.Module) -> GradFn:
        def grad_fn(xa, ya):
            grad = torch.zeros_like(xa)
            best = MostCorrectDraw(ya)
            for _ in range(self.samples):
                xg = xa.detach().requires_grad_(True)
                with torch.enable_grad():
                    logits = model(xg)
                    grad += input_grad(self.loss_fn(logits, ya).sum(), xg)
                best.add(logits.detach())
            return best.logits, grad / self.samples

        return grad_fn

    def max_passes(self) -> tuple[int, int, int]:
        f, b, once = super().max_passes()
        return f * self.samples, b * self.samples, once

    def run(self, model, x, y, threat, *, seed, indices) -> AttackOutput:
        out = super().run(model, x, y, threat, seed=seed, indices=indices)
        out.forward_passes *= self.samples
        out.backward_passes *= self.samples
        return out


class TransferPGD(PGD):
    """PGD-K on a surrogate model (``transfer:SPEC``), judged by the target."""

    kind = AttackKind.TRANSFER
    reveals = TRANSFER_BEATS_WHITE_BOX

    def __init__(self, spec: str, steps: int = 50, **kw) -> None:
        super().__init__(steps, name=kw.pop("name", f"transfer:{spec}"), **kw)
        self.spec = spec
        self.surrogate: nn.Module | None = None

    def config(self) -> dict:
        return {**super().config(), "surrogate": self.spec}

    def setup(self, ctx: AttackContext) -> None:
        from a3bench.models.spec import load_model

        self.surrogate = load_model(self.spec, dataset=ctx.dataset, norm=ctx.threat.norm.value, device=ctx.device).model
        for p in self.surrogate.parameters():
            p.requires_grad_(False)

    def grad_fn(self, model: nn.Module) -> GradFn:
        if self.surrogate is None:
            raise RuntimeError("TransferPGD.setup() was not called")
        return surrogate_grad_fn(model, self.surrogate, self.loss_fn)  # PGD.run counts surrogate and judge each step


# --------------------------------------------------------------------------- registration


_PGD_OPTIONS = ("loss", "restarts", "step", "steps")


def _common(spec: AttackSpec, default_steps: int) -> dict:
    return {
        "steps": int_option(spec, "steps", default_steps),
        "step_size": step_option(spec),
        "restarts": int_option(spec, "restarts", 1),
        "loss": loss_option(spec),
    }


@register_attack("mode-transfer", help="PGD-50 crafted on A3 modes off and amplify, judged in attenuate", options=_PGD_OPTIONS, example="mode-transfer:steps=3")
def _mode_transfer(spec: AttackSpec) -> ModeTransfer:
    return ModeTransfer(**_common(spec, 50))


@register_attack("bpda-a3", help="PGD-50 (or base=apgd-ce|apgd-dlr|apgd-t) with each A3 layer the identity in the backward pass (BPDA)",
                 options=_PGD_OPTIONS + BASE_OPTIONS, example="bpda-a3:steps=3")
def _bpda(spec: AttackSpec) -> BPDAA3:
    base, steps = parse_base(spec, 50)
    return BPDAA3(**{**_common(spec, 50), "steps": steps}, base=base)


@register_attack("bpda", help="PGD-50 (or base=apgd-ce|apgd-dlr|apgd-t) with every zero-gradient module (quantiser, rounding, detach) the identity in the backward pass",
                 options=_PGD_OPTIONS + BASE_OPTIONS, example="bpda:steps=3")
def _bpda_generic(spec: AttackSpec) -> BPDA:
    base, steps = parse_base(spec, 50)
    return BPDA(**{**_common(spec, 50), "steps": steps}, base=base)


@register_attack("a3-scale", help="AAS on A3: PGD-50 on adversarially rescaled A3 strengths (10-step search)", options=_PGD_OPTIONS + ("search_steps",),
                 example="a3-scale:steps=3:search_steps=2")
def _a3_scale(spec: AttackSpec) -> A3Scale:
    return A3Scale(**_common(spec, 50), search_steps=int_option(spec, "search_steps", 10))


@register_attack("eot-pgd-K", pattern=r"eot-pgd-(\d+)", help="PGD-K with gradients averaged over n samples (EOT); option n", options=("loss", "restarts", "step", "n"),
                 example="eot-pgd-3:n=2")
def _eot(spec: AttackSpec) -> EOTPGD:
    kw = _common(spec, int(spec.match.group(1)))
    kw["steps"] = int(spec.match.group(1))
    return EOTPGD(samples=int_option(spec, "n", 10), **kw)


@register_attack("pre-softmax", help="PGD-50 (CW loss) on the input of a final softmax layer (models that return probabilities)", options=_PGD_OPTIONS,
                 example="pre-softmax:steps=3")
def _pre_softmax(spec: AttackSpec) -> PreSoftmax:
    kw = _common(spec, 50)
    if spec.option("loss") is None:
        kw["loss"] = "cw"
    return PreSoftmax(**kw)


@register_attack("transfer:SPEC", pattern=r"transfer", raw_arg=True, example="transfer:{model}",
                 help="PGD-50 crafted on a surrogate model SPEC, judged on the target; transfer:distill trains the surrogate "
                      "on the target's outputs (options train_steps, seconds, arch, labels, steps)")
def _transfer(spec: AttackSpec) -> PGD:
    from a3bench.errors import AttackError

    if not spec.arg:
        raise AttackError("transfer needs a surrogate: transfer:SPEC (any --model SPEC) or transfer:distill")
    return TransferPGD(spec.arg.strip())


