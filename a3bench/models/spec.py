"""Resolve a ``--model SPEC`` to a ready model (eval mode, on the device).

SPEC is one of: a model-zoo name; a checkpoint path; ``file.py:factory`` or
``package.module:factory`` returning an ``nn.Module`` on [0,1] inputs;
``robustbench:NAME`` for RobustBench's zoo; ``ensemble:SPEC1,SPEC2,...[:agg=A][:k=N]``
for CrossMax (default), median or mean over several of these; or None for the bundled default.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from a3bench.errors import ModelSpecError, excerpt, one_line
from a3bench.io import is_file
from a3bench.models.checkpoint import load_checkpoint
from a3bench.models.zoo import DEFAULT_MODEL, list_zoo, zoo_card, zoo_path
from a3bench.schema import ModelCard


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: the model and what is known about it.

    It stands in for its ``model`` wherever a module is expected: calling it runs the model,
    and any attribute it does not have itself is the model's (``.eval()``, ``.modules()``,
    ``.num_classes`` ...). So ``a3bench.attack("pgd-20")(a3bench.load_model(NAME), x, y, threat)``
    works as with ``.model``, and so does every other entry of the API.
    """

    model: nn.Module
    name: str  # used in result paths and leaderboards
    source: str  # "zoo" | "checkpoint" | "factory" | "robustbench" | "ensemble"
    dataset: str | None  # the dataset the model was trained for, when known
    meta: dict = field(default_factory=dict)  # checkpoint metadata ({} for factories)
    card: ModelCard = field(default_factory=ModelCard)  # model card: reported accuracy, link, authors ...
    path: str | None = None

    @property
    def declared_classes(self) -> list[str] | None:
        """The model's class names in label order, when it says: its checkpoint's (``a3bench
        train`` writes them), its card's, else those of the dataset it was trained on when that
        dataset's order is fixed (fmnist, cifar10 ...; not an image folder's). None otherwise."""
        from a3bench.data import canonical_name, dataset_info
        from a3bench.data.registry import source_of
        from a3bench.errors import A3BenchError

        for names in ((self.meta or {}).get("classes"), (self.card.extra if self.card else {}).get("classes")):
            if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
                return list(names)
        trained_on = (self.meta or {}).get("dataset") or self.dataset
        if not isinstance(trained_on, str):
            return None
        try:
            canon = canonical_name(trained_on)
            return None if source_of(canon).label_order else list(dataset_info(canon).classes)
        except A3BenchError:
            return None

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def __getattr__(self, attr: str):
        # Only reached for what the dataclass lacks. Dunders and "model" itself are never
        # forwarded: copy and pickle probe them on an object whose fields are not set yet.
        if attr == "model" or attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.model, attr)


def _load_factory(spec: str) -> nn.Module:
    """Import ``file.py`` or ``package.module`` and call its factory: the user's own Python,
    run by design. Whatever it raises (SystemExit and other BaseExceptions included) is one
    ModelSpecError naming the spec, never a traceback or a silent exit."""
    target, _, factory_name = spec.rpartition(":")
    shown = excerpt(spec, 120)
    if not factory_name.isidentifier():
        raise ModelSpecError(f"model spec {shown}: {excerpt(factory_name, 40)} is not a factory name")
    with _user_code(f"model spec {shown}: cannot import {excerpt(target, 80)}"):
        if target.endswith(".py"):
            path = Path(target)
            if not is_file(path):
                raise ModelSpecError(f"model spec {shown}: file {excerpt(target, 80)} does not exist")
            mod_name = f"a3bench_user_{abs(hash(str(path.resolve())))}"
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelSpecError(f"model spec {shown}: {excerpt(target, 80)} has no callable {factory_name!r}")
    with _user_code(f"model spec {shown}: {factory_name}() failed"):
        model = factory()
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model spec {shown}: {factory_name}() returned {type(model).__name__}, not an nn.Module")
    return model


def _robustbench_weights_present(name: str, dataset: str, norm: str, model_dir: str) -> bool:
    """Whether RobustBench's load_model would find the weights on disk instead of downloading
    them: ``<dir>/<dataset>/<norm>/<name>.pt``, or ``<name>.pt_m0.pt`` … for its ensembles."""
    folder = Path(model_dir) / dataset / norm
    return (folder / f"{name}.pt").is_file() or (folder / f"{name}.pt_m0.pt").is_file()


