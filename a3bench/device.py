"""``--device auto|cpu|cuda|cuda:N`` → a torch.device; under torchrun each rank takes its own GPU."""

from __future__ import annotations

import os

import torch

from a3bench.errors import DeviceError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` (or None) picks CUDA when present; a sharded run on CUDA uses ``cuda:LOCAL_RANK``."""
    if device is None or str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r} (valid: auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but no CUDA device is available")
        if dev.index is None:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r} (valid: auto, cpu, cuda, cuda:N)")
    return dev
