"""Typed training configs: YAML in, dotted overrides (``--set train.epochs=3``), unknown keys
rejected with the list of valid ones. Every error is a one-line :class:`ConfigError`.

Every number carries its valid range in its field (:func:`_in_range`), checked when the
config is built, before any work starts: a batch size of 0 or a NaN learning rate is
refused at once, not after an epoch. Floats must be finite; integers have an upper
bound too, so a huge value cannot overflow a generator or a tensor index later.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3bench.errors import ConfigError, excerpt, one_line
from a3bench.io import is_file
from a3bench.limits import MAX_SEED, check_number, load_yaml, read_yaml
from a3bench.models.a3 import A3Config

METHODS = ("standard", "pgd-at", "fgsm", "trades")
OBJECTIVES = ("joint", "attenuate-only", "none")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "cosine", "step")
MAX_INT = 2**31 - 1  # counts (epochs, steps, examples): beyond it a value is a typo or an attack


def _in_range(default: Any, low: float | None = None, high: float | None = None, *, above: bool = False):
    """A numeric config field valid in [low, high] (``above``: strictly greater than low)."""
    return field(default=default, metadata={"range": (low, high, above)})


def _positive(default: Any):
    return _in_range(default, 0, above=True)


def _non_negative(default: Any):
    return _in_range(default, 0)


def _count(default: Any):
    return _in_range(default, 1, MAX_INT)


@dataclass
class ModelConfig:
    arch: str = "smallcnn"
    a3: A3Config = field(default_factory=A3Config)
    options: dict[str, Any] = field(default_factory=dict)  # the architecture's own arguments (a ViT's dim, depth ...)


@dataclass
class AttackConfig:
    """The training-time attack (PGD-k against the attenuated model; one step for fgsm)."""

    norm: str = "Linf"
    eps: float = _non_negative(0.1)
    steps: int = _count(7)  # PGD-AT and TRADES; fgsm always takes one step
    step_size: float | None = _positive(None)  # default 2.5·eps/steps (PGD), 1.25·eps (fgsm, Wong et al. 2020)


@dataclass
class ObjectiveConfig:
    """docs/architecture.md#the-a3-module: L = L_base + α·InfoNCE + β·ranking(μ); T is the InfoNCE temperature."""

    name: str = "joint"
    alpha: float = _non_negative(0.1)
    beta: float = _non_negative(0.1)
    margin: float = _non_negative(1.0)
    temperature: float = _positive(0.5)


@dataclass
class TrainConfig:
    method: str = "pgd-at"
    epochs: int = _count(3)
    batch_size: int = _count(128)
    optimizer: str = "sgd"
    lr: float = _positive(0.05)
    momentum: float = _in_range(0.9, 0, 1)
    weight_decay: float = _non_negative(5e-4)
    schedule: str = "cosine"
    trades_beta: float = _non_negative(6.0)
    grad_clip: float | None = _positive(5.0)  # max global gradient norm (None: no clipping)
    n_train: int | None = _count(None)  # first N training examples (None: all)
    max_steps: int | None = _count(None)  # stop after this many optimizer steps (smoke tests)
    # AAS-AT (Jain & Dutta 2024, supplement Alg. 1): every k epochs the attention scales are
    # re-found by the AAS search on aas_examples training examples and the model's are
    # re-initialised with them (pgd-at and trades; models with attention layers). None: off.
    aas_every: int | None = _count(None)
    aas_examples: int = _count(512)


@dataclass
class HeadsConfig:
    """Second phase, for models with heads (``crossmax``): after ``train`` has trained the
    backbone (its own classifier on multi-resolution inputs), the heads learn with
    cross-entropy on the frozen backbone. ``epochs: 0`` for every other model."""

    epochs: int = _in_range(0, 0, MAX_INT)
    batch_size: int = _count(128)
    optimizer: str = "adam"
    lr: float = _positive(0.001)
    momentum: float = _in_range(0.9, 0, 1)
    weight_decay: float = _non_negative(0.0)
    schedule: str = "cosine"
    grad_clip: float | None = _positive(None)
    max_steps: int | None = _count(None)  # stop the phase after this many optimizer steps (smoke tests)


@dataclass
class EvalConfig:
    """Held-out monitoring each epoch: clean and PGD-k accuracy on a fixed subset."""

    n_examples: int = _count(1000)
    pgd_steps: int = _count(20)
    batch_size: int = _count(500)