@contextlib.contextmanager
def _user_code(context: str):
    """Run a user's code: any exception it raises becomes one ModelSpecError line."""
    try:
        yield
    except ModelSpecError:
        raise
    except SystemExit as e:
        raise ModelSpecError(f"{context}: it called sys.exit({excerpt(e.code, 40)})") from None
    except BaseException as e:  # noqa: BLE001 - a user's module may raise anything, even KeyboardInterrupt
        detail = one_line(e, 160)
        kind = type(e).__name__
        raise ModelSpecError(f"{context}: {kind}" + ("" if detail == kind else f": {detail}")) from None


def _load_robustbench(name: str, dataset: str, norm: str, model_dir: str | None) -> nn.Module:
    from a3bench.data import OFFLINE_ENV

    model_dir = model_dir or os.environ.get("A3BENCH_ROBUSTBENCH_DIR") or str(Path.home() / ".cache" / "a3bench" / "robustbench")
    if os.environ.get(OFFLINE_ENV) and not _robustbench_weights_present(name, dataset, norm, model_dir):
        raise ModelSpecError(
            f"robustbench:{name} ({dataset}, {norm}): {OFFLINE_ENV} is set and its weights are not on disk "
            f"(expected {Path(model_dir) / dataset / norm / (name + '.pt')}; or unset {OFFLINE_ENV} to download them)"
        )

    from a3bench._compat import import_robustbench

    import_robustbench()  # the alias must exist before robustbench imports autoattack
    from robustbench.utils import load_model as rb_load_model

    try:
        return rb_load_model(model_name=name, model_dir=model_dir, dataset=dataset, threat_model=norm)
    except Exception as e:
        raise ModelSpecError(
            f"robustbench:{name} ({dataset}, {norm}) could not be loaded: {one_line(e, 160)} "
            f"(its weights need the network, or a local copy under {model_dir}/{dataset}/{norm}/{name}.pt)"
        ) from None


def _exists(spec: str) -> bool:
    try:
        return Path(spec).exists()
    except (OSError, ValueError):  # a name too long for the file system is no file
        return False


def _looks_like_path(spec: str) -> bool:
    return spec.endswith((".pt", ".pth", ".ckpt")) or os.sep in spec or _exists(spec)


def load_model(
    spec: str | None = None,
    *,
    dataset: str | None = None,
    norm: str = "Linf",
    device: str | torch.device = "cpu",
    robustbench_dir: str | None = None,
) -> LoadedModel:
    spec = spec or DEFAULT_MODEL
    if spec.startswith(ENSEMBLE_PREFIX):
        return _load_ensemble(spec, dataset=dataset, norm=norm, device=device, robustbench_dir=robustbench_dir)
    if spec.startswith("robustbench:"):
        name = spec.split(":", 1)[1]
        rb_dataset = dataset or "cifar10"
        model = _load_robustbench(name, rb_dataset, norm, robustbench_dir)
        return LoadedModel(model.to(device).eval(), name=name, source="robustbench", dataset=rb_dataset)
    zp = zoo_path(spec)
    if zp is not None:
        ck = load_checkpoint(zp, device)
        return LoadedModel(ck.model, name=spec, source="zoo", dataset=ck.meta.get("dataset"), meta=ck.meta, card=zoo_card(spec), path=str(zp))
    if ":" in spec and not _exists(spec):
        model = _load_factory(spec)
        name = spec.rpartition(":")[2]
        return LoadedModel(model.to(device).eval(), name=name, source="factory", dataset=dataset)
    if _looks_like_path(spec):
        ck = load_checkpoint(spec, device)
        name = Path(spec).stem if Path(spec).stem != "model" else Path(spec).parent.name
        return LoadedModel(ck.model, name=name, source="checkpoint", dataset=ck.meta.get("dataset"), meta=ck.meta, path=str(spec))
    zoo = ", ".join(list_zoo()) or "none found"
    raise ModelSpecError(
        f"cannot resolve model {excerpt(spec, 120)}: not a model-zoo name (available: {zoo}), a checkpoint path, "
        f"'file.py:factory', 'package.module:factory', 'robustbench:NAME' or 'ensemble:SPEC1,SPEC2,...'"
    )


# --------------------------------------------------------------------------- ensemble:SPEC1,SPEC2,...

ENSEMBLE_PREFIX = "ensemble:"
ENSEMBLE_OPTIONS = ("agg", "k")


