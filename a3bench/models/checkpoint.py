"""Checkpoint I/O. A checkpoint is untrusted input: it is read with ``weights_only=True``,
so a pickle that would run code is refused, and every field is validated before use.

Layout (plain containers and tensors only)::

    {"format": "a3bench-checkpoint", "format_version": 1,
     "state_dict": {...}, "meta": {...}, "train_state": {...} | absent}
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from a3bench.errors import CheckpointError, one_line
from a3bench.io import atomic_write_bytes
from a3bench.models.a3 import A3Config
from a3bench.models.registry import create_model, list_models

FORMAT = "a3bench-checkpoint"
FORMAT_VERSION = 1
REQUIRED_META = {
    "architecture": str,
    "num_classes": int,
    "input_shape": list,
    "mean": list,
    "std": list,
}


def model_meta(model, **extra: Any) -> dict:
    """The architecture half of a checkpoint's metadata, read off a Classifier."""
    a3 = model.a3_config
    return {
        "architecture": model.arch,
        "num_classes": int(model.num_classes),
        "input_shape": [int(s) for s in model.input_shape],
        "mean": [float(v) for v in model.mean.flatten().tolist()],
        "std": [float(v) for v in model.std.flatten().tolist()],
        "a3": a3.to_dict() if a3 is not None else None,
        "arch_options": dict(getattr(model, "arch_options", {}) or {}),
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, model, meta: dict, train_state: dict | None = None) -> None:
    from a3bench import __version__

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": {**model_meta(model), **meta, "a3bench_version": __version__},
    }
    if train_state is not None:
        payload["train_state"] = train_state
    atomic_write_bytes(path, lambda f: torch.save(payload, f))


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    meta: dict
    train_state: dict | None = field(default=None)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read and validate the container; no model is built yet."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes are noise here
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data "
            f"(loading it could run code): {one_line(e, 160)}"
        ) from None
    except Exception as e:  # weights_only: nothing ran; any other failure means a damaged or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or another format): {one_line(e, 160)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an a3bench checkpoint (no 'format: {FORMAT}' header)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('format_version')!r}; this a3bench reads {FORMAT_VERSION}")
    meta, state = payload.get("meta"), payload.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} lacks 'meta' or 'state_dict'")
    for key, typ in REQUIRED_META.items():
        if not isinstance(meta.get(key), typ):
            raise CheckpointError(f"{path}: meta.{key} missing or not a {typ.__name__}")
    if meta["architecture"] not in list_models():
        raise CheckpointError(f"{path}: unknown architecture {meta['architecture']!r} (valid: {', '.join(list_models())})")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict holds non-tensor values")
    return payload


def build_from_meta(meta: dict, source: str = "checkpoint"):
    try:
        a3 = A3Config.from_dict(meta["a3"]) if meta.get("a3") else None
        c, h, w = meta["input_shape"]
        options = meta.get("arch_options") or {}
        if not isinstance(options, dict):
            raise CheckpointError(f"{source}: meta.arch_options must be a mapping")
        return create_model(
            meta["architecture"],
            num_classes=meta["num_classes"],
            in_channels=int(c),
            input_size=int(h),
            a3=a3,
            mean=meta["mean"],
            std=meta["std"],
            options=options,
        )
    except CheckpointError:
        raise
    except Exception as e:  # any malformed field: the file, not a3bench, is at fault
        raise CheckpointError(f"{source}: cannot build its model from its metadata: {one_line(e, 160)}") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    payload = read_checkpoint(path)
    meta = payload["meta"]
    model = build_from_meta(meta, source=str(path))
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: state dict does not match architecture {meta['architecture']!r}: {one_line(e, 200)}") from None
    model.to(device).eval()
    return LoadedCheckpoint(model=model, meta=meta, train_state=payload.get("train_state"))
