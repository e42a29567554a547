"""What every dataset source produces: :class:`DatasetInfo` and :class:`ImageDataset`
(uint8 images in memory, deterministic subsets, seeded batches), and the one-line error."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from a3bench.errors import DataError, excerpt, one_line

SPLITS: tuple[str, ...] = ("train", "test")


def data_error(message: str) -> DataError:
    """A DataError whose message is guaranteed to be one line."""
    return DataError(one_line(message, limit=2000))


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise data_error(f"unknown split {excerpt(split)}; valid: {', '.join(SPLITS)}")
    return split


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset: classes, input shape, normalisation."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]


@dataclass(repr=False)
class ImageDataset:
    """A split held in memory: images N×C×H×W (uint8, or float32 in [0, 1] when given as tensors), int64 labels N, and its info."""

    images: torch.Tensor
    labels: torch.Tensor
    info: DatasetInfo
    # Positions of these examples in the full split: results and per-example seeds key on
    # them, so a subset's outcome for an example equals the full run's (resume, eps cascades).
    positions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.positions is None:
            self.positions = torch.arange(len(self.labels), dtype=torch.int64)
        elif len(self.positions) != len(self.labels):
            raise DataError(f"{len(self.positions)} positions for {len(self.labels)} examples")
        if self.images.dtype not in (torch.uint8, torch.float32) or self.images.dim() != 4:
            shape = tuple(self.images.shape)
            raise DataError(f"images must be a uint8 (or float32 in [0, 1]) NxCxHxW tensor, got {self.images.dtype} {shape}")
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise DataError(f"labels must be an int64 vector, got {self.labels.dtype} {tuple(self.labels.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:  # the default would print the tensors
        return f"ImageDataset(name={self.info.name!r}, n={len(self)}, shape={tuple(self.images.shape[1:])})"

    def first(self, n: int | None) -> ImageDataset:
        """The first ``n`` examples (RobustBench's deterministic test subset).

        ``None`` or ``n >= len(self)`` gives all of them; ``n <= 0`` is a DataError.
        """
        if n is None:
            return ImageDataset(self.images, self.labels, self.info, self.positions)
        n = _as_int(n, "number of examples")
        if n <= 0:
            raise DataError(f"number of examples must be positive, got {n}")
        return ImageDataset(self.images[:n], self.labels[:n], self.info, self.positions[:n])

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> ImageDataset:
        """The examples at ``indices`` (integer positions, or a boolean mask of length N)."""
        idx = torch.as_tensor(indices)
        if idx.numel() == 0:
            idx = idx.to(torch.int64)
        if idx.dtype == torch.bool:
            if idx.shape != self.labels.shape:
                raise DataError(f"boolean mask has shape {tuple(idx.shape)}, dataset has {len(self)} examples")
            idx = idx.nonzero().flatten()
        elif idx.is_floating_point() or idx.is_complex():
            raise DataError(f"subset indices must be integers, got {idx.dtype}")
        idx = idx.flatten().to(torch.int64)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise DataError(f"subset index out of range for a dataset of {len(self)} examples")
        return ImageDataset(self.images[idx], self.labels[idx], self.info, self.positions[idx])

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """All examples as (float32 images in [0, 1], int64 labels) on ``device``."""
        if self.images.dtype == torch.float32:  # given as [0, 1] pixels (a3bench.benchmark on tensors)
            return self.images.to(device).clone(), self.labels.to(device)
        # Move uint8 first: a quarter of the bytes to transfer.
        x = self.images.to(device).to(torch.float32).div_(255.0)
        return x, self.labels.to(device)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        device: str | torch.device = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 images in [0, 1], labels) batches covering each example once.

        With ``shuffle`` the order is a permutation drawn from a ``torch.Generator``
        seeded with ``seed`` (``None`` means 0, never the clock): the same seed gives the
        same order. Pass e.g. ``seed=base_seed + epoch`` for a new order each epoch. The
        last batch may be smaller.
        """
        batch_size = _as_int(batch_size, "batch size")
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        n = len(self)
        order: torch.Tensor | None = None
        if shuffle:
            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
            order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            if order is None:
                xb, yb = self.images[start : start + batch_size], self.labels[start : start + batch_size]
            else:
                sel = order[start : start + batch_size]
                xb, yb = self.images[sel], self.labels[sel]
            if xb.dtype == torch.float32:
                yield xb.to(device).clone(), yb.to(device)
            else:
                yield xb.to(device).to(torch.float32).div_(255.0), yb.to(device)


def _as_int(value: object, what: str) -> int:
    """``value`` as an int (numpy integers too); bools and floats are refused."""
    if isinstance(value, bool):
        raise DataError(f"{what} must be an integer, got {excerpt(value)}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{what} must be an integer, got {excerpt(value)}") from None


def check_labels(labels: np.ndarray, num_classes: int, path: object) -> None:
    """Every label of a file in 0..num_classes-1 (files are untrusted)."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise data_error(f"{path} has labels outside 0..{num_classes - 1}")
