"""The notebook API: one call on tensors, the way torchattacks and RobustBench are used.

>>> import a3bench
>>> record = a3bench.benchmark(model, (x_test, y_test), norm="Linf", eps=8/255, suite="standard")
>>> record.robust_acc, record.robust_acc_ci, record.verdict
>>> atk = a3bench.attack("pgd-50:loss=dlr")            # an attack object, torchattacks-style
>>> out = atk(model, x, y, a3bench.ThreatModel("Linf", 8/255))
>>> x_adv, fooled = out.x_adv, out.success

``benchmark`` runs exactly what ``a3bench attack`` runs (the same cascade, judge, flags and
verdict), so it gives the same numbers for the same model, examples, seed and batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from a3bench.errors import DataError


def benchmark(
    model: nn.Module | str,
    data: Any,
    *,
    norm: str = "Linf",
    eps: float | str,
    suite: str | None = None,
    attacks: str | list[str] | None = None,
    device: str | torch.device = "auto",
    n_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    out: str | Path | None = None,
    progress: bool | Any = False,
    **options: Any,
):
    """Evaluate ``model`` and return its :class:`~a3bench.schema.ResultRecord`.

    Args:
        model: an ``nn.Module`` taking [0,1] pixels (N×C×H×W) and returning logits, what
            :func:`a3bench.load_model` returns, or a ``--model`` SPEC (zoo name, checkpoint path, ...).
        data: a dataset name (``"cifar10"``: its test split), an ``(x, y)`` pair of tensors
            (x float in [0,1], y class indices), or a DataLoader yielding such pairs.
        norm, eps: the threat model (eps may be ``"8/255"``). suite / attacks: as for
            ``a3bench attack`` (default suite ``quick``).
        n_examples: the first N examples. Default None: **all of them** — a dataset name's whole
            test split (10,000 for Fashion-MNIST and CIFAR; ``suite="full"`` on all of them
            takes hours on a CPU); pass e.g. ``n_examples=500`` for a first look.
        device: ``auto`` picks CUDA when present.
        out: also write the record (and its outcomes) there.
        progress: ``True`` prints progress to stderr as ``a3bench attack`` does (a line per
            stage and every minute, with the time left); a callable receives every
            :class:`~a3bench.eval.runner.ProgressEvent`; ``False`` (default) is silent.
        options: any other field of :class:`~a3bench.eval.runner.AttackOptions` (``resume``,
            ``audit``, ``probe``, ``draws``, ``engine``, ``max_passes`` ...).
    """
    from a3bench.errors import AttackError
    from a3bench.eval.runner import evaluate
    from a3bench.limits import check_seed
    from a3bench.models.spec import load_model
    from a3bench.threat import ThreatModel, parse_eps

    check_seed(seed, "seed", AttackError)  # 2**70 is the caller's mistake, not the model's
    threat = ThreatModel(norm, parse_eps(eps))
    if isinstance(model, str):
        named = as_dataset(data) if isinstance(data, str) else None  # a tensor set's classes come from the model
        model = load_model(model, dataset=named.info.name if named else None, norm=threat.norm.value)
    dataset = as_dataset(data, model)
    spec = None if isinstance(model, nn.Module) else getattr(model, "name", None)
    drawer = None
    if progress is True:
        from a3bench.cli.common import console
        from a3bench.cli.progress import AttackDrawer

        drawer = AttackDrawer(console(stderr=True), plain=True)
    elif progress:
        drawer = progress
    try:
        return evaluate(model, dataset, threat, attacks, suite=suite, n_examples=n_examples, seed=seed, batch_size=batch_size,
                        device=device, out=out, spec=spec, progress=drawer, **options).record
    finally:
        if progress is True and drawer is not None:
            drawer.close()


def attack(name: str):
    """One attack object by its registry name (``"pgd-20"``, ``"apgd-t"``, ``"crossmax-mean:steps=300"``):
    call it as ``atk(model, x, y, threat, seed=0)`` for an :class:`~a3bench.attacks.base.AttackOutput`;
    ``model`` is an ``nn.Module`` or what :func:`a3bench.load_model` returns.
    A composite name (``"autoattack"``) is refused here: run it with :func:`benchmark`."""
    from a3bench.attacks.registry import build_attack
    from a3bench.errors import AttackError

    built = build_attack(name)
    if len(built) != 1:
        raise AttackError(f"{name!r} is a composite of {len(built)} attacks ({', '.join(a.name for a in built)}): "
                          "use a3bench.benchmark(..., attacks=...) for it")
    return built[0]


def as_dataset(data: Any, model: Any = None):
    """A dataset name, an (x, y) pair or a DataLoader → an :class:`~a3bench.data.ImageDataset`."""
    from a3bench.data import DatasetInfo, ImageDataset, load_dataset

    if isinstance(data, ImageDataset):
        return data
    if isinstance(data, str):
        return load_dataset(data, "test")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif hasattr(data, "__iter__"):
        xs, ys = [], []
        for item in data:
            if not (isinstance(item, (tuple, list)) and len(item) >= 2):
                raise DataError("a DataLoader must yield (x, y) pairs")
            xs.append(torch.as_tensor(item[0]))
            ys.append(torch.as_tensor(item[1]))
        if not xs:
            raise DataError("the DataLoader yielded nothing")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise DataError(f"data must be a dataset name, an (x, y) pair of tensors or a DataLoader, got {type(data).__name__}")
    x, y = x.detach().cpu(), y.detach().cpu()
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y):
        raise DataError(f"x must be N×C×H×W and y N class indices, got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.is_floating_point() or (len(y) and int(y.min()) < 0):
        raise DataError("y must hold class indices (integers ≥ 0)")
    x = x.float()
    if len(x) and (float(x.min()) < 0 or float(x.max()) > 1 or not bool(torch.isfinite(x).all())):
        raise DataError("x must hold pixels in [0, 1] (the model owns its normalisation)")
    seen = int(y.max()) + 1 if len(y) else 1
    num_classes = _num_classes(model, x) or seen  # a subset need not hold every class
    if seen > num_classes:
        raise DataError(f"y holds class {seen - 1}, but the model has {num_classes} classes")
    c = x.shape[1]
    info = DatasetInfo(name="tensors", num_classes=int(num_classes), input_shape=tuple(x.shape[1:]), mean=(0.5,) * c, std=(0.5,) * c,
                       classes=tuple(str(i) for i in range(int(num_classes))))
    return ImageDataset(x.contiguous(), y.long(), info)


def _num_classes(model: Any, x: torch.Tensor) -> int | None:
    """The model's class count: what it declares (``num_classes``, its checkpoint's
    metadata), else the width of its logits on one example; None when it says nothing."""
    module = getattr(model, "model", model)  # a LoadedModel holds its module
    for source in (module, model, getattr(model, "meta", None) or {}):
        n = source.get("num_classes") if isinstance(source, dict) else getattr(source, "num_classes", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
    if not isinstance(module, nn.Module) or not len(x):
        return None
    modes = [(m, m.training) for m in module.modules()]
    try:
        param = next(module.parameters(), None)
        module.eval()  # as it will be evaluated (BatchNorm cannot run on one example in training mode)
        with torch.no_grad():
            logits = module(x[:1].to(param.device if param is not None else "cpu"))
    except Exception:  # noqa: BLE001 - the runner's own check reports a model that cannot run, in one line
        return None
    finally:
        for m, training in modes:
            m.training = training
    if isinstance(logits, torch.Tensor) and logits.dim() == 2 and logits.shape[1] > 0:
        return int(logits.shape[1])
    return None
