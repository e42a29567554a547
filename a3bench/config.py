"""Typed training configs: YAML in, dotted overrides (``--set train.epochs=3``), unknown keys
rejected with the list of valid ones. Every error is a one-line :class:`ConfigError`."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from a3bench.errors import ConfigError
from a3bench.models.a3 import A3Config

METHODS = ("standard", "pgd-at", "trades")
OBJECTIVES = ("joint", "attenuate-only", "none")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "cosine", "step")


@dataclass
class ModelConfig:
    arch: str = "smallcnn"
    a3: A3Config = field(default_factory=A3Config)
    options: dict[str, Any] = field(default_factory=dict)  # the architecture's own arguments (a ViT's dim, depth ...)


@dataclass
class AttackConfig:
    """The training-time attack (PGD-k against the attenuated model)."""

    norm: str = "Linf"
    eps: float = 0.1
    steps: int = 7
    step_size: float | None = None  # default 2.5·eps/steps


@dataclass
class ObjectiveConfig:
    """DESIGN §2: L = L_base + α·InfoNCE + β·ranking(μ); T is the InfoNCE temperature."""

    name: str = "joint"
    alpha: float = 0.1
    beta: float = 0.1
    margin: float = 1.0
    temperature: float = 0.5


@dataclass
class TrainConfig:
    method: str = "pgd-at"
    epochs: int = 3
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    trades_beta: float = 6.0
    grad_clip: float | None = 5.0  # max global gradient norm (None: no clipping)
    n_train: int | None = None  # first N training examples (None: all)
    max_steps: int | None = None  # stop after this many optimizer steps (smoke tests)
    # AAS-AT (Jain & Dutta 2024, supplement Alg. 1): every k epochs the attention scales are
    # re-found by the AAS search on aas_examples training examples and the model's are
    # re-initialised with them (pgd-at and trades; models with attention layers). None: off.
    aas_every: int | None = None
    aas_examples: int = 512


@dataclass
class EvalConfig:
    """Held-out monitoring each epoch: clean and PGD-k accuracy on a fixed subset."""

    n_examples: int = 1000
    pgd_steps: int = 20
    batch_size: int = 500


@dataclass
class Config:
    dataset: str = "fmnist"
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "Config":
        checks = [
            (self.train.method in METHODS, f"train.method must be one of {', '.join(METHODS)}"),
            (self.objective.name in OBJECTIVES, f"objective.name must be one of {', '.join(OBJECTIVES)}"),
            (self.train.optimizer in OPTIMIZERS, f"train.optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.train.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}"),
            (self.train.epochs >= 1, "train.epochs must be ≥ 1"),
            (self.train.batch_size >= 1, "train.batch_size must be ≥ 1"),
            (self.train.lr > 0, "train.lr must be > 0"),
            (self.attack.steps >= 1, "attack.steps must be ≥ 1"),
            (self.attack.eps >= 0, "attack.eps must be ≥ 0"),
            (self.objective.temperature > 0, "objective.temperature must be > 0"),
            (self.eval.n_examples >= 1, "eval.n_examples must be ≥ 1"),
            (self.train.aas_every is None or self.train.aas_every >= 1, "train.aas_every must be ≥ 1 (or null: off)"),
            (self.train.aas_examples >= 1, "train.aas_examples must be ≥ 1"),
            (self.train.aas_every is None or self.train.method in ("pgd-at", "trades"), "train.aas_every needs train.method pgd-at or trades"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device must be auto, cpu or cuda"),
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
        raise ConfigError(f"{where}: {value!r} is not a valid {' or '.join(_type_name(a) for a in args)}")
    if tp is A3Config:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
        return A3Config.from_dict({k: v for k, v in value.items()})
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: expected a mapping with string keys, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            from a3bench.threat import parse_eps  # accepts 8/255 as well as 0.1

            try:
                return parse_eps(value)
            except Exception:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + str(k) for k in unknown)} (valid: {', '.join(prefix + n for n in names)})")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
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
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ConfigError(f"{p} is not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
    data = apply_overrides(data, overrides or [])
    return config_from_dict(data)


def config_from_dict(data: dict) -> Config:
    return _build(Config, data, "").validate()
