"""Where does the gradient lie? Localisation in the forward graph, and straight-through
bridges over what it finds (graph-level BPDA, :mod:`a3bench.attacks.bpda_graph`).

Module hooks see only what enters and leaves named modules. A lie is as likely to sit in
a functional call or a custom ``autograd.Function`` between two modules inside some
``forward``. So the forward pass is traced at the level of torch operations
(:class:`torch.overrides.TorchFunctionMode`): every tensor that carries the input's
gradient — an operation's output, or an operation's input that no traced operation
produced (the output of a custom ``autograd.Function``) — is a *point*, addressed by
its position in the sequence of calls, so the same point can be found again in the next
forward pass (the model's control flow must not depend on the data, which holds for
feed-forward classifiers).

At each point ``t`` (on a few examples, moved to random points of the eps-ball) the
gradient of the loss w.r.t. ``t`` from autograd is compared with a finite difference of
the rest of the forward pass, the same test as the consistency check
(:mod:`a3bench.attacks.finite_diff`), step 1e-3·‖t‖ along ``t``'s own ascent. Upstream of
a lie every point's gradient is wrong (it passed through the lie); downstream every one
is right. The lie sits between the last wrong point and the first right point after it
that depends on it — reported in words ("the gradient stops matching between the output
of `encoder` and the input of `head`"), with the autograd nodes in between
(``_LieBackward``). A point whose gradient is exactly zero for most examples is also
wrong ("the gradient vanishes between ..."): a quantiser, a detach.

Where the two points have the same shape, the gap can be bridged: the forward value of
the far point, the gradient passed to the near one unchanged (straight-through, BPDA,
Athalye et al. 2018). :func:`locate_lie` bridges each gap it finds and looks again
upstream, so a network with several lies gets several bridges.

>>> loc = locate_lie(model, x, threat=ThreatModel("Linf", 0.1))
>>> loc.message
'the gradient stops matching between the output of `encoder` and the input of `head` (through `_LieBackward`)'
>>> logits = forward_bridged(model, x, loc.gaps)   # same values; gradients straight through each gap
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from a3bench.attacks.finite_diff import in_window, margin_loss, noise_floor
from a3bench.threat import ThreatModel, example_seeds

Locator = tuple  # ("x",) model input | ("y",) model output | ("out"|"in", call index, leaf index)
REL_STEP = 1e-3  # finite-difference step at a point, relative to the point's norm per example
MAX_LINEAR = 96  # more points than this: binary search for the transition
MAX_GAPS = 4
PROBE = 8  # examples the localisation looks at
SALT = 5_003


class _StraightThrough(torch.autograd.Function):
    """Forward: ``far`` (exactly). Backward: the incoming gradient goes to ``near`` as it is."""

    @staticmethod
    def forward(ctx, near, far):
        return far.view_as(far)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def _candidate(t: Any, n: int) -> bool:
    return (isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter) and t.is_floating_point()
            and t.requires_grad and t.grad_fn is not None and t.dim() >= 1 and t.shape[0] == n)


@dataclass
class _Point:
    loc: Locator
    tensor: torch.Tensor
    op: str
    module: str  # innermost module running when it appeared ("" = the model itself)
    version: int


@dataclass
class _Cut:
    """An operation whose input carries the input's gradient and whose output does not
    (``x > t``, ``detach``, an integer cast, a ``no_grad`` block): where the path is cut."""

    near: _Point  # the input that still carries the gradient
    op: str
    far: list[_Point] = field(default_factory=list)  # floating tensors computed from the cut output, in order


class GraphChanged(RuntimeError):
    """The forward graph differs between two passes (data-dependent control flow or shapes)."""


class _Tracer(TorchFunctionMode):
    """Numbers every torch call of a forward pass; records points, perturbs one, bridges gaps."""

    def __init__(self, *, n: int = 0, record: bool = False, perturb: tuple[Locator, torch.Tensor] | None = None,
                 bridges: Sequence[tuple[Locator, Locator]] = ()) -> None:
        super().__init__()
        self.n, self.record = n, record
        self.calls = 0
        self.points: list[_Point] = []
        self._seen: dict[int, int] = {}
        self.perturb = perturb
        self.bridge_ends = {end: start for start, end in bridges}
        self.bridge_starts = {start for start, _ in bridges}
        self.captured: dict[Locator, torch.Tensor] = {}
        self.module_stack: list[str] = []
        self.cuts: list[_Cut] = []
        self._cut_of: dict[int, _Cut] = {}  # id of a tensor computed from a cut output → that cut
        self._keep: list[torch.Tensor] = []  # keeps those tensors alive, so their ids stay theirs
        self.perturbed = False

    def note(self, loc: Locator, t: torch.Tensor, op: str) -> None:
        if self.record and _candidate(t, self.n) and id(t) not in self._seen:
            self._seen[id(t)] = len(self.points)
            module = self.module_stack[-1] if self.module_stack else ""
            self.points.append(_Point(loc, t, op, module, t._version))

    def rewrite(self, loc: Locator, t: Any) -> Any:
        """The tensor at ``loc`` as this pass wants it: perturbed, bridged, remembered."""
        if not isinstance(t, torch.Tensor):
            return t
        if self.perturb is not None and self.perturb[0] == loc:
            if tuple(t.shape) != tuple(self.perturb[1].shape):
                raise GraphChanged(f"a tensor of shape {tuple(t.shape)} where the previous pass had {tuple(self.perturb[1].shape)}")
            t = t + self.perturb[1]
            self.perturbed = True
        if loc in self.bridge_ends:
            near = self.captured.get(self.bridge_ends[loc])
            if near is not None and near.shape == t.shape:
                t = _StraightThrough.apply(near, t)
        if loc in self.bridge_starts:
            self.captured[loc] = t
        return t

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        j = self.calls
        self.calls += 1
        op = getattr(func, "__name__", str(func))
        leaves, spec = tree_flatten((args, kwargs))
        has_input = any(isinstance(v, torch.Tensor) for v in leaves)
        if has_input:
            leaves = [self.rewrite(("in", j, k), v) for k, v in enumerate(leaves)]
            args, kwargs = tree_unflatten(leaves, spec)
        out = func(*args, **kwargs)
        outs, ospec = tree_flatten(out)
        if any(isinstance(v, torch.Tensor) for v in outs):
            # an input is a point only where it enters a computation: not where `size()`
            # or `dim()` merely looks at it (perturbing it there would change nothing)
            if has_input:
                for k, v in enumerate(leaves):
                    if isinstance(v, torch.Tensor):
                        self.note(("in", j, k), v, op)
            outs = [self.rewrite(("out", j, k), v) for k, v in enumerate(outs)]
            for k, v in enumerate(outs):
                if isinstance(v, torch.Tensor):
                    self.note(("out", j, k), v, op)
            if self.record:
                self._note_cuts(j, op, leaves, outs)
            out = tree_unflatten(outs, ospec)
        return out

    def _note_cuts(self, j: int, op: str, leaves: list, outs: list) -> None:
        """Outputs that lost the input's gradient, and what is computed from them."""
        tensors = [(k, v) for k, v in enumerate(leaves) if isinstance(v, torch.Tensor)]
        carrier = next(((k, v) for k, v in tensors if v.requires_grad and v.is_floating_point()), None)
        inherited = next((self._cut_of[id(v)] for _, v in tensors if id(v) in self._cut_of), None)
        cut = None
        for k, v in enumerate(outs):
            if not isinstance(v, torch.Tensor) or v.requires_grad:
                continue
            if carrier is not None:
                if cut is None:
                    module = self.module_stack[-1] if self.module_stack else ""
                    cut = _Cut(_Point(("in", j, carrier[0]), carrier[1], op, module, carrier[1]._version), op)
                    self.cuts.append(cut)
                owner = cut
            elif inherited is not None:
                owner = inherited
            else:
                continue
            self._cut_of[id(v)] = owner
            self._keep.append(v)
            if v.is_floating_point() and v.dim() >= 1 and v.shape[0] == self.n:
                module = self.module_stack[-1] if self.module_stack else ""
                owner.far.append(_Point(("out", j, k), v, op, module, v._version))


