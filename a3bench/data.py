"""Datasets as uint8 tensors, found on disk in a fixed order, with deterministic subsets.

Every dataset is an :class:`ImageDataset`: ``images`` (uint8, N×C×H×W, kept uint8 so the
60k Fashion-MNIST training set costs 47 MB, not 188 MB) and ``labels`` (int64). Models
receive float32 pixels in [0, 1] from :meth:`ImageDataset.tensors` /
:meth:`ImageDataset.batches`; normalisation (``DatasetInfo.mean/std``) belongs to the model.

Names (see :data:`DATASETS`)::

    fmnist, mnist        IDX files (.gz or raw), also torchvision's <dir>/FashionMNIST/raw
    cifar10, cifar100    python-pickle batches, or the official .tar.gz next to them
    synthetic[:CxHxW]    small, generated, deterministic, learnable (for tests)
    imagefolder:PATH     PATH/{train,test|val}/<class>/*.png|jpg, or PATH/<class>/* (test)

File-based datasets are looked up in :func:`search_paths` order: ``data_dir`` (the CLI's
``--data-dir``), ``$A3BENCH_DATA``, the user cache (:func:`data_cache_dir`), then
``/usr/share/datasets/<debian-name>``. Each folder counts with the files directly in it
or in a per-dataset subfolder (``fashion-mnist/``, ``cifar-10-batches-py/``, ...). When
nothing is found, the official files are downloaded into the cache unless
``A3BENCH_OFFLINE`` is set. Data files are untrusted: pickles go through an allow-list
unpickler and archives are checked member by member. Every failure a user can cause is a
:class:`~a3bench.errors.DataError` with one readable line.

>>> ds = load_dataset("fmnist", "test").first(1000)
>>> x, y = ds.tensors()          # x: 1000×1×28×28 float32 in [0, 1]
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import operator
import os
import pickle
import re
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from a3bench.errors import DataError, excerpt, one_line
from a3bench.limits import MAX_CLASSES, MAX_DATA_BYTES, MAX_IMAGE_PIXELS, MAX_SIDE

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ImageDataset",
    "canonical_name",
    "data_cache_dir",
    "dataset_info",
    "load_dataset",
    "search_paths",
]

DATASETS: tuple[str, ...] = ("fmnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder:PATH")
SPLITS: tuple[str, ...] = ("train", "test")

# Where distributions install datasets (Debian: apt-get install dataset-fashion-mnist).
# Module-level so tests can point it at an empty folder.
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
DATA_ENV = "A3BENCH_DATA"
OFFLINE_ENV = "A3BENCH_OFFLINE"
DOWNLOAD_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- types


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


# --------------------------------------------------------------------------- tables

_FMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table",
    "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class _Source:
    """How to find, fetch and parse one file-based dataset."""

    info: DatasetInfo
    title: str  # for messages: "Fashion-MNIST"
    kind: Literal["idx", "cifar"]
    debian_name: str  # folder under SYSTEM_DATA_ROOT
    subdirs: tuple[str, ...]  # per-dataset subfolders accepted inside every root; [0] is the download target
    files: dict[str, tuple[str, ...]]  # split -> files (IDX: stems, '.gz' optional)
    install_hint: str
    download_url: str  # IDX: base URL of the files; CIFAR: the archive
    download_md5: dict[str, str] = field(default_factory=dict)  # file name -> md5 (skipped when absent)
    archive: str | None = None  # CIFAR: the official tarball's name
    label_key: str = "labels"  # CIFAR: key of the labels in each batch


def _idx_hint(title: str) -> str:
    return f"put the {title} IDX files (t10k-images-idx3-ubyte.gz, ...) in one of those folders, or pass --data-dir"


_SOURCES: dict[str, _Source] = {
    "fmnist": _Source(
        info=DatasetInfo("fmnist", 10, (1, 28, 28), (0.2860,), (0.3530,), _FMNIST_CLASSES),
        title="Fashion-MNIST",
        kind="idx",
        debian_name="fashion-mnist",
        subdirs=("fashion-mnist", "fmnist", "fashion_mnist", "FashionMNIST/raw"),
        files=_IDX_FILES,
        install_hint="Install it with 'apt-get install dataset-fashion-mnist', or " + _idx_hint("Fashion-MNIST"),
        download_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        download_md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "mnist": _Source(
        info=DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), tuple(str(d) for d in range(10))),
        title="MNIST",
        kind="idx",
        debian_name="mnist",
        subdirs=("mnist", "MNIST/raw"),
        files=_IDX_FILES,
        install_hint=_idx_hint("MNIST")[0].upper() + _idx_hint("MNIST")[1:],
        download_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        download_md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "cifar10": _Source(
        info=DatasetInfo(
            "cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), _CIFAR10_CLASSES
        ),
        title="CIFAR-10",
        kind="cifar",
        debian_name="cifar-10",
        subdirs=("cifar-10-batches-py", "cifar10", "cifar-10"),
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        install_hint="Place 'cifar-10-batches-py/' from the official tarball "
        "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) in one of those folders, or pass --data-dir",
        download_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        download_md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        archive="cifar-10-python.tar.gz",
    ),
    "cifar100": _Source(
        info=DatasetInfo(
            "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100_CLASSES
        ),
        title="CIFAR-100",
        kind="cifar",
        debian_name="cifar-100",
        subdirs=("cifar-100-python", "cifar100", "cifar-100"),
        files={"train": ("train",), "test": ("test",)},
        install_hint="Place 'cifar-100-python/' from the official tarball "
        "(https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz) in one of those folders, or pass --data-dir",
        download_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        download_md5={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
        archive="cifar-100-python.tar.gz",
        label_key="fine_labels",
    ),
}

# Spellings accepted for each name, compared after lower-casing and dropping '-' and '_'.
_ALIASES = {
    "fmnist": "fmnist",
    "fashionmnist": "fmnist",
    "mnist": "mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "synthetic": "synthetic",
}

_SYNTH_DEFAULT_SHAPE = (1, 28, 28)


# --------------------------------------------------------------------------- names and paths


def _error(message: str) -> DataError:
    """A DataError whose message is guaranteed to be one line."""
    return DataError(one_line(message, limit=2000))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise _error(f"unknown split {excerpt(split)}; valid: {', '.join(SPLITS)}")
    return split


def _parse_synthetic_shape(spec: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*", spec.lower())
    if not m:
        raise _error(f"synthetic shape must look like CxHxW (e.g. synthetic:3x32x32), got {excerpt(spec)}")
    c, h, w = (int(g) for g in m.groups())
    if c not in (1, 3) or not (4 <= h <= 512 and 4 <= w <= 512):
        raise _error(f"synthetic shape {c}x{h}x{w} unsupported: C must be 1 or 3, H and W between 4 and 512")
    return c, h, w


def canonical_name(name: str) -> str:
    """The canonical spelling of a dataset name, or a DataError listing the valid ones.

    ``"Fashion-MNIST"``, ``"fashion_mnist"`` -> ``"fmnist"``; ``"cifar-10"`` -> ``"cifar10"``;
    ``"imagefolder:PATH"`` keeps PATH as given; ``"synthetic:3x32x32"`` is kept (the
    default ``synthetic:1x28x28`` becomes ``"synthetic"``).
    """
    if not isinstance(name, str) or not name.strip():
        raise _error(f"dataset name must be a non-empty string; valid: {', '.join(DATASETS)}")
    name = name.strip()
    prefix, sep, rest = name.partition(":")
    key = re.sub(r"[-_\s]", "", prefix.lower())
    if sep and key == "imagefolder":
        if not rest.strip():
            raise _error("imagefolder needs a folder: imagefolder:PATH")
        return f"imagefolder:{rest.strip()}"
    canon = _ALIASES.get(key)
    if canon == "synthetic" and sep:
        shape = _parse_synthetic_shape(rest)
        return "synthetic" if shape == _SYNTH_DEFAULT_SHAPE else "synthetic:{}x{}x{}".format(*shape)
    if canon is None or sep:
        raise _error(f"unknown dataset {excerpt(name)}; valid: {', '.join(DATASETS)} (or synthetic:CxHxW)")
    return canon


def data_cache_dir() -> Path:
    """The user cache for datasets: ``$XDG_CACHE_HOME/a3bench/data`` or ``~/.cache/a3bench/data``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are to be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "a3bench" / "data"


