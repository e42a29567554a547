"""CIFAR-10 and CIFAR-100: the official python-pickle batches (``cifar-10-batches-py/``,
``cifar-100-python/``) or the official ``.tar.gz`` beside them. Pickles are untrusted: they
go through an allow-list unpickler that resolves only numpy's array reconstruction."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a3bench.data.base import DatasetInfo, ImageDataset, check_labels, data_error
from a3bench.data.locate import FileSource, data_cache_dir, extract_tar, fetch
from a3bench.data.registry import register_source
from a3bench.errors import excerpt
from a3bench.limits import MAX_DATA_BYTES

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


@dataclass(frozen=True)
class CifarSource(FileSource):
    """A split is one or more pickled batches (``files[split]``) of uint8 rows (1024 red, 1024
    green, 1024 blue values) and labels under ``label_key``; ``download_url`` is the archive."""

    label_key: str = "labels"

    def has_split(self, folder: Path, split: str) -> bool:
        return all((folder / f).is_file() for f in self.files[split])

    def read(self, folder: Path, split: str) -> ImageDataset:
        c, h, w = self.info.input_shape
        all_images: list[np.ndarray] = []
        all_labels: list[np.ndarray] = []
        for fname in self.files[split]:
            path = folder / fname
            batch = _unpickle(path)
            data, labels = batch.get("data"), batch.get(self.label_key)
            if not isinstance(data, np.ndarray) or labels is None:
                raise data_error(f"{path} lacks 'data' (a numpy array) or '{self.label_key}'")
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != c * h * w:
                raise data_error(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 (N, {c * h * w})")
            try:
                labels_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
            except (TypeError, ValueError, OverflowError) as exc:
                raise data_error(f"{path}: '{self.label_key}' are not integers") from exc
            if len(labels_arr) != len(data):
                raise data_error(f"{path} has {len(data)} images but {len(labels_arr)} labels")
            check_labels(labels_arr, self.info.num_classes, path)
            all_images.append(data.reshape(-1, c, h, w))
            all_labels.append(labels_arr)
        images = np.ascontiguousarray(np.concatenate(all_images))
        return ImageDataset(torch.from_numpy(images), torch.from_numpy(np.concatenate(all_labels)), self.info)

    def download(self, split: str) -> Path:
        assert self.archive is not None
        cache = data_cache_dir()
        top = self.subdirs[0]  # the archive's top folder
        archive = cache / self.archive
        fetch(self.download_url, archive, self.download_md5.get(self.archive))
        try:
            extract_tar(archive, top, cache)
        finally:
            archive.unlink(missing_ok=True)  # the extracted folder is what later runs find
        if not self.has_split(cache / top, split):
            raise data_error(f"downloaded files do not contain the {split} split in {cache / top}")
        return cache / top


# --------------------------------------------------------------------------- the allow-list unpickler


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
        raise data_error(f"cannot read {path}: {exc}") from exc
    if size > MAX_DATA_BYTES:
        raise data_error(f"{path} is {size} bytes; a3bench reads CIFAR batches up to {MAX_DATA_BYTES} bytes")
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official files are Python 2 pickles with str keys.
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise data_error(f"refusing to load {path}: {exc} (only plain data and numpy arrays are allowed)") from exc
    except Exception as exc:  # noqa: BLE001 - a malformed pickle can fail in any way; all are data errors
        raise data_error(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise data_error(f"{path} does not hold a CIFAR batch (a dict), found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


register_source(CifarSource(
    name="cifar10",
    info=DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), _CIFAR10_CLASSES),
    title="CIFAR-10",
    debian_name="cifar-10",
    subdirs=("cifar-10-batches-py", "cifar10", "cifar-10"),
    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    install_hint="Place 'cifar-10-batches-py/' from the official tarball "
    "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) in one of those folders, or pass --data-dir",
    download_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    download_md5={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    archive="cifar-10-python.tar.gz",
))
register_source(CifarSource(
    name="cifar100",
    info=DatasetInfo("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100_CLASSES),
    title="CIFAR-100",
    debian_name="cifar-100",
    subdirs=("cifar-100-python", "cifar100", "cifar-100"),
    files={"train": ("train",), "test": ("test",)},
    install_hint="Place 'cifar-100-python/' from the official tarball "
    "(https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz) in one of those folders, or pass --data-dir",
    download_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    download_md5={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    archive="cifar-100-python.tar.gz",
    label_key="fine_labels",
))
