"""Model registry in the spirit of timm: ``register_model`` / ``create_model`` / ``list_models``.

Architecture names (``smallcnn``) are kept apart from trained weights
(``smallcnn.a3_joint_fmnist`` in the model zoo, see :mod:`a3bench.models.zoo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from a3bench.errors import ModelSpecError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    input_size: int
    in_channels: int


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, input_size: int, in_channels: int) -> Callable:
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, factory, input_size, in_channels)
        return factory

    return decorate


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelSpecError(f"unknown architecture {name!r} (valid: {', '.join(list_models())})") from None


def create_model(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | None = None,
    a3=None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    options: Mapping[str, Any] | None = None,
):
    """Build ``name`` wrapped in a :class:`Classifier` that takes [0,1] pixels.

    ``a3`` is an :class:`A3Config` (A3 layers at its placement) or None (plain backbone).
    ``options`` are the architecture's own keyword arguments (a ViT's width and depth ...),
    stored in checkpoints as ``meta.arch_options``; an unknown one is a ConfigError.
    """
    from a3bench.models.wrapper import Classifier

    entry = model_entry(name)
    in_channels = entry.in_channels if in_channels is None else in_channels
    input_size = entry.input_size if input_size is None else input_size
    backbone = build_backbone(name, num_classes=num_classes, in_channels=in_channels, input_size=input_size, a3=a3, options=options)
    # An architecture that fills in defaults from the input (CrossMax's resolutions ...) says
    # what it resolved them to: the checkpoint then rebuilds the same model even if defaults change.
    options = dict(getattr(backbone, "resolved_options", None) or options or {})
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    return Classifier(
        backbone,
        mean=mean,
        std=std,
        arch=name,
        num_classes=num_classes,
        input_shape=(in_channels, input_size, input_size),
        options=options,
    )


def build_backbone(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    input_size: int,
    a3=None,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The bare network of architecture ``name`` on normalised inputs (no wrapper).

    ``options`` are checked against the factory's keyword arguments first, so a typo is
    one ConfigError line naming the valid ones.
    """
    from a3bench.errors import ConfigError

    entry = model_entry(name)
    options = dict(options or {})
    accepted = _keyword_names(entry.factory)
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(map(str, unknown))} for architecture {name} (valid: {valid})")
    return entry.factory(num_classes=num_classes, in_channels=in_channels, input_size=input_size, a3=a3, **options)


_BUILTIN_ARGS = {"num_classes", "in_channels", "input_size", "a3"}


def _keyword_names(factory: Callable) -> set[str]:
    """The architecture options a factory accepts: its keyword parameters beyond the built-in four."""
    import inspect

    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - _BUILTIN_ARGS
