"""Models: the A3 layer, backbones, the registry, checkpoints, the zoo and SPEC loading."""

from a3bench.models import backbones  # noqa: F401  (registers the architectures below)
from a3bench.models import crossmax  # noqa: F401  (registers the crossmax architecture)
from a3bench.models.a3 import A3, A3Config, A3Mode, a3_layers, a3_mode, a3_strength_scales, a3_summary, has_a3
from a3bench.models.checkpoint import load_checkpoint, save_checkpoint
from a3bench.models.crossmax import (
    aggregation,
    crossmax_info,
    fixed_randomness,
    is_crossmax,
    is_randomized,
    predictor_logits,
    single_predictor,
)
from a3bench.models.registry import create_model, list_models, register_model
from a3bench.models.spec import LoadedModel, load_model
from a3bench.models.wrapper import Classifier
from a3bench.models.zoo import DEFAULT_MODEL, list_zoo

__all__ = [
    "aggregation",
    "crossmax_info",
    "fixed_randomness",
    "is_crossmax",
    "is_randomized",
    "predictor_logits",
    "single_predictor",
    "A3",
    "A3Config",
    "A3Mode",
    "Classifier",
    "DEFAULT_MODEL",
    "LoadedModel",
    "a3_layers",
    "a3_mode",
    "a3_strength_scales",
    "a3_summary",
    "create_model",
    "has_a3",
    "list_models",
    "list_zoo",
    "load_checkpoint",
    "load_model",
    "register_model",
    "save_checkpoint",
]
