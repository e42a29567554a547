"""Model registry in the spirit of timm: ``register_model`` / ``create_model`` / ``list_models``.

Architecture names (``smallcnn``) are kept apart from trained weights
(``smallcnn.a3_joint_fmnist`` in the model zoo, see :mod:`a3bench.models.zoo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from a3bench.errors import ModelSpecError, excerpt


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
        raise ModelSpecError(f"unknown architecture {excerpt(name)} (valid: {', '.join(list_models())})") from None


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
    device: str | None = None,
):
    """Build ``name`` wrapped in a :class:`Classifier` that takes [0,1] pixels.

    ``a3`` is an :class:`A3Config` (A3 layers at its placement) or None (plain backbone).
    ``options`` are the architecture's own keyword arguments (a ViT's width and depth ...),
    stored in checkpoints as ``meta.arch_options``; an unknown one is a ConfigError.
    Every size is checked against :mod:`a3bench.limits`, and the model is first built on
    PyTorch's ``meta`` device (no memory) to count its parameters: a model too large to
    hold is refused before anything is allocated. ``device="meta"`` returns that skeleton.
    """
    from a3bench.errors import ConfigError
    from a3bench.limits import MAX_CHANNELS, MAX_CLASSES, MAX_PARAMETERS, MAX_SIDE, check_count

    entry = model_entry(name)
    in_channels = entry.in_channels if in_channels is None else in_channels
    input_size = entry.input_size if input_size is None else input_size
    check_count(num_classes, "num_classes", 1, MAX_CLASSES, ConfigError)
    check_count(in_channels, "input channels", 1, MAX_CHANNELS, ConfigError)
    check_count(input_size, "input size", 1, MAX_SIDE, ConfigError)
    options = _checked_options(entry, options)
    mean = _per_channel(mean, "mean", in_channels, positive=False)
    std = _per_channel(std, "std", in_channels, positive=True)
    args = dict(num_classes=num_classes, in_channels=in_channels, input_size=input_size, a3=a3, mean=mean, std=std, options=options)
    skeleton = _build(entry, "meta", **args)
    n_params = sum(p.numel() for p in skeleton.parameters())
    if n_params > MAX_PARAMETERS:
        raise ConfigError(f"{name} with these sizes would have {n_params:,} parameters; a3bench builds models up to {MAX_PARAMETERS:,}")
    if device == "meta":
        return skeleton
    return _build(entry, device, **args)


def _build(entry: ModelEntry, device: str | None, *, num_classes, in_channels, input_size, a3, mean, std, options):
    import torch

    from a3bench.errors import A3BenchError, ConfigError, one_line
    from a3bench.models.wrapper import Classifier

    try:
        with torch.device(device) if device is not None else _no_context():
            backbone = build_backbone(entry.name, num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                                      a3=a3, options=options)
            # An architecture that fills in defaults from the input (CrossMax's resolutions ...) says
            # what it resolved them to: the checkpoint then rebuilds the same model even if defaults change.
            resolved = dict(getattr(backbone, "resolved_options", None) or options or {})
            return Classifier(
                backbone,
                mean=mean,
                std=std,
                arch=entry.name,
                num_classes=num_classes,
                input_shape=(in_channels, input_size, input_size),
                options=resolved,
            )
    except A3BenchError:
        raise
    except Exception as e:  # noqa: BLE001 - options that the architecture cannot take (heads ∤ dim ...)
        raise ConfigError(f"cannot build {entry.name} from these options: {type(e).__name__}: {one_line(e, 160)}") from None


def _no_context():
    import contextlib

    return contextlib.nullcontext()


def _per_channel(values: Sequence[float] | None, what: str, channels: int, *, positive: bool) -> tuple[float, ...]:
    """Normalisation ``mean``/``std``: one finite number per channel (std > 0)."""
    from a3bench.errors import ConfigError, excerpt
    from a3bench.limits import check_number

    if values is None:
        return (0.5,) * channels
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != channels:
        raise ConfigError(f"{what} must hold {channels} number(s), one per input channel, got {excerpt(values)}")
    numbers = tuple(check_number(v, what, ConfigError) for v in values)
    if positive and not all(v > 0 for v in numbers):
        raise ConfigError(f"{what} must be > 0, got {excerpt(list(numbers))}")
    return numbers


def _checked_options(entry: ModelEntry, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Architecture options, each of the type of the factory's default: an integer option is a
    size (1..MAX_OPTION), a float one finite; anything else a config or checkpoint holds is refused."""
    import inspect

    from a3bench.errors import ConfigError, excerpt
    from a3bench.limits import MAX_OPTION, check_count, check_number, check_plain

    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"options of architecture {entry.name} must be a mapping, got {excerpt(options)}")
    params = {p.name: p for p in inspect.signature(entry.factory).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _BUILTIN_ARGS}
    unknown = sorted(k if isinstance(k, str) and len(k) <= 40 and k.isprintable() else excerpt(k, 40) for k in options if k not in params)
    if unknown:
        valid = ", ".join(sorted(params)) or "none"
        raise ConfigError(f"unknown option(s) {', '.join(unknown[:10])} for architecture {entry.name} (valid: {valid})")
    checked = {}
    for key, value in options.items():
        default, where = params[key].default, f"option {key} of {entry.name}"
        if isinstance(value, (list, tuple, dict)) and (default is None or isinstance(default, (list, tuple, dict, str))):
            check_plain(value, where, ConfigError, max_nodes=10_000)  # bounded plain data (CrossMax's resolutions ...)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {excerpt(value)}")
        elif isinstance(default, int):
            value = check_count(value, where, 1, MAX_OPTION, ConfigError)
        elif isinstance(default, float):
            value = check_number(value, where, ConfigError)
        elif isinstance(default, str):
            if not isinstance(value, str) or len(value) > 200:
                raise ConfigError(f"{where} must be a short string, got {excerpt(value)}")
        elif not (value is None or isinstance(value, (bool, int, float, str))):
            raise ConfigError(f"{where} must be a number, a string, a list, a mapping or null, got {excerpt(value)}")
        checked[key] = value
    return checked


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
    entry = model_entry(name)
    options = _checked_options(entry, options)
    return entry.factory(num_classes=num_classes, in_channels=in_channels, input_size=input_size, a3=a3, **options)


_BUILTIN_ARGS = {"num_classes", "in_channels", "input_size", "a3"}