def search_paths(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for ``name``, in order; the first that has the files wins.

    For fmnist/mnist/cifar10/cifar100: ``data_dir``, ``$A3BENCH_DATA``, the user cache,
    ``SYSTEM_DATA_ROOT/<debian-name>``. Inside each, the files may also sit in a
    per-dataset subfolder (e.g. ``fashion-mnist/``, ``FashionMNIST/raw/``,
    ``cifar-10-batches-py/``). imagefolder: its own folder; synthetic: none.
    """
    canon = canonical_name(name)
    if canon.startswith("imagefolder:"):
        return [Path(canon.partition(":")[2]).expanduser()]
    if canon.startswith("synthetic"):
        return []
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(data_cache_dir())
    roots.append(SYSTEM_DATA_ROOT / _SOURCES[canon].debian_name)
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


# --------------------------------------------------------------------------- public entry points


def dataset_info(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` without loading the images.

    imagefolder looks at the folder (class names, first image's shape); the others are
    constants. ``data_dir`` is accepted for symmetry with :func:`load_dataset`.
    """
    canon = canonical_name(name)
    if canon.startswith("imagefolder:"):
        return _scan_imagefolder(canon).info
    if canon.startswith("synthetic"):
        return _synthetic_info(canon)
    return _SOURCES[canon].info


def load_dataset(
    name: str,
    split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> ImageDataset:
    """Load one split ("train" or "test") of a dataset into memory.

    File-based datasets are searched in :func:`search_paths` order; if none has them and
    ``download`` is true and ``$A3BENCH_OFFLINE`` is unset, the official files are
    downloaded into :func:`data_cache_dir`. Raises :class:`DataError` (one line) when
    the data cannot be found, downloaded or parsed.
    """
    canon = canonical_name(name)
    _check_split(split)
    if canon.startswith("imagefolder:"):
        return _load_imagefolder(canon, split)
    if canon.startswith("synthetic"):
        return _load_synthetic(canon, split)

    source = _SOURCES[canon]
    roots = search_paths(canon, data_dir)
    folder = _locate(source, split, roots)
    if folder is None:
        if not download:
            why = "download disabled"
        elif os.environ.get(OFFLINE_ENV):
            why = f"download skipped: {OFFLINE_ENV} is set"
        else:
            try:
                folder = _download(source, split)
                why = ""
            except DataError as exc:
                why = f"download failed: {exc}"
        if folder is None:
            searched = ", ".join(str(r) + ("" if r.is_dir() else " (missing)") for r in roots)
            raise _error(
                f"{source.title} {split} split not found (searched: {searched}; {why}). {source.install_hint}."
            )
    if source.kind == "idx":
        return _load_idx_split(source, folder, split)
    return _load_cifar_split(source, folder, split)


# --------------------------------------------------------------------------- locating files


def _candidate_folders(source: _Source, root: Path) -> list[Path]:
    return [root, *(root / sub for sub in source.subdirs)]


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _has_split(source: _Source, folder: Path, split: str) -> bool:
    if source.kind == "idx":
        return all(_idx_path(folder, stem) is not None for stem in source.files[split])
    return all((folder / f).is_file() for f in source.files[split])


def _locate(source: _Source, split: str, roots: list[Path]) -> Path | None:
    """The first folder holding the split, extracting a CIFAR tarball found on the way."""
    for root in roots:
        folders = [f for f in _candidate_folders(source, root) if f.is_dir()]
        for folder in folders:
            if _has_split(source, folder, split):
                return folder
        if source.archive:
            for folder in folders:
                archive = folder / source.archive
                if archive.is_file():
                    return _extract_found_archive(source, archive, split)
    return None


# --------------------------------------------------------------------------- archives and downloads


def _archive_top(source: _Source) -> str:
    return source.subdirs[0]  # cifar-10-batches-py / cifar-100-python: the tarball's top folder


def _extract_found_archive(source: _Source, archive: Path, split: str) -> Path:
    """Extract a user's tarball into the cache, keyed by its path, size and mtime (done once)."""
    st = archive.stat()
    key = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    parent = data_cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{key}"
    folder = parent / _archive_top(source)
    if not _has_split(source, folder, split):
        _extract_tar(archive, _archive_top(source), parent)
    if not _has_split(source, folder, split):
        raise _error(f"{archive} does not contain {_archive_top(source)}/{source.files[split][0]}")
    return folder


def _extract_tar(archive: Path, top: str, dest_parent: Path) -> None:
    """Extract ``top/`` from ``archive`` to ``dest_parent/top`` atomically, refusing unsafe members."""
    dest_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members, total = [], 0
            for m in tar:  # one header at a time: a bomb is refused before it is expanded
                parts = Path(m.name).parts
                # Archives are untrusted: only plain files and folders under the expected top.
                if m.name.startswith("/") or ".." in parts or not parts or parts[0] != top:
                    raise _error(f"{archive}: unexpected member {excerpt(m.name)}; is this the official tarball?")
                if not (m.isfile() or m.isdir()):
                    raise _error(f"{archive}: member {excerpt(m.name)} is not a regular file")
                total += m.size
                if total > MAX_DATA_BYTES or len(members) >= 10_000:
                    raise _error(f"{archive} holds more than {MAX_DATA_BYTES} bytes or 10000 files; is this the official tarball?")
                members.append(m)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters; members were checked above
                tar.extractall(tmp, members=members)
        target = dest_parent / top
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / top, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _error(f"cannot extract {archive}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch(url: str, dest: Path, md5: str | None) -> None:
    """Download ``url`` to ``dest`` via a temp file, so a failure leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise _error(f"{url} has MD5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _error(f"{url}: {reason}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _download(source: _Source, split: str) -> Path:
    """Fetch the official files into the user cache; return the folder holding the split."""
    cache = data_cache_dir()
    folder = cache / source.subdirs[0]
    if source.kind == "idx":
        for stem in source.files[split]:
            fname = f"{stem}.gz"
            _fetch(source.download_url + fname, folder / fname, source.download_md5.get(fname))
    else:
        assert source.archive is not None
        archive = cache / source.archive
        _fetch(source.download_url, archive, source.download_md5.get(source.archive))
        try:
            _extract_tar(archive, _archive_top(source), cache)
        finally:
            archive.unlink(missing_ok=True)  # the extracted folder is what later runs find
    if not _has_split(source, folder, split):
        raise _error(f"downloaded files do not contain the {split} split in {folder}")
    return folder


# --------------------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

_IDX_UBYTE = 0x08


def _read_idx(path: Path, ndim: int, shape: tuple[int, ...] = (), count: tuple[int, Path] | None = None) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not) with ``ndim`` dimensions.

    The header's sizes are checked before the body is read: their product must stay
    under :data:`~a3bench.limits.MAX_DATA_BYTES`, the trailing dimensions must equal
    ``shape`` and the first the ``count`` of items in another file when given, and the body is read (decompressed) up to exactly the declared
    size plus one byte, so a small gzip cannot expand to gigabytes first.
    """
    try:
        with path.open("rb") as raw_file:
            gzipped = raw_file.read(2) == b"\x1f\x8b"  # by content, not by name: a mislabelled file still works
        with (gzip.open(path, "rb") if gzipped else path.open("rb")) as f:
            header = f.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise _error(f"{path} is truncated ({len(header)} bytes, shorter than an IDX header)")
            magic = struct.unpack(">I", header[:4])[0]
            if magic != (_IDX_UBYTE << 8 | ndim):
                raise _error(
                    f"{path} is not an IDX file of {ndim}-D unsigned bytes "
                    f"(magic number 0x{magic:08x}, expected 0x{_IDX_UBYTE << 8 | ndim:08x})"
                )
            dims = struct.unpack(f">{ndim}I", header[4:])
            if shape and tuple(dims[1:]) != tuple(shape):
                raise _error(f"{path} holds {'x'.join(map(str, dims[1:]))} items, expected {'x'.join(map(str, shape))}")
            if count is not None and dims[0] != count[0]:
                raise _error(f"{path} has {dims[0]} images but {count[1]} has {count[0]} labels")
            expected = math.prod(dims)  # Python ints: no overflow
            if expected > MAX_DATA_BYTES:
                raise _error(f"{path}: header says {dims}, i.e. {expected} bytes; a3bench reads IDX files up to {MAX_DATA_BYTES} bytes")
            body = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise _error(f"cannot read {path}: {exc}") from exc
    if len(body) != expected:
        state = "truncated" if len(body) < expected else "longer than its header says"
        found = str(len(body)) if len(body) <= expected else "more"
        raise _error(f"{path} is {state}: header says {dims}, i.e. {expected} bytes, found {found}")
    # Copy: frombuffer over bytes is read-only, and torch wants writable memory.
    return np.frombuffer(body, dtype=np.uint8, count=expected).reshape(dims).copy()


def _load_idx_split(source: _Source, folder: Path, split: str) -> ImageDataset:
    images_stem, labels_stem = source.files[split]
    images_path, labels_path = _idx_path(folder, images_stem), _idx_path(folder, labels_stem)
    assert images_path is not None and labels_path is not None  # _locate checked
    c, h, w = source.info.input_shape
    labels = _read_idx(labels_path, 1)
    images = _read_idx(images_path, 3, shape=(h, w), count=(len(labels), labels_path))
    if len(images) != len(labels):
        raise _error(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    _check_labels(labels, source.info.num_classes, labels_path)
    return ImageDataset(
        torch.from_numpy(images).reshape(-1, c, h, w),
        torch.from_numpy(labels.astype(np.int64)),
        source.info,
    )


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _error(f"{path} has labels outside 0..{num_classes - 1}")


# --------------------------------------------------------------------------- CIFAR pickles


def _numpy_attr(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` (numpy 2) or ``numpy.core.<module>.<name>`` (numpy 1)."""
    import importlib

    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")  # pragma: no cover


def _pickle_allow_list() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle may reference: numpy array/dtype reconstruction."""
    reconstruct = _numpy_attr("multiarray", "_reconstruct")
    frombuffer = _numpy_attr("numeric", "_frombuffer")
    import _codecs

    def guarded_reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
        # numpy pickles an array as an empty placeholder, _reconstruct(ndarray, (0,), b'b'),
        # and its bytes in __setstate__ (checked against the shape). A placeholder shape
        # could claim any memory: only empty ones are allowed.
        empty = isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape) and math.prod(shape) == 0
        if subtype is not _NDARRAY or not empty:
            raise pickle.UnpicklingError(f"array placeholder of shape {excerpt(shape, 40)} (numpy writes empty ones)")
        return reconstruct(np.ndarray, shape, dtype)

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,  # usable only as _reconstruct's first argument, never called
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _codecs.encode,
    }
    for prefix in ("numpy.core", "numpy._core"):
        allowed[(f"{prefix}.multiarray", "_reconstruct")] = guarded_reconstruct
        allowed[(f"{prefix}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` inside a CIFAR pickle: calling the class directly would
    allocate whatever shape the pickle names."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals: data files are untrusted."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _pickle_allow_list()
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _error(f"cannot read {path}: {exc}") from exc
    if size > MAX_DATA_BYTES:
        raise _error(f"{path} is {size} bytes; a3bench reads CIFAR batches up to {MAX_DATA_BYTES} bytes")
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official files are Python 2 pickles with str keys.
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise _error(f"refusing to load {path}: {exc} (only plain data and numpy arrays are allowed)") from exc
    except Exception as exc:  # noqa: BLE001 - a malformed pickle can fail in any way; all are data errors
        raise _error(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise _error(f"{path} does not hold a CIFAR batch (a dict), found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _load_cifar_split(source: _Source, folder: Path, split: str) -> ImageDataset:
    c, h, w = source.info.input_shape
    all_images: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    for fname in source.files[split]:
        path = folder / fname
        batch = _unpickle(path)
        data, labels = batch.get("data"), batch.get(source.label_key)
        if not isinstance(data, np.ndarray) or labels is None:
            raise _error(f"{path} lacks 'data' (a numpy array) or '{source.label_key}'")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != c * h * w:
            raise _error(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {c * h * w})")
        try:
            labels_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _error(f"{path}: '{source.label_key}' are not integers") from exc
        if len(labels_arr) != len(data):
            raise _error(f"{path} has {len(data)} images but {len(labels_arr)} labels")
        _check_labels(labels_arr, source.info.num_classes, path)
        all_images.append(data.reshape(-1, c, h, w))
        all_labels.append(labels_arr)
    images = np.ascontiguousarray(np.concatenate(all_images))
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(np.concatenate(all_labels)), source.info)


# --------------------------------------------------------------------------- image folders

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


@dataclass(frozen=True)
class _FolderScan:
    info: DatasetInfo
    split_dirs: dict[str, Path]
    mode: str  # "L" or "RGB": every image is converted to the first image's mode
    size: tuple[int, int]  # (W, H) as PIL reports it


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)


def _class_names(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_imagefolder(canon: str) -> _FolderScan:
    """Find the splits, classes (union over splits, sorted) and the reference image of a folder."""
    root = Path(canon.partition(":")[2]).expanduser()
    try:
        return _scan_imagefolder_at(root, canon)
    except OSError as exc:  # a path too long, a folder we may not list ...
        raise _error(f"cannot read image folder {excerpt(str(root), 200)}: {exc.strerror or exc}") from exc


def _open_image(path: Path, expected_size: tuple[int, int] | None = None):
    """Open an image lazily (header only) and refuse, before any pixel is decoded, one whose
    declared size is over :data:`~a3bench.limits.MAX_SIDE` (a decompression bomb) or differs
    from ``expected_size``. Any failure of the decoder on a hostile file is a DataError."""
    from PIL import Image

    try:
        im = Image.open(path)
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds of errors on malformed files
        raise _error(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    w, h = im.size
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE and w * h <= MAX_IMAGE_PIXELS):
        im.close()
        raise _error(f"image {path} declares {w}x{h} pixels; a3bench reads images up to {MAX_SIDE}x{MAX_SIDE}")
    if expected_size is not None and im.size != expected_size:
        im.close()
        raise _error(
            f"image {path} is {w}x{h}, but the first image is "
            f"{expected_size[0]}x{expected_size[1]}; all images must share a size"
        )
    return im


def _scan_imagefolder_at(root: Path, canon: str) -> _FolderScan:
    if not root.is_dir():
        raise _error(f"image folder {root} does not exist")
    split_dirs: dict[str, Path] = {}
    if (root / "train").is_dir():
        split_dirs["train"] = root / "train"
    for name in ("test", "val"):
        if (root / name).is_dir():
            split_dirs["test"] = root / name
            break
    if not split_dirs:
        split_dirs["test"] = root  # a flat PATH/<class>/* folder is a test set
    classes = sorted({c for d in split_dirs.values() for c in _class_names(d)})
    if not classes:
        raise _error(f"image folder {root} has no class subfolders (expected {root}/<class>/*.png)")
    if len(classes) > MAX_CLASSES:
        raise _error(f"image folder {root} has {len(classes)} class folders; a3bench handles up to {MAX_CLASSES}")
    # The reference image: first file of the test split (or train), classes in order.
    ref: Path | None = None
    for split in ("test", "train"):
        if split in split_dirs:
            for cls in classes:
                class_dir = split_dirs[split] / cls
                files = _image_files(class_dir) if class_dir.is_dir() else []
                if files:
                    ref = files[0]
                    break
        if ref is not None:
            break
    if ref is None:
        raise _error(f"image folder {root} has no images (.png, .jpg, .jpeg, .bmp)")
    with _open_image(ref) as im:
        mode = "L" if im.mode in _GRAY_MODES else "RGB"
        size = im.size
    channels = 1 if mode == "L" else 3
    info = DatasetInfo(
        name=canon,
        num_classes=len(classes),
        input_shape=(channels, size[1], size[0]),
        mean=(0.5,) * channels,
        std=(0.5,) * channels,
        classes=tuple(classes),
    )
    return _FolderScan(info, split_dirs, mode, size)


def _load_imagefolder(canon: str, split: str) -> ImageDataset:
    """Load ``PATH/<split>/<class>/*`` as uint8 images.

    Classes are sorted alphabetically (union over splits, so labels agree between
    splits). Every image is converted to the mode of the first image (L or RGB) and
    must have its size. Normalisation is mean = std = 0.5 per channel, i.e. [-1, 1]:
    no statistics are computed, so the same folder always gives the same info.
    """
    scan = _scan_imagefolder(canon)
    root = Path(canon.partition(":")[2]).expanduser()
    if split not in scan.split_dirs:
        raise _error(f"image folder {root} has no {split} split (expected {root}/{split}/<class>/...)")
    split_dir = scan.split_dirs[split]
    try:
        files = [(label, path) for label, cls in enumerate(scan.info.classes) if (split_dir / cls).is_dir()
                 for path in _image_files(split_dir / cls)]
    except OSError as exc:
        raise _error(f"cannot read image folder {split_dir}: {exc.strerror or exc}") from exc
    c, h, w = scan.info.input_shape
    if len(files) * c * h * w > MAX_DATA_BYTES:  # decoded size, known before decoding anything
        raise _error(f"image folder {split_dir}: {len(files)} images of {c}x{h}x{w} exceed {MAX_DATA_BYTES} bytes in memory")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, path in files:
        with _open_image(path, scan.size) as im:
            try:
                arr = np.asarray(im.convert(scan.mode), dtype=np.uint8)
            except Exception as exc:  # noqa: BLE001 - a decoder fails in many ways on a hostile file
                raise _error(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        labels.append(label)
    if not images:
        raise _error(f"image folder {split_dir} has no images in its class subfolders")
    return ImageDataset(
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels, dtype=torch.int64),
        scan.info,
    )


# --------------------------------------------------------------------------- synthetic

_SYNTH_SEED = 0xA3BE
_SYNTH_SIZES = {"train": 2000, "test": 500}
_SYNTH_CLASSES = 10
_SYNTH_CONTRAST = 0.3  # templates span 0.5 ± 0.15
_SYNTH_NOISE = 0.35  # per-pixel Gaussian noise std


def _synthetic_shape(canon: str) -> tuple[int, int, int]:
    _, sep, spec = canon.partition(":")
    return _parse_synthetic_shape(spec) if sep else _SYNTH_DEFAULT_SHAPE


def _synthetic_info(canon: str) -> DatasetInfo:
    c, h, w = _synthetic_shape(canon)
    return DatasetInfo(
        name=canon,
        num_classes=_SYNTH_CLASSES,
        input_shape=(c, h, w),
        mean=(0.5,) * c,
        std=(0.5,) * c,
        classes=tuple(f"class_{i}" for i in range(_SYNTH_CLASSES)),
    )


def _load_synthetic(canon: str, split: str) -> ImageDataset:
    """Each class is a fixed smooth random template; examples add brightness jitter and noise.

    Everything comes from fixed-seed ``torch.Generator``s, so the same call gives
    identical tensors; train and test share templates but not noise.
    """
    c, h, w = _synthetic_shape(canon)
    gen = torch.Generator().manual_seed(_SYNTH_SEED)
    coarse = 0.5 + _SYNTH_CONTRAST * (torch.rand(_SYNTH_CLASSES, c, 4, 4, generator=gen) - 0.5)
    # Low-frequency templates: learnable by a linear model (about 95 % test accuracy),
    # yet low-contrast, so that small perturbations can flip predictions.
    templates = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    n = _SYNTH_SIZES[split]
    gen = torch.Generator().manual_seed(_SYNTH_SEED + (1 if split == "train" else 2))
    labels = (torch.arange(n) % _SYNTH_CLASSES)[torch.randperm(n, generator=gen)]  # balanced, shuffled
    brightness = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 0.4
    noise = torch.randn(n, c, h, w, generator=gen) * _SYNTH_NOISE
    x = (templates[labels] + brightness + noise).clamp_(0.0, 1.0)
    images = x.mul_(255.0).round_().to(torch.uint8)
    return ImageDataset(images, labels.to(torch.int64), _synthetic_info(canon))