def _run(model: nn.Module, x: torch.Tensor, tracer: _Tracer) -> torch.Tensor:
    """One forward pass under ``tracer``: the input and output are points too."""
    if tracer.perturb is not None and tracer.perturb[0] == ("x",):
        x = x + tracer.perturb[1]
    if ("x",) in tracer.bridge_starts:
        tracer.captured[("x",)] = x
    with tracer:
        out = model(x)
    if tracer.perturb is not None and tracer.perturb[0] == ("y",):
        out = out + tracer.perturb[1]
    if ("y",) in tracer.bridge_ends:
        near = tracer.captured.get(tracer.bridge_ends[("y",)])
        if near is not None and near.shape == out.shape:
            out = _StraightThrough.apply(near, out)
    return out


@contextmanager
def _module_names(model: nn.Module, tracer: _Tracer, inputs: dict, outputs: dict) -> Iterator[None]:
    """Which modules are running (for naming points), and which tensors entered/left which module."""
    handles = []
    for name, module in model.named_modules():
        if module is model:
            continue

        def pre(mod, args, name=name):
            tracer.module_stack.append(name)
            for a in tree_flatten(args)[0]:
                if isinstance(a, torch.Tensor):
                    inputs.setdefault(id(a), []).append(name)

        def post(mod, args, out, name=name):
            if tracer.module_stack and tracer.module_stack[-1] == name:
                tracer.module_stack.pop()
            for o in tree_flatten(out)[0]:
                if isinstance(o, torch.Tensor):
                    outputs.setdefault(id(o), []).append(name)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------- results


