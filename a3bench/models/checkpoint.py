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
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from a3bench.errors import CheckpointError, excerpt, one_line
from a3bench.io import atomic_write_bytes, is_file
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
OPTIONAL_META = {
    "a3": dict,
    "arch_options": dict,
    "dataset": str,
    "train": dict,
    "metrics": dict,
    "a3bench_version": str,
    "classes": list,  # class names in label order (what the training data's labels meant)
}
METRIC_NUMBERS = ("clean_acc", "pgd_acc", "eps", "pgd_steps", "n_examples", "epochs")


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
    """Read and validate the container and its metadata; no model is built yet."""
    path = Path(path)
    if not is_file(path):
        raise CheckpointError(f"checkpoint {one_line(str(path), 200)} does not exist")
    _check_archive(path)
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
        raise CheckpointError(f"{path} has checkpoint format version {excerpt(payload.get('format_version'), 30)}; this a3bench reads {FORMAT_VERSION}")
    meta, state = payload.get("meta"), payload.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{path} lacks 'meta' or 'state_dict'")
    check_meta(meta, str(path))
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict holds non-tensor values")
    for key, tensor in state.items():
        # A view can claim any size over a few stored bytes (stride 0): refuse what is not stored.
        if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
            raise CheckpointError(f"{path}: state_dict[{excerpt(key, 60)}] claims more data than the file stores for it")
    return payload


def _check_archive(path: Path) -> None:
    """torch.save's format is a zip archive of *stored* (uncompressed) entries: checked from
    its directory before loading, so a compressed entry cannot expand to gigabytes."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
        if magic[:2] != b"PK":
            raise CheckpointError(f"{path} is not a PyTorch checkpoint (not the zip archive torch.save writes)")
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or damaged zip archive): {one_line(e, 120)}") from None
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED or entry.file_size > size:
            raise CheckpointError(f"{path}: entry {excerpt(entry.filename, 60)} is compressed or larger than the file; torch.save writes neither")


def check_meta(meta: dict, source: str) -> None:
    """A checkpoint's metadata is untrusted: plain, bounded data, every field of the right type
    and within :mod:`a3bench.limits`, checked before a model is built from it."""
    from a3bench.limits import MAX_CHANNELS, MAX_CLASSES, MAX_SIDE, check_count, check_number, check_plain

    check_plain(meta, f"{source}: meta", CheckpointError)
    for key, typ in REQUIRED_META.items():
        if not isinstance(meta.get(key), typ):
            raise CheckpointError(f"{source}: meta.{key} missing or not a {typ.__name__}")
    if meta["architecture"] not in list_models():
        raise CheckpointError(f"{source}: unknown architecture {excerpt(meta['architecture'])} (valid: {', '.join(list_models())})")
    check_count(meta["num_classes"], f"{source}: meta.num_classes", 1, MAX_CLASSES, CheckpointError)
    shape = meta["input_shape"]
    if len(shape) != 3:
        raise CheckpointError(f"{source}: meta.input_shape must be [C, H, W], got {excerpt(shape)}")
    check_count(shape[0], f"{source}: meta.input_shape channels", 1, MAX_CHANNELS, CheckpointError)
    for side in shape[1:]:
        check_count(side, f"{source}: meta.input_shape side", 1, MAX_SIDE, CheckpointError)
    for key in ("mean", "std"):
        if len(meta[key]) != shape[0]:
            raise CheckpointError(f"{source}: meta.{key} has {len(meta[key])} values for {shape[0]} input channel(s)")
    for key, typ in OPTIONAL_META.items():
        if meta.get(key) is not None and not isinstance(meta[key], typ):
            raise CheckpointError(f"{source}: meta.{key} must be a {typ.__name__}, got {excerpt(meta[key])}")
    classes = meta.get("classes")
    if classes is not None:
        if len(classes) != meta["num_classes"] or not all(isinstance(c, str) and 0 < len(c) <= 200 for c in classes):
            raise CheckpointError(f"{source}: meta.classes must name each of the {meta['num_classes']} classes in a short string, "
                                  f"got {excerpt(classes)}")
    metrics = meta.get("metrics") or {}
    for key in METRIC_NUMBERS:  # read by commands (the default eps) and shown in tables
        if metrics.get(key) is not None:
            check_number(metrics[key], f"{source}: meta.metrics.{key}", CheckpointError)
    if metrics.get("eps") is not None and metrics["eps"] < 0:
        raise CheckpointError(f"{source}: meta.metrics.eps must be ≥ 0, got {metrics['eps']}")
    if metrics.get("norm") is not None and not isinstance(metrics["norm"], str):
        raise CheckpointError(f"{source}: meta.metrics.norm must be a str, got {excerpt(metrics['norm'])}")


def build_from_meta(meta: dict, source: str = "checkpoint", device: str | None = None):
    """The model a checkpoint's metadata describes, freshly initialised (``device="meta"``:
    its skeleton, no memory). Metadata that no model fits is a CheckpointError naming ``source``."""
    try:
        a3 = A3Config.from_dict(meta["a3"]) if meta.get("a3") else None
        c, h, w = meta["input_shape"]
        if h != w:
            raise CheckpointError(f"{source}: meta.input_shape must be square, got {excerpt(meta['input_shape'])}")
        return create_model(
            meta["architecture"],
            num_classes=meta["num_classes"],
            in_channels=c,
            input_size=h,
            a3=a3,
            mean=meta["mean"],
            std=meta["std"],
            options=meta.get("arch_options") or {},
            device=device,
        )
    except CheckpointError:
        raise
    except Exception as e:  # any malformed field: the file, not a3bench, is at fault
        raise CheckpointError(f"{source}: cannot build its model from its metadata: {one_line(e, 160)}") from None


def _check_shapes(skeleton, state: dict, source: str, arch: str) -> None:
    """The weights must fit the model the metadata describes, compared before the model is
    allocated: metadata declaring 12 million classes over a 10-class file is refused here."""
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing {excerpt(missing)}" if missing else f"unexpected {excerpt(unexpected)}"
        raise CheckpointError(f"{source}: state dict does not match architecture {arch!r} built from its metadata: {what}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{source}: state dict does not match architecture {arch!r} built from its metadata: "
                f"{excerpt(key, 60)} is {list(state[key].shape)} in the file, {list(shape)} from the metadata"
            )


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    payload = read_checkpoint(path)
    meta, state = payload["meta"], payload["state_dict"]
    _check_shapes(build_from_meta(meta, source=str(path), device="meta"), state, str(path), meta["architecture"])
    model = build_from_meta(meta, source=str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: state dict does not match architecture {meta['architecture']!r}: {one_line(e, 200)}") from None
    model.to(device).eval()
    return LoadedCheckpoint(model=model, meta=meta, train_state=payload.get("train_state"))
