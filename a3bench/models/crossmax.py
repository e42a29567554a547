"""Multi-resolution input and CrossMax self-ensembles (Fort & Lakshminarayanan 2024,
"Ensemble everything everywhere"), and CrossMax over separately trained models.

The model family
----------------
``crossmax`` is a registered architecture wrapping any registered backbone:

1. **Multi-resolution input** (:class:`MultiResolution`, on [0,1] pixels): for every
   image, every resolution r in R and every forward pass: a circular shift of up to
   ±``shift`` px in x and y, a contrast change c ~ U[contrast] around the image's mean,
   downsampling to r×r, pixel noise (``noise_down``·U[0,1) by default, or Gaussian),
   upsampling back to S×S, pixel noise again (``noise_up``), clamp to [0,1]. The |R| versions
   are stacked on the channel axis; the backbone's first layer takes C·|R| channels.
   Normalisation comes after (the :class:`~a3bench.models.wrapper.Classifier` hands its
   ``normalize`` to :meth:`CrossMaxNet.prepare_input`), per stacked copy.
2. **Heads**: BatchNorm1d + Linear on the flattened activation at chosen insertion
   points of the backbone (its ``point_modules()``); the backbone's own classifier is one
   more predictor, the last one, named ``"backbone"``.
3. **Aggregation** of the predictors' logits Z (N×P×K): :func:`crossmax` (default,
   k-th highest after the two max-subtractions), ``median`` or ``mean`` (of the raw logits).

``ensemble:SPEC1,SPEC2,...[:agg=crossmax|median|mean][:k=N]`` (see
:mod:`a3bench.models.spec`) builds a :class:`ModelEnsemble` of separately loaded models;
the switches below work on it as well.

Interface for attacks (every switch is a context manager over
:func:`a3bench.models.state.swapped`: it restores the previous state on exit, also when
the block raises; switches nest)
-----------------------------------------------------------------------------------------
``is_crossmax(model) -> bool``
    The model aggregates several predictors (a CrossMax self-ensemble or an ensemble spec),
    anywhere inside it. Attacks built for CrossMax skip other models (with a note).
``has_multiresolution(model) -> bool``
    The model has a multi-resolution input stack.
``crossmax_info(model) -> CrossMaxInfo | None``
    Predictor names, aggregation, k, randomisation: what a record or a note says.
``is_randomized(model) -> bool``
    Two forward passes of the same input can differ *right now*: a multi-resolution stack
    with fresh draws, or an A3 layer with a stochastic eval mask. False inside
    :func:`fixed_randomness`.
``fixed_randomness(model, seed)``
    Every multi-resolution stack uses the same draws at every forward pass: the model is
    a deterministic function of x (one draw per seed, shared by every image of a batch,
    so the output of an image does not depend on its batch). Different seeds = different
    fixed draws (EOT over a few fixed draws). Members of an ensemble get distinct seeds.
``random_draws_from(model, generator)``
    Fresh draws at every pass, taken from ``generator`` instead of torch's global RNG:
    R "fresh" passes that are reproducible from a seed (the randomised-model judge).
``aggregation(model, "mean" | "median" | "crossmax", k=None)``
    Replace the aggregation of every aggregator in the model (the ``crossmax-mean``
    surrogate of Zhang et al. 2024).
``single_predictor(model, which)``
    The outermost aggregator outputs only predictor ``which`` (an index, negative
    allowed, or a name from ``predictor_names``; ``"backbone"`` is the backbone's own
    classifier, computed without the heads). For ensembles: member ``which``.
``predictor_logits(model, x) -> N×P×K``
    Every predictor's logits of the outermost aggregator for [0,1] inputs x, in the
    graph (differentiable), from one forward pass of ``model`` (any wrapper around it).
``predictor_names(model) -> list[str]``

>>> with fixed_randomness(model, seed=0), aggregation(model, "mean"):
...     loss = F.cross_entropy(model(x_adv), y)       # the smooth, deterministic surrogate
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from a3bench.errors import ConfigError
from a3bench.models.backbones import Backbone
from a3bench.models.family import ModelFamily, PhaseLoss, TrainingPhase, register_family
from a3bench.models.registry import build_backbone, register_model
from a3bench.models.state import swapped

AGGREGATIONS = ("crossmax", "median", "mean")
DOWN_MODES = ("area", "bilinear", "bicubic", "nearest")
NOISE_KINDS = ("uniform", "gaussian")
UP_MODES = ("bilinear", "bicubic", "nearest")
BACKBONE_PREDICTOR = "backbone"


# --------------------------------------------------------------------------- aggregation


def crossmax(z: torch.Tensor, k: int) -> torch.Tensor:
    """CrossMax of logits ``z`` (N×P×K) -> N×K.

    1. subtract each predictor's max over classes (no predictor wins by scale alone);
    2. then subtract each class's max over predictors (no class wins by one predictor alone);
    3. per class, the k-th highest value over predictors.

    The order matters: step 2 on raw logits would let one confident predictor set the
    reference for a class before its own scale is removed.
    """
    p = z.shape[1]
    if not 1 <= k <= p:
        raise ValueError(f"CrossMax k must be in 1..{p} (the number of predictors), got {k}")
    z = z - z.amax(dim=2, keepdim=True)
    z = z - z.amax(dim=1, keepdim=True)
    return z.topk(k, dim=1).values[:, k - 1, :]


def median_logits(z: torch.Tensor) -> torch.Tensor:
    """Per class, the median over predictors (mean of the two middle values for even P)."""
    s = z.sort(dim=1).values
    p = z.shape[1]
    if p % 2:
        return s[:, p // 2, :]
    return 0.5 * (s[:, p // 2 - 1, :] + s[:, p // 2, :])


def aggregate(z: torch.Tensor, how: str, k: int) -> torch.Tensor:
    """Aggregate predictor logits N×P×K into N×K by ``how`` (crossmax | median | mean)."""
    if how == "crossmax":
        return crossmax(z, k)
    if how == "median":
        return median_logits(z)
    if how == "mean":
        return z.mean(dim=1)
    raise ValueError(f"unknown aggregation {how!r} (valid: {', '.join(AGGREGATIONS)})")


def check_aggregation(how: str, k: int, n_predictors: int, where: str = "crossmax") -> None:
    if how not in AGGREGATIONS:
        raise ConfigError(f"{where}: aggregation must be one of {', '.join(AGGREGATIONS)}, got {how!r}")
    # k only matters to crossmax; the others accept any positive k so that switching back works
    top = n_predictors if how == "crossmax" else None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or (top is not None and k > top):
        raise ConfigError(f"{where}: k must be an integer in 1..{n_predictors} (the number of predictors), got {k!r}")


# --------------------------------------------------------------------------- multi-resolution input


def _range(value: Any, name: str, lo: float, hi: float | None = None) -> tuple[float, float]:
    """A [low, high] pair from config (a single number means a fixed value)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ConfigError(f"crossmax.{name} must be a number or a [low, high] pair, got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (lo <= a <= b) or (hi is not None and b > hi):
        bound = f"{lo:g} ≤ low ≤ high" + (f" ≤ {hi:g}" if hi is not None else "")
        raise ConfigError(f"crossmax.{name} needs {bound}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class MultiResolutionConfig:
    """Every amount of the multi-resolution input stack (see docs/crossmax.md for the defaults).

    resolutions: side lengths r the image passes through (S first, by convention).
    shift: largest circular shift in px, in x and in y (uniform integer in [-shift, shift]).
    contrast: c ~ U[low, high]; the image becomes mean + c·(image − mean).
    noise_kind: "uniform" — per-pixel noise amount·U[0,1) (the original code's reading) —
      or "gaussian" — amount·N(0,1) (the paper text's σ).
    noise_down / noise_up: the amount added after downsampling / after upsampling.
    down_mode / up_mode: torch interpolation modes.
    """

    resolutions: tuple[int, ...]
    shift: int = 3
    contrast: tuple[float, float] = (0.5, 1.0)
    noise_kind: str = "uniform"
    noise_down: float = 0.2
    noise_up: float = 0.2
    down_mode: str = "area"
    up_mode: str = "bilinear"

    def __post_init__(self) -> None:
        res = self.resolutions
        if not isinstance(res, (list, tuple)) or not res or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in res):
            raise ConfigError(f"crossmax.resolutions must be a non-empty list of positive integers, got {res!r}")
        object.__setattr__(self, "resolutions", tuple(res))
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ConfigError(f"crossmax.shift must be an integer ≥ 0, got {self.shift!r}")
        object.__setattr__(self, "contrast", _range(self.contrast, "contrast", 0.0))
        if self.noise_kind not in NOISE_KINDS:
            raise ConfigError(f"crossmax.noise_kind must be one of {', '.join(NOISE_KINDS)}, got {self.noise_kind!r}")
        for name in ("noise_down", "noise_up"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"crossmax.{name} must be a number ≥ 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.down_mode not in DOWN_MODES:
            raise ConfigError(f"crossmax.down_mode must be one of {', '.join(DOWN_MODES)}, got {self.down_mode!r}")
        if self.up_mode not in UP_MODES:
            raise ConfigError(f"crossmax.up_mode must be one of {', '.join(UP_MODES)}, got {self.up_mode!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def default_resolutions(size: int) -> list[int]:
    """S, S/2, S/4, S/8 rounded up: 28/14/7/4 for Fashion-MNIST, 32/16/8/4 for CIFAR."""
    return [max(1, math.ceil(size / d)) for d in (1, 2, 4, 8)]


@dataclass
class _Draws:
    """One resolution's random draws, for ``n`` images (n = 1 when fixed: broadcast)."""

    dy: torch.Tensor  # n, integer shifts
    dx: torch.Tensor
    contrast: torch.Tensor  # n×1×1×1
    noise_down: torch.Tensor  # n×C×r×r, already scaled
    noise_up: torch.Tensor  # n×C×S×S


def _uniform(lo: float, hi: float, n: int, gen, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen, device=device)


def _roll(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Circular shift of each image by its own (dy, dx); one shift for all when given one."""
    if dy.numel() == 1:
        return torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
    n, c, h, w = x.shape
    rows = (torch.arange(h, device=x.device)[None, :] - dy[:, None]) % h  # n×h: source row of each row
    cols = (torch.arange(w, device=x.device)[None, :] - dx[:, None]) % w
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


class MultiResolution(nn.Module):
    """[0,1] images N×C×S×S -> N×(|R|·C)×S×S noisy multi-resolution stack in [0,1].

    Runtime state (switched with :func:`fixed_randomness` / :func:`random_draws_from`):
    ``fixed_seed`` (None: fresh draws every pass) and ``generator`` (None: torch's global RNG).
    """

    def __init__(self, config: MultiResolutionConfig, input_size: int) -> None:
        super().__init__()
        self.config = config
        self.input_size = input_size
        self.fixed_seed: int | None = None
        self.generator: torch.Generator | None = None

    @property
    def randomized(self) -> bool:
        return self.fixed_seed is None

    @property
    def n_resolutions(self) -> int:
        return len(self.config.resolutions)

    def _source(self, batch: int, device: torch.device) -> tuple[torch.Generator | None, int]:
        if self.fixed_seed is not None:
            # A new generator from the same seed at every pass: the same draws every time.
            return torch.Generator(device=device).manual_seed(int(self.fixed_seed)), 1
        return self.generator, batch

    def _draw(self, r: int, n: int, c: int, gen, device) -> _Draws:
        cfg, s = self.config, self.input_size
        # Always drawn in this order, so a seed means the same transformation everywhere.
        dy = torch.randint(-cfg.shift, cfg.shift + 1, (n,), generator=gen, device=device)
        dx = torch.randint(-cfg.shift, cfg.shift + 1, (n,), generator=gen, device=device)
        contrast = _uniform(*cfg.contrast, n, gen, device)
        noise = torch.rand if cfg.noise_kind == "uniform" else torch.randn
        noise_down = cfg.noise_down * noise(n, c, r, r, generator=gen, device=device)
        noise_up = cfg.noise_up * noise(n, c, s, s, generator=gen, device=device)
        return _Draws(dy, dx, contrast, noise_down, noise_up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h != self.input_size or w != self.input_size:
            raise ValueError(f"multi-resolution stack built for {self.input_size}×{self.input_size} inputs, got {h}×{w}")
        gen, n_draw = self._source(n, x.device)
        size = (self.input_size, self.input_size)
        out = []
        for r in self.config.resolutions:
            d = self._draw(r, n_draw, c, gen, x.device)
            v = _roll(x, d.dy, d.dx)
            mean = v.mean(dim=(1, 2, 3), keepdim=True)
            v = mean + d.contrast.to(v.dtype) * (v - mean)
            if r != self.input_size:
                v = F.interpolate(v, size=(r, r), **_mode_args(self.config.down_mode))
            v = v + d.noise_down.to(v.dtype)
            if r != self.input_size:
                v = F.interpolate(v, size=size, **_mode_args(self.config.up_mode))
            v = v + d.noise_up.to(v.dtype)
            out.append(v.clamp(0.0, 1.0))
        return torch.cat(out, dim=1)

    def extra_repr(self) -> str:
        state = "fresh draws" if self.fixed_seed is None else f"fixed seed {self.fixed_seed}"
        return f"resolutions={list(self.config.resolutions)}, {state}"


def _mode_args(mode: str) -> dict:
    return {"mode": mode} if mode in ("area", "nearest") else {"mode": mode, "align_corners": False}


# --------------------------------------------------------------------------- the self-ensemble


class PredictorEnsemble(nn.Module):
    """Anything that aggregates several predictors' logits. Runtime state: ``aggregation``,
    ``k``, ``predictor`` (None: aggregate; i: only predictor i) and ``record`` (a list that
    receives the N×P×K logits of each pass, for :func:`predictor_logits`)."""

    aggregation: str
    k: int

    def _init_state(self, aggregation: str, k: int) -> None:
        self.aggregation = aggregation
        self.k = k
        self.predictor: int | None = None
        self.record: list | None = None

    def predictor_names(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_predictors(self) -> int:
        return len(self.predictor_names())

    def _aggregate(self, z: torch.Tensor) -> torch.Tensor:
        if self.record is not None:
            self.record.append(z)
        return aggregate(z, self.aggregation, self.k)


class CrossMaxNet(Backbone, PredictorEnsemble):
    """The ``crossmax`` architecture's network (inside a Classifier, which feeds it pixels
    through :meth:`prepare_input`). Predictors: one head per point in ``head_points``, then
    the backbone's own classifier."""

    def __init__(
        self,
        net: nn.Module,
        multires: MultiResolution,
        head_points: Sequence[str],
        num_classes: int,
        in_channels: int,
        aggregation: str,
        k: int,
        resolved_options: dict,
    ) -> None:
        Backbone.__init__(self, None)
        self.net = net
        self.multires = multires
        self.head_points = list(head_points)
        self.in_channels = in_channels
        self.a3_config = getattr(net, "a3_config", None)  # A3 (if any) lives in the backbone
        self.insertion_points = tuple(getattr(net, "insertion_points", ()))
        self.heads = nn.ModuleList(_linear_head(d, num_classes) for d in self._point_sizes())
        check_aggregation(aggregation, k, len(self.head_points) + 1)
        self._init_state(aggregation, k)
        self.resolved_options = resolved_options

    def _point_sizes(self) -> list[int]:
        """Flattened size of each head's input, from one dry pass (no gradient, eval mode)."""
        if not self.head_points:
            return []
        was_training = self.net.training
        s = self.multires.input_size
        x = torch.zeros(1, self.in_channels * self.multires.n_resolutions, s, s)
        try:
            self.net.eval()
            with torch.no_grad():
                _, acts = self.net.forward_with_points(x, self.head_points)
        finally:
            self.net.train(was_training)
        return [a[0].numel() for a in acts]

    def predictor_names(self) -> list[str]:
        return [*self.head_points, BACKBONE_PREDICTOR]

    def prepare_input(self, x: torch.Tensor, normalize) -> torch.Tensor:
        """[0,1] pixels -> normalised multi-resolution stack: each of the |R| copies is
        normalised with the dataset's per-channel mean/std like a plain input would be."""
        stack = self.multires(x)
        n, _, h, w = stack.shape
        c = self.in_channels
        return normalize(stack.reshape(n * self.multires.n_resolutions, c, h, w)).reshape(n, -1, h, w)

    def head_inputs(self, h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Penultimate features and the activations every head reads (heads training)."""
        return self.net.forward_with_points(h, self.head_points)

    def all_logits(self, z: torch.Tensor, acts: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([*(head(a) for head, a in zip(self.heads, acts)), self.net.head(z)], dim=1)

    def _run(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.predictor
        if p is not None and self.record is None:
            if p == len(self.head_points):  # the backbone alone: no hooks, no heads
                z = self.net.forward_features(h)
                return self.net.head(z), z
            z, (a,) = self.net.forward_with_points(h, [self.head_points[p]])
            return self.heads[p](a), z
        z, acts = self.head_inputs(h)
        logits = self._aggregate(self.all_logits(z, acts))
        if p is not None:  # recording everything, but the output is still the chosen predictor
            logits = self.record[-1][:, p, :]
        return logits, z

    def forward_features(self, h: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(h)

    def forward_with_features(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._run(h)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._run(h)[0]

    def point_modules(self) -> dict[str, nn.Module]:
        return self.net.point_modules()

    def extra_repr(self) -> str:
        return f"predictors={self.predictor_names()}, aggregation={self.aggregation}, k={self.k}"


def _linear_head(features: int, num_classes: int) -> nn.Module:
    """The paper's head: BatchNorm1d + Linear on the flattened activation."""
    return nn.Sequential(nn.Flatten(1), nn.BatchNorm1d(features), nn.Linear(features, num_classes))


@register_model("crossmax", input_size=28, in_channels=1)
def crossmax_model(
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int = 28,
    a3=None,
    backbone: str = "smallcnn_deep",
    backbone_options: dict | None = None,
    heads: str | list = "all",
    resolutions: list | None = None,
    shift: int = 3,
    contrast: Any = (0.5, 1.0),
    noise_kind: str = "uniform",
    noise_down: float = 0.2,
    noise_up: float = 0.2,
    down_mode: str = "area",
    up_mode: str = "bilinear",
    aggregation: str = "crossmax",
    k: int = 3,
) -> CrossMaxNet:
    """Multi-resolution input + heads at ``heads`` (insertion points of ``backbone``, or
    "all") + the backbone's classifier, aggregated by ``aggregation`` (k-th highest for
    crossmax). Every argument is a ``model.options`` field of a training config."""
    from a3bench.models.registry import model_entry

    if not isinstance(backbone, str) or model_entry(backbone).factory is crossmax_model:
        raise ConfigError(f"crossmax.backbone must be a plain registered architecture, got {backbone!r}")
    if backbone_options is not None and not isinstance(backbone_options, dict):
        raise ConfigError(f"crossmax.backbone_options must be a mapping, got {backbone_options!r}")
    res = default_resolutions(input_size) if resolutions is None else resolutions
    mr_config = MultiResolutionConfig(
        resolutions=res, shift=shift, contrast=contrast, noise_kind=noise_kind, noise_down=noise_down, noise_up=noise_up,
        down_mode=down_mode, up_mode=up_mode,
    )
    if max(mr_config.resolutions) > input_size:
        raise ConfigError(f"crossmax.resolutions must not exceed the input size {input_size}, got {list(mr_config.resolutions)}")
    net = build_backbone(
        backbone, num_classes=num_classes, in_channels=in_channels * len(mr_config.resolutions),
        input_size=input_size, a3=a3, options=backbone_options,
    )
    points = _head_points(net, heads, backbone)
    resolved = {
        "backbone": backbone,
        "backbone_options": dict(backbone_options or {}),
        "heads": list(points),
        **mr_config.to_dict(),
        "aggregation": aggregation,
        "k": k,
    }
    return CrossMaxNet(
        net, MultiResolution(mr_config, input_size), points, num_classes, in_channels, aggregation, k, resolved
    )


def _head_points(net: nn.Module, heads: Any, backbone: str) -> list[str]:
    valid = list(getattr(net, "insertion_points", ()))
    if heads == "all":
        wanted = valid
    elif isinstance(heads, (list, tuple)) and all(isinstance(h, str) for h in heads):
        wanted = list(heads)
    else:
        raise ConfigError(f"crossmax.heads must be 'all' or a list of insertion points, got {heads!r}")
    if wanted and not hasattr(net, "point_modules"):
        raise ConfigError(f"crossmax: backbone {backbone} has no insertion points for heads (use heads: [])")
    unknown = [h for h in wanted if h not in valid]
    if unknown or len(set(wanted)) != len(wanted):
        problem = f"unknown {', '.join(unknown)}" if unknown else "repeated points"
        raise ConfigError(f"crossmax.heads: {problem} for backbone {backbone} (valid: {', '.join(valid) or 'none'})")
    return [p for p in valid if p in wanted]  # in the backbone's order: predictor i is the i-th from the input


def head_modules(model: nn.Module) -> list[nn.Module]:
    """Every CrossMax head in the model (what the second training phase trains)."""
    return [head for m in model.modules() if isinstance(m, CrossMaxNet) for head in m.heads]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for head in head_modules(model) for p in head.parameters()]


def frozen_head_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """N×H×K logits of the heads of a Classifier around a :class:`CrossMaxNet`, for [0,1]
    inputs x (fresh draws), with the backbone outside the graph: heads training on a frozen
    backbone needs no backward pass through it."""
    net = getattr(model, "backbone", None)
    if not isinstance(net, CrossMaxNet):
        raise ValueError(f"{type(model).__name__} is not a Classifier around a CrossMax network")
    with torch.no_grad():
        _, acts = net.head_inputs(model.prepare(x))
    return torch.stack([head(a) for head, a in zip(net.heads, acts)], dim=1)


# --------------------------------------------------------------------------- ensembles of models


class ModelEnsemble(PredictorEnsemble):
    """Several separately loaded models on the same [0,1] inputs, aggregated like CrossMax.

    Each member keeps its own normalisation and randomness; predictor i is member i.
    """

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str], aggregation: str = "crossmax", k: int | None = None) -> None:
        super().__init__()
        if len(members) != len(names):
            raise ValueError("one name per member")
        self.members = nn.ModuleList(members)
        self.member_names = list(names)
        k = min(3, len(members)) if k is None else k
        check_aggregation(aggregation, k, len(members), where="ensemble")
        self._init_state(aggregation, k)
        shapes = {tuple(s) for s in (getattr(m, "input_shape", None) for m in members) if s is not None}
        self.input_shape = next(iter(shapes)) if len(shapes) == 1 else None
        classes = {int(c) for c in (getattr(m, "num_classes", None) for m in members) if c is not None}
        self.num_classes = next(iter(classes)) if len(classes) == 1 else None

    def predictor_names(self) -> list[str]:
        return list(self.member_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.predictor
        if p is not None and self.record is None:
            return self.members[p](x)
        outs = [m(x) for m in self.members]
        shapes = {tuple(o.shape) for o in outs}
        if len(shapes) != 1:
            from a3bench.errors import ModelSpecError

            raise ModelSpecError(f"ensemble members return logits of different shapes: {sorted(shapes)}")
        logits = self._aggregate(torch.stack(outs, dim=1))
        return self.record[-1][:, p, :] if p is not None else logits

    def extra_repr(self) -> str:
        return f"members={self.member_names}, aggregation={self.aggregation}, k={self.k}"


# --------------------------------------------------------------------------- switches and queries


def _ensembles(model: nn.Module) -> list[PredictorEnsemble]:
    return [m for m in model.modules() if isinstance(m, PredictorEnsemble)]


def _outermost(model: nn.Module) -> PredictorEnsemble:
    found = _ensembles(model)  # modules() walks parents before children
    if not found:
        raise ValueError(f"{type(model).__name__} is not a CrossMax model or ensemble (no predictors to aggregate)")
    return found[0]


def _multires(model: nn.Module) -> list[MultiResolution]:
    return [m for m in model.modules() if isinstance(m, MultiResolution)]


def is_crossmax(model: nn.Module) -> bool:
    return bool(_ensembles(model))


def has_multiresolution(model: nn.Module) -> bool:
    return bool(_multires(model))


def is_randomized(model: nn.Module) -> bool:
    """Whether two passes of the same input can differ now (multi-resolution fresh draws,
    or an A3 layer sampling its mask at evaluation)."""
    from a3bench.models.a3 import a3_layers

    if any(m.randomized for m in _multires(model)):
        return True
    return any(layer.training or layer.config.eval_mask == "stochastic" for layer in a3_layers(model))


def predictor_names(model: nn.Module) -> list[str]:
    return _outermost(model).predictor_names()


@dataclass
class CrossMaxInfo:
    """What a record says about a CrossMax model or ensemble."""

    kind: str  # "self-ensemble" | "ensemble"
    predictors: list[str]
    aggregation: str
    k: int
    multiresolution: bool
    randomized: bool


def crossmax_info(model: nn.Module) -> CrossMaxInfo | None:
    if not is_crossmax(model):
        return None
    top = _outermost(model)
    return CrossMaxInfo(
        kind="ensemble" if isinstance(top, ModelEnsemble) else "self-ensemble",
        predictors=top.predictor_names(),
        aggregation=top.aggregation,
        k=top.k,
        multiresolution=has_multiresolution(model),
        randomized=is_randomized(model),
    )


def _member_seed(seed: int, i: int) -> int:
    # distinct streams per stack; a large odd stride keeps seeds s and s+1 from sharing members' draws
    return int(seed) + 1_000_003 * i


@contextlib.contextmanager
def fixed_randomness(model: nn.Module, seed: int) -> Iterator[nn.Module]:
    """The same random draws at every forward pass (a no-op for models without them)."""
    stacks = _multires(model)
    with swapped(stacks, "fixed_seed", values=[_member_seed(seed, i) for i in range(len(stacks))]):
        yield model


@contextlib.contextmanager
def random_draws_from(model: nn.Module, generator: torch.Generator) -> Iterator[nn.Module]:
    """Fresh draws at every pass, from ``generator`` (reproducible fresh randomness)."""
    with swapped(_multires(model), "generator", generator):
        yield model


@contextlib.contextmanager
def aggregation(model: nn.Module, how: str, k: int | None = None) -> Iterator[nn.Module]:
    """Every aggregator of the model uses ``how`` (and ``k`` when given) for the block."""
    targets = _ensembles(model)
    if not targets:
        _outermost(model)  # raises the not-a-CrossMax-model error
    for t in targets:
        check_aggregation(how, t.k if k is None else k, t.n_predictors, where="aggregation")
    with contextlib.ExitStack() as stack:
        stack.enter_context(swapped(targets, "aggregation", how))
        if k is not None:
            stack.enter_context(swapped(targets, "k", int(k)))
        yield model


def _predictor_index(top: PredictorEnsemble, which: int | str) -> int:
    names = top.predictor_names()
    if isinstance(which, str):
        if which not in names:
            raise ValueError(f"unknown predictor {which!r} (valid: {', '.join(names)})")
        return names.index(which)
    if isinstance(which, bool) or not isinstance(which, int) or not -len(names) <= which < len(names):
        raise ValueError(f"predictor index {which!r} out of range for {len(names)} predictors")
    return which % len(names)


@contextlib.contextmanager
def single_predictor(model: nn.Module, which: int | str) -> Iterator[nn.Module]:
    """The outermost aggregator outputs predictor ``which`` alone (``"backbone"``: the
    backbone's own classifier, computed without the heads)."""
    top = _outermost(model)
    with swapped([top], "predictor", _predictor_index(top, which)):
        yield model


def predictor_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """N×P×K logits of every predictor of the outermost aggregator, for [0,1] inputs ``x``.

    One forward pass of ``model`` itself (whatever wraps the aggregator), in the graph.
    """
    top = _outermost(model)
    store: list[torch.Tensor] = []
    with swapped([top], "record", store):
        model(x)
    if not store:
        raise RuntimeError("the aggregator did not run in the model's forward pass")
    return store[-1]


# --------------------------------------------------------------------------- training phases


class _BackbonePhase(TrainingPhase):
    """Phase 1: the backbone, through its own classifier alone (the heads are not even
    computed), with the run's objective; everything but the heads learns."""

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        heads = {id(p) for p in head_parameters(model)}
        return [p for p in model.parameters() if id(p) not in heads]

    def view(self, model: nn.Module):
        return single_predictor(model, "backbone")


class _HeadsPhase(TrainingPhase):
    """Phase 2: the heads, with cross-entropy on the frozen backbone; the model is deployed
    as a whole (CrossMax over every predictor) while it is monitored."""

    name = "heads"
    section = "heads"
    runs_objective = False
    min_batch = 2  # the heads' BatchNorm cannot train on one example (a last, short batch)

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return head_parameters(model)

    def set_train_mode(self, model: nn.Module) -> None:
        # The backbone stays in eval mode (its BatchNorm statistics and A3 masks as trained).
        model.eval()
        for head in head_modules(model):
            head.train()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> PhaseLoss:
        """Σ_heads CE(head(frozen activations), y): each head learns as if alone (the sum keeps
        every head's gradient its own); the heads' mean logits give the training accuracy."""
        z = frozen_head_logits(model, x)  # N×H×K
        total = sum(F.cross_entropy(z[:, i], y) for i in range(z.shape[1]))
        return PhaseLoss(total, z.detach().mean(dim=1))

    @torch.no_grad()
    def metrics(self, model: nn.Module, heldout: tuple[torch.Tensor, torch.Tensor], batch_size: int) -> dict[str, Any]:
        """``predictor_acc``: clean held-out accuracy (percent) of each predictor, in eval mode."""
        was_training = model.training
        model.eval()
        x, y = heldout
        names = predictor_names(model)
        correct = torch.zeros(len(names))
        try:
            for i in range(0, len(x), batch_size):
                z = predictor_logits(model, x[i : i + batch_size])
                correct += (z.argmax(2) == y[i : i + batch_size, None]).sum(0).cpu()
        finally:
            model.train(was_training)
        return {"predictor_acc": {n: 100.0 * float(c) / len(x) for n, c in zip(names, correct)}}


class CrossMaxFamily(ModelFamily):
    """Self-ensembles with heads train in two phases: ``train:`` the backbone, then ``heads:``
    the heads (docs/crossmax.md). A CrossMax model without heads is an ordinary model."""

    name = "crossmax"
    description = "model.arch crossmax with heads"
    sections = ("train", "heads")

    def claims(self, model: nn.Module) -> bool:
        return bool(head_modules(model))

    def phases(self, model: nn.Module) -> list[TrainingPhase]:
        return [_BackbonePhase(), _HeadsPhase()]


register_family(CrossMaxFamily())