@dataclass
class EnsembleSpec:
    members: list[str]
    aggregation: str = "crossmax"
    k: int | None = None  # None: min(3, number of members)


def parse_ensemble_spec(spec: str) -> EnsembleSpec:
    """``ensemble:SPEC1,SPEC2,...[:agg=crossmax|median|mean][:k=N]`` -> its parts.

    Options are trailing ``:name=value`` segments; a member spec can hold ':' itself
    (``file.py:factory``, ``robustbench:NAME``) but never '=' after its last ':'.
    """
    from a3bench.models.crossmax import AGGREGATIONS

    body = spec[len(ENSEMBLE_PREFIX):]
    options: dict[str, str] = {}
    while True:
        head, sep, tail = body.rpartition(":")
        if not sep or "=" not in tail or "," in tail:
            break
        key, _, value = tail.partition("=")
        if key not in ENSEMBLE_OPTIONS:
            raise ModelSpecError(f"model spec {spec!r}: unknown ensemble option {key!r} (valid: {', '.join(ENSEMBLE_OPTIONS)})")
        if key in options:
            raise ModelSpecError(f"model spec {spec!r}: ensemble option {key!r} given twice")
        options[key] = value
        body = head
    members = [m.strip() for m in body.split(",")]
    if not body.strip() or any(not m for m in members):
        raise ModelSpecError(f"model spec {spec!r}: write ensemble:SPEC1,SPEC2,... with no empty member")
    if len(members) < 2:
        raise ModelSpecError(f"model spec {spec!r}: an ensemble needs at least two members")
    if any(m.startswith(ENSEMBLE_PREFIX) for m in members):
        raise ModelSpecError(f"model spec {spec!r}: nested ensembles are not supported")
    agg = options.get("agg", "crossmax")
    if agg not in AGGREGATIONS:
        raise ModelSpecError(f"model spec {spec!r}: agg must be one of {', '.join(AGGREGATIONS)}, got {agg!r}")
    k = None
    if "k" in options:
        # ASCII digits only: "²".isdigit() is true, and int("²") raises
        if not (options["k"].isascii() and options["k"].isdigit()) or not 1 <= int(options["k"]) <= len(members):
            raise ModelSpecError(f"model spec {spec!r}: k must be an integer in 1..{len(members)} (the number of members), got {options['k']!r}")
        k = int(options["k"])
    return EnsembleSpec(members=members, aggregation=agg, k=k)


def _load_ensemble(spec: str, *, dataset, norm, device, robustbench_dir) -> LoadedModel:
    from a3bench.errors import A3BenchError
    from a3bench.models.crossmax import ModelEnsemble

    parsed = parse_ensemble_spec(spec)
    loaded = []
    for i, member in enumerate(parsed.members, 1):
        try:
            loaded.append(load_model(member, dataset=dataset, norm=norm, device=device, robustbench_dir=robustbench_dir))
        except A3BenchError as e:
            raise ModelSpecError(f"ensemble member {i} ({member}): {one_line(e, 200)}") from None
    datasets = sorted({m.dataset for m in loaded if m.dataset})
    if len(datasets) > 1:
        raise ModelSpecError(f"model spec {spec!r}: members were trained on different datasets ({', '.join(datasets)})")
    shapes = sorted({tuple(s) for s in (getattr(m.model, "input_shape", None) for m in loaded) if s is not None})
    if len(shapes) > 1:
        raise ModelSpecError(f"model spec {spec!r}: members take different input shapes {shapes}")
    names = [m.name for m in loaded]
    try:
        model = ModelEnsemble([m.model for m in loaded], names, parsed.aggregation, parsed.k)
    except A3BenchError as e:
        raise ModelSpecError(f"model spec {spec!r}: {one_line(e, 200)}") from None
    meta = {
        "architecture": f"ensemble({parsed.aggregation}, k={model.k})",
        "dataset": datasets[0] if datasets else dataset,
        "ensemble": {
            "aggregation": parsed.aggregation,
            "k": model.k,
            "members": [{"spec": s, "name": m.name, "source": m.source, "architecture": m.meta.get("architecture")}
                        for s, m in zip(parsed.members, loaded)],
        },
    }
    return LoadedModel(
        model.to(device).eval(),
        name=f"ensemble-{parsed.aggregation}-" + "+".join(names),
        source="ensemble",
        dataset=meta["dataset"],
        meta=meta,
    )