@dataclass
class Config:
    dataset: str = "fmnist"
    data_dir: str | None = None
    seed: int = _in_range(0, 0, MAX_SEED)
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "Config":
        checks = [
            (self.train.method in METHODS, f"train.method must be one of {', '.join(METHODS)}"),
            (self.objective.name in OBJECTIVES, f"objective.name must be one of {', '.join(OBJECTIVES)}"),
            (self.train.optimizer in OPTIMIZERS, f"train.optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.train.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}"),
            (re.fullmatch(r"auto|cpu|cuda(:\d{1,3})?", self.device) is not None, "device must be auto, cpu, cuda or cuda:N"),
            (self.heads.optimizer in OPTIMIZERS, f"heads.optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.heads.schedule in SCHEDULES, f"heads.schedule must be one of {', '.join(SCHEDULES)}"),
            (self.train.aas_every is None or self.train.method in ("pgd-at", "trades"), "train.aas_every needs train.method pgd-at or trades"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.objective.name == "joint" and self.train.method == "standard":
            raise ConfigError("objective 'joint' needs adversarial examples: use train.method pgd-at or trades")
        from a3bench.errors import AttackError
        from a3bench.threat import parse_norm

        try:
            parse_norm(self.attack.norm)
        except AttackError as e:
            raise ConfigError(f"attack.norm: {e}") from None
        return self

    @property
    def uses_a3(self) -> bool:
        return self.objective.name != "none"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"]["a3"] = self.model.a3.to_dict()
        return d


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {excerpt(value)} is not a valid {' or '.join(_type_name(a) for a in args)}")
    if tp is A3Config:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {excerpt(value)}")
        # its numbers are read as every config number is: "1e-2" (a string to YAML) and 8/255 too
        floats = {f.name for f in dataclasses.fields(A3Config) if f.type in (float, "float")}
        return A3Config.from_dict({k: _number_text(v) if k in floats else v for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping with string keys, got {excerpt(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {excerpt(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {excerpt(value)}")
    if tp is float:
        if isinstance(value, str):
            from a3bench.threat import parse_eps  # accepts 8/255 as well as 0.1

            try:
                value = parse_eps(value)
            except Exception:  # noqa: BLE001 - not a number: said below
                raise ConfigError(f"{where}: expected a number, got {excerpt(value)}") from None
        return check_number(value, where, ConfigError)  # finite: no NaN or infinite learning rate
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {excerpt(value)}")
    return value


def _number_text(value: Any) -> Any:
    """A string that reads as a number (``1e-2``, ``8/255``) as that number; anything else
    as it is, for its field to refuse in its own words."""
    if not isinstance(value, str):
        return value
    from a3bench.threat import parse_eps

    try:
        return parse_eps(value)
    except Exception:  # noqa: BLE001 - not a number: the field says so
        return value


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{where}." if where else ""
    unknown = sorted(k if isinstance(k, str) and len(k) <= 40 and k.isprintable() else excerpt(k, 40) for k in data if k not in names)
    if unknown:
        shown = ", ".join(prefix + k for k in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise ConfigError(f"unknown config key(s) {shown} (valid: {', '.join(prefix + n for n in names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            key = f"{where}.{f.name}" if where else f.name
            kwargs[f.name] = _check_range(_coerce(data[f.name], hints[f.name], key), f, key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _check_range(value: Any, f: dataclasses.Field, where: str) -> Any:
    if value is None or "range" not in f.metadata:
        return value
    low, high, above = f.metadata["range"]
    if low is not None and (value <= low if above else value < low):
        raise ConfigError(f"{where} must be {'>' if above else '≥'} {low}, got {excerpt(value, 30)}")
    if high is not None and value > high:
        raise ConfigError(f"{where} must be ≤ {high}, got {excerpt(value, 30)}")
    return value


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {excerpt(item)} must look like key.sub=value")
    key, raw = item.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {excerpt(item)} has an empty key")
    # A value that is not YAML is taken as plain text; one that is, within the bounds.
    value = load_yaml(raw, f"--set {excerpt(key.strip(), 40)}", ConfigError, text_if_invalid=True) if raw.strip() else None
    return path, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for item in overrides or []:
        path, value = _parse_override(item)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {excerpt(item)}: {excerpt(part, 40)} is not a section")
            node = child
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not is_file(p) and not _special(p):  # a FIFO or device is refused by read_yaml, with its own line
            raise ConfigError(f"config file {one_line(str(p), 200)} does not exist")
        data = read_yaml(p, ConfigError) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    data = apply_overrides(data, overrides or [])
    return config_from_dict(data)


def _special(path: Path) -> bool:
    try:
        return path.exists() and not path.is_dir()
    except (OSError, ValueError):
        return False


def config_from_dict(data: dict) -> Config:
    return _build(Config, data, "").validate()