@dataclass
class GraphPoint:
    """One point of the forward graph and what the check found there."""

    index: int  # order of first appearance in the forward pass
    where: str  # in words: "the output of `encoder`", "the input of `relu` in `encoder.block2`"
    shape: list[int]  # per example
    zero: float  # fraction of examples whose autograd gradient here is exactly zero
    consistent: float  # fraction of examples whose gradient here matches finite differences
    checked: bool = True  # False: skipped by the binary search


@dataclass
class Gap:
    """Where the gradient goes wrong: between two points of the forward graph."""

    kind: str  # "vanishes" | "stops matching"
    before: str  # the last point whose gradient is wrong
    after: str  # the first point after it whose gradient is right
    through: list[str]  # autograd nodes in between (a custom Function's shows as <Name>Backward)
    shape_preserving: bool  # same shape on both sides: a straight-through bridge fits
    start: list  # locators (JSON-able) of the two points, for bridging
    end: list
    at_output: bool = False  # the far side is the model's output (an attack may take its loss on the near side)

    @property
    def sentence(self) -> str:
        via = f" (through {', '.join(f'`{t}`' for t in self.through)})" if self.through else ""
        return f"the gradient {self.kind} between {self.before} and {self.after}{via}"


@dataclass
class LieLocation:
    """What :func:`locate_lie` found; ``to_dict()`` is what a result record holds."""

    found: bool
    message: str  # one sentence per gap, or why nothing was found
    gaps: list[Gap] = field(default_factory=list)
    points: list[GraphPoint] = field(default_factory=list)
    n_examples: int = 0
    forward_passes: int = 0
    backward_passes: int = 0

    @property
    def bridgeable(self) -> list[Gap]:
        return [g for g in self.gaps if g.shape_preserving]

    def to_dict(self, with_points: bool = False) -> dict[str, Any]:
        d = asdict(self)
        for g, gap in zip(d["gaps"], self.gaps):
            g["sentence"] = gap.sentence
        if not with_points:
            d.pop("points")
        return d


# --------------------------------------------------------------------------- localisation


def _describe(p: _Point, inputs: dict, outputs: dict, prefer: str) -> str:
    if p.loc == ("x",):
        return "the model's input"
    if p.loc == ("y",):
        return "the model's output"
    outer = lambda names: min(names, key=lambda s: (s.count("."), s))  # noqa: E731
    outs, ins = outputs.get(id(p.tensor)), inputs.get(id(p.tensor))
    if prefer == "after" and ins:
        return f"the input of `{outer(ins)}`"
    if outs:
        return f"the output of `{outer(outs)}`"
    if ins:
        return f"the input of `{outer(ins)}`"
    where = f"`{p.module}`" if p.module else "the model's forward"
    side = "output" if p.loc[0] == "out" else "input"
    return f"the {side} of `{p.op}` in {where}"


