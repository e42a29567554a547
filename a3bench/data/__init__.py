"""Datasets as uint8 tensors, found on disk in a fixed order, with deterministic subsets.

Every dataset is an :class:`ImageDataset`: ``images`` (uint8, N×C×H×W, kept uint8 so the
60k Fashion-MNIST training set costs 47 MB, not 188 MB) and ``labels`` (int64). Models
receive float32 pixels in [0, 1] from :meth:`ImageDataset.tensors` /
:meth:`ImageDataset.batches`; normalisation (``DatasetInfo.mean/std``) belongs to the model.

Names (see :data:`DATASETS`), each a registered :class:`~a3bench.data.registry.DatasetSource`::

    fmnist, mnist        IDX files (.gz or raw), also torchvision's <dir>/FashionMNIST/raw   (idx.py)
    cifar10, cifar100    python-pickle batches, or the official .tar.gz next to them         (cifar.py)
    synthetic[:CxHxW]    small, generated, deterministic, learnable (for tests)              (synthetic.py)
    imagefolder:PATH     PATH/{train,test|val}/<class>/*.png|jpg, or PATH/<class>/* (test);  (imagefolder.py)
                         labels follow the sorted class-folder names

File-based datasets are looked up in :func:`search_paths` order (:mod:`a3bench.data.locate`):
``data_dir`` (the CLI's ``--data-dir``), ``$A3BENCH_DATA``, the user cache
(:func:`data_cache_dir`), then ``/usr/share/datasets/<debian-name>``, and downloaded into
the cache when nothing is found unless ``A3BENCH_OFFLINE`` is set. Data files are
untrusted: pickles go through an allow-list unpickler and archives are checked member by
member. Every failure a user can cause is a :class:`~a3bench.errors.DataError` with one
readable line. A new source: docs/architecture.md#extending.

>>> ds = load_dataset("fmnist", "test").first(1000)
>>> x, y = ds.tensors()          # x: 1000×1×28×28 float32 in [0, 1]
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

# isort: off  (each module registers its sources; this order is the order names are listed in)
from a3bench.data import idx, cifar, synthetic, imagefolder  # noqa: F401
# isort: on
from a3bench.data.base import SPLITS, DatasetInfo, ImageDataset, check_split, data_error
# SYSTEM_DATA_ROOT is read from a3bench.data.locate at each lookup: point that one elsewhere, not this copy.
from a3bench.data.locate import DATA_ENV, OFFLINE_ENV, SYSTEM_DATA_ROOT, data_cache_dir
from a3bench.data.registry import SOURCES, DatasetSource, find_source, register_source, source_of
from a3bench.errors import excerpt

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "OFFLINE_ENV",
    "SOURCES",
    "SPLITS",
    "SYSTEM_DATA_ROOT",
    "DatasetInfo",
    "DatasetSource",
    "ImageDataset",
    "canonical_name",
    "class_order_mismatch",
    "data_cache_dir",
    "dataset_info",
    "label_order",
    "load_dataset",
    "register_source",
    "search_paths",
]

DATASETS: tuple[str, ...] = tuple(s.usage or s.name for s in SOURCES.values())


def _valid() -> str:
    variants = [s.variants for s in SOURCES.values() if s.variants]
    return ", ".join(s.usage or s.name for s in SOURCES.values()) + (f" (or {', '.join(variants)})" if variants else "")


def canonical_name(name: str) -> str:
    """The canonical spelling of a dataset name, or a DataError listing the valid ones.

    ``"Fashion-MNIST"``, ``"fashion_mnist"`` -> ``"fmnist"``; ``"cifar-10"`` -> ``"cifar10"``;
    ``"imagefolder:PATH"`` keeps PATH as given; ``"synthetic:3x32x32"`` is kept (the
    default ``synthetic:1x28x28`` becomes ``"synthetic"``).
    """
    if not isinstance(name, str) or not name.strip():
        raise data_error(f"dataset name must be a non-empty string; valid: {_valid()}")
    name = name.strip()
    prefix, sep, rest = name.partition(":")
    source = find_source(prefix)
    if source is None or (sep and not source.takes_argument):
        raise data_error(f"unknown dataset {excerpt(name)}; valid: {_valid()}")
    return source.canonical(rest if sep else None)


def search_paths(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for ``name``, in order; the first that has the files wins.

    For fmnist/mnist/cifar10/cifar100: ``data_dir``, ``$A3BENCH_DATA``, the user cache,
    ``SYSTEM_DATA_ROOT/<debian-name>``. Inside each, the files may also sit in a
    per-dataset subfolder (e.g. ``fashion-mnist/``, ``FashionMNIST/raw/``,
    ``cifar-10-batches-py/``). imagefolder: its own folder; synthetic: none.
    """
    canon = canonical_name(name)
    return source_of(canon).search_paths(canon, data_dir)


def dataset_info(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """The :class:`DatasetInfo` for ``name`` without loading the images.

    imagefolder looks at the folder (class names, first image's shape); the others are
    constants. ``data_dir`` is accepted for symmetry with :func:`load_dataset`.
    """
    canon = canonical_name(name)
    return source_of(canon).info_for(canon)


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
    check_split(split)
    return source_of(canon).load(canon, split, data_dir, download=download)


def label_order(info: DatasetInfo) -> str | None:
    """One line saying which class each label is, for datasets whose label order is derived
    from the data (imagefolder: sorted folder names); None for those with an official order."""
    try:
        source = source_of(info.name)
    except Exception:  # noqa: BLE001 - tensors given to a3bench.benchmark have no source
        return None
    if source.label_order is None:
        return None
    shown = ", ".join(f"{i}={c}" for i, c in enumerate(info.classes[:20]))
    more = f", … ({len(info.classes)} classes)" if len(info.classes) > 20 else ""
    return f"{info.name}: labels follow {source.label_order}: {shown}{more}"


def class_order_mismatch(declared: Sequence[str] | None, info: DatasetInfo) -> str | None:
    """A one-line warning when a model names its classes (``declared``, in label order) and the
    data holds the same classes in another order: every example of a moved class is then scored
    against the wrong class, and nothing else would say so. None otherwise (names are compared
    as ``T-shirt/top`` = folder ``tshirt_top``; other names cannot be matched, so they say nothing).
    """
    if not declared:
        return None
    declared = [str(c) for c in declared]
    ours, theirs = [_class_key(c) for c in declared], [_class_key(c) for c in info.classes]
    if ours == theirs or sorted(ours) != sorted(theirs):
        return None
    i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    return (f"warning: {info.name} orders its classes differently from the model: label {i} is {declared[i]!r} for "
            f"the model but {info.classes[i]!r} in the data, so accuracy was measured against the wrong classes "
            f"(name the class folders so that they sort in the model's order)")


def _class_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())