def _through(far: torch.Tensor, near: torch.Tensor, limit: int = 6, budget: int = 20_000) -> tuple[bool, list[str]]:
    """Is ``near`` upstream of ``far`` in the autograd graph, and which nodes lie between
    (nearest to ``far`` first). Iterative: deep networks have deep graphs."""
    start = far.grad_fn
    if start is None:
        return False, []

    def is_near(node) -> bool:
        return node is near.grad_fn if near.grad_fn is not None else getattr(node, "variable", None) is near

    order, parents, seen, stack = [], {}, {start}, [start]
    while stack and len(seen) < budget:
        node = stack.pop()
        order.append(node)
        if is_near(node):
            continue  # nothing beyond ``near`` lies between
        for child, _ in node.next_functions:
            if child is None:
                continue
            parents.setdefault(child, []).append(node)
            if child not in seen:
                seen.add(child)
                stack.append(child)
    # every node on a path from far to near: the ancestors (towards far) of near's node
    between, todo = set(), [n for n in order if is_near(n)]
    if not todo:
        return False, []
    while todo:
        node = todo.pop()
        for parent in parents.get(node, []):
            if parent not in between:
                between.add(parent)
                todo.append(parent)
    names: list[str] = []
    for node in order:
        name = type(node).__name__
        if node in between and name not in names:
            names.append(name)
    return True, names[:limit]


class _Probe:
    """Gradients and finite differences at the points of one model on a few examples."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, bridges: list[tuple[Locator, Locator]], seed: int):
        self.model, self.x, self.y, self.bridges, self.seed = model, x, y, bridges, seed
        self.fwd = self.bwd = 0
        n = x.shape[0]
        self.inputs: dict = {}
        self.outputs: dict = {}
        tracer = _Tracer(n=n, record=True, bridges=bridges)
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad(), _module_names(model, tracer, self.inputs, self.outputs):
            logits = _run(model, xg, tracer)
            loss = margin_loss(logits, y)
            pts = [_Point(("x",), xg, "input", "", xg._version)] + tracer.points
            if id(logits) not in {id(p.tensor) for p in pts} and logits.requires_grad:
                pts.append(_Point(("y",), logits, "output", "", logits._version))
            pts = [p for p in pts if p.tensor._version == p.version]  # changed in place later: not what autograd saw
            # no autograd path from the input to the output: the path is cut (tracer.cuts say where)
            self.cut = not loss.requires_grad
            grads = [None] * len(pts) if self.cut else torch.autograd.grad(loss.sum(), [p.tensor for p in pts], allow_unused=True)
        self.tracer = tracer
        self.output_id = id(logits)
        self.fwd += n
        self.bwd += 0 if self.cut else n
        self.loss = loss.detach()
        self.floor = noise_floor(logits)
        self.points, self.grads = [], []
        for p, g in zip(pts, grads):
            if g is not None:
                self.points.append(p)
                self.grads.append(g.detach())

    def judge(self, i: int) -> tuple[float, float]:
        """(fraction of examples with a zero gradient, fraction consistent) at point i."""
        p, g = self.points[i], self.grads[i]
        n = g.shape[0]
        flat = g.flatten(1)
        zero = (flat == 0).all(dim=1)
        gnorm = flat.norm(dim=1)
        t = p.tensor.detach()
        tnorm = t.flatten(1).norm(dim=1)
        step = torch.where(tnorm > 0, REL_STEP * tnorm, torch.full_like(tnorm, REL_STEP))
        gen = torch.Generator().manual_seed(int(example_seeds(self.seed, [i], salt=SALT)[0]))
        rnd = torch.randn(g.shape, generator=gen).to(g.device, g.dtype)
        u = torch.where(zero.view(-1, *([1] * (g.dim() - 1))), rnd, g)
        u = u / u.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (g.dim() - 1)))
        shape = (-1, *([1] * (g.dim() - 1)))

        def measured(scale: float) -> torch.Tensor:
            delta = (scale * step).view(shape) * u
            tracer = _Tracer(perturb=(p.loc, delta), bridges=self.bridges)
            with torch.no_grad():
                out = _run(self.model, self.x, tracer)
            if not tracer.perturbed and p.loc != ("x",) and p.loc != ("y",):
                raise GraphChanged(f"the point {p.loc} of one pass is not there in the next")
            self.fwd += n
            return margin_loss(out, self.y) - self.loss

        change = measured(1.0)
        claimed = gnorm * step
        ratio = change / claimed.clamp_min(1e-30)
        flat_here = (claimed <= self.floor) & (change.abs() <= self.floor)
        ok = torch.where(zero, change.abs() <= self.floor, flat_here | in_window(ratio))
        if (~ok & ~zero).any():  # a second look at a ten times smaller step (kinks)
            change2 = measured(0.1)
            ok = ok | (~zero & in_window(change2 / (0.1 * claimed).clamp_min(1e-30)))
        return float(zero.float().mean()), float(ok.float().mean())


def locate_lie(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *, threat: ThreatModel | None = None,
               seed: int = 0, n_examples: int = PROBE, max_gaps: int = MAX_GAPS) -> LieLocation:
    """Find where the gradient vanishes or stops matching finite differences.

    Args:
        model: eval mode, on [0,1] inputs; its forward's control flow must not depend on the data.
        x: a few inputs (the first ``n_examples`` are used); moved to random points of the
            eps-ball when ``threat`` is given (per-example seeds), away from the max-pool
            ties of flat clean backgrounds.
        y: labels; default the model's own predictions (any label serves to compare gradients).

    Returns a :class:`LieLocation` whose ``gaps`` are ordered from the output towards the
    input; each shape-preserving gap is bridged before looking further upstream.
    """
    x = x[:n_examples].detach()
    n = x.shape[0]
    if threat is not None and threat.eps > 0:
        x = threat.random_start(x, seeds=example_seeds(seed, range(n), salt=SALT))
        x = x.clamp(threat.lower + 1e-3, threat.upper - 1e-3)
    with torch.no_grad():
        y = model(x).argmax(1) if y is None else y[:n]
    fwd = n
    try:
        return _locate(model, x, y, seed, n, fwd, max_gaps)
    except GraphChanged as e:
        return LieLocation(found=False, message=f"the forward graph changes from one pass to the next ({e}): a lie cannot be "
                                                "located on it, and no bridge can be placed", n_examples=n, forward_passes=fwd)


def _bridge_cuts(probe: "_Probe", inputs: dict, outputs: dict) -> tuple[list[Gap], list[tuple[Locator, Locator]], set]:
    """Bridge every cut of the input's gradient path by the first floating tensor after it
    with the same shape as the tensor that entered the cut (``(x > t).float()``: the
    threshold becomes the identity in the backward pass, BPDA's approximation). Returns the
    gaps, the bridges, and the points upstream of them (their gradients now pass a bridge)."""
    gaps, bridges, upstream = [], [], set()
    for cut in probe.tracer.cuts:
        far = next((f for f in cut.far if tuple(f.tensor.shape) == tuple(cut.near.tensor.shape)), None)
        end = far or (cut.far[0] if cut.far else None)
        after = _describe(end, inputs, outputs, "after") if end is not None else f"the output of `{cut.op}`"
        gap = Gap(kind="is cut", before=_describe(cut.near, inputs, outputs, "before"), after=after, through=[f"{cut.op}"],
                  shape_preserving=far is not None, start=list(cut.near.loc), end=list(far.loc) if far is not None else [])
        gaps.append(gap)
        if far is not None:
            bridges.append((cut.near.loc, far.loc))
            upstream |= {p.loc for p in probe.tracer.points if p.loc[1] <= far.loc[1]}
    return gaps, bridges, upstream


def _locate(model, x, y, seed, n, fwd, max_gaps) -> LieLocation:
    bwd = 0
    gaps: list[Gap] = []
    bridges: list[tuple[Locator, Locator]] = []
    excluded: set = set()
    points_out: list[GraphPoint] = []
    for _ in range(max_gaps):
        probe = _Probe(model, x, y, bridges, seed)
        if probe.cut:
            fwd += probe.fwd
            cut_gaps, cut_bridges, upstream = _bridge_cuts(probe, probe.inputs, probe.outputs)
            gaps += cut_gaps
            if not cut_bridges or any(not g.shape_preserving for g in cut_gaps):
                break
            bridges += cut_bridges
            excluded |= upstream | {("x",)}
            continue
        verdicts: dict[int, tuple[float, float]] = {}

        def bad(i: int) -> bool:
            if i not in verdicts:
                verdicts[i] = probe.judge(i)
            zero, ok = verdicts[i]
            return zero >= 0.5 or ok < 0.5

        candidates = [i for i, p in enumerate(probe.points) if p.loc not in excluded]
        last = _last_bad(candidates, bad)
        end, through = None, []
        if last is not None:
            start = probe.points[last]
            for j in range(last + 1, len(probe.points)):
                if probe.points[j].loc in excluded or bad(j):
                    continue
                linked, through = _through(probe.points[j].tensor, start.tensor)
                if linked:
                    end = probe.points[j]
                    break
        fwd += probe.fwd
        bwd += probe.bwd
        if not points_out:  # the first look, before any bridge: what the record shows
            points_out = [GraphPoint(i, _describe(p, probe.inputs, probe.outputs, "after"), list(p.tensor.shape[1:]),
                                     *verdicts.get(i, (float("nan"), float("nan"))), checked=i in verdicts)
                          for i, p in enumerate(probe.points)]
        if end is None:
            break
        zero = verdicts[last][0] >= 0.5
        gap = Gap(kind="vanishes" if zero else "stops matching",
                  before=_describe(start, probe.inputs, probe.outputs, "before"),
                  after=_describe(end, probe.inputs, probe.outputs, "after"),
                  through=through, shape_preserving=tuple(start.tensor.shape) == tuple(end.tensor.shape),
                  start=list(start.loc), end=list(end.loc), at_output=id(end.tensor) == probe.output_id or end.loc == ("y",))
        gaps.append(gap)
        if not gap.shape_preserving:
            break
        bridges.append((start.loc, end.loc))
        # points inside the bridged gap no longer receive a gradient: leave them out
        excluded |= {probe.points[k].loc for k in range(last + 1, probe.points.index(end))}
        excluded.add(start.loc)
        if start.loc == ("x",):
            break
    if gaps:
        sentences: dict[str, int] = {}
        for g in gaps:
            sentences[g.sentence] = sentences.get(g.sentence, 0) + 1
        message = "; ".join(f"{s} ({k} times)" if k > 1 else s for s, k in sentences.items())
        if not gaps[-1].shape_preserving:
            message += " — the two sides differ in shape, so no straight-through bridge fits"
    else:
        message = "no lie located: at every point of the forward graph the gradient matches finite differences"
    return LieLocation(found=bool(gaps), message=message, gaps=gaps, points=points_out, n_examples=n,
                       forward_passes=fwd, backward_passes=bwd)


def _last_bad(candidates: list[int], bad) -> int | None:
    """The last wrong point, scanning every point (few) or by binary search (many), which
    assumes wrong points come before right ones — true with one lie on the main path."""
    if not candidates:
        return None
    if len(candidates) <= MAX_LINEAR:
        last = None
        for i in candidates:
            if bad(i):
                last = i
        return last
    lo, hi = 0, len(candidates) - 1  # invariant: the answer is at or after lo-1 ... before hi+1
    if not bad(candidates[lo]):
        return None
    if bad(candidates[hi]):
        return candidates[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad(candidates[mid]):
            lo = mid
        else:
            hi = mid
    return candidates[lo]


def forward_bridged(model: nn.Module, x: torch.Tensor, gaps: Sequence[Gap]) -> torch.Tensor:
    """``model(x)`` with every shape-preserving gap a straight-through bridge: the same
    forward values, the gradient handed from the far side of each gap to its near side."""
    bridges = [(tuple(g.start), tuple(g.end)) for g in gaps if g.shape_preserving]
    if not bridges:
        return model(x)
    return _run(model, x, _Tracer(bridges=bridges))


def output_gap(gaps: Sequence[Gap]) -> Gap | None:
    """The bridged gap that ends at the model's output, when its near side has the output's
    shape (scores in front of a lie at the output: a softmax-like squashing, a rescaling)."""
    return next((g for g in gaps if g.shape_preserving and (g.at_output or tuple(g.end) == ("y",))), None)


def forward_near(model: nn.Module, x: torch.Tensor, gaps: Sequence[Gap]) -> tuple[torch.Tensor, torch.Tensor]:
    """(``model(x)`` with every shape-preserving gap bridged, the scores in front of the lie
    at the output): an attack takes its loss on the second, as BPDA's approximation does —
    where the deployed output is flat its gradient points nowhere — and judges on the first."""
    bridges = [(tuple(g.start), tuple(g.end)) for g in gaps if g.shape_preserving]
    last = output_gap(gaps)
    tracer = _Tracer(bridges=bridges)
    if last is not None:
        tracer.bridge_starts.add(tuple(last.start))
    out = _run(model, x, tracer)
    near = tracer.captured.get(tuple(last.start)) if last is not None else None
    return out, (near if near is not None else out)
