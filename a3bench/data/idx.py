"""MNIST and Fashion-MNIST: IDX files (gzipped or raw), also in torchvision's
``<dir>/FashionMNIST/raw`` layout, downloaded file by file from the official hosts."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from a3bench.data.base import DatasetInfo, ImageDataset, check_labels, data_error
from a3bench.data.locate import FileSource, data_cache_dir, fetch
from a3bench.data.registry import register_source
from a3bench.limits import MAX_DATA_BYTES

_FMNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08


def _idx_path(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class IdxSource(FileSource):
    """A split is an images file and a labels file (``files[split]``: their stems; '.gz' optional);
    ``download_url`` is the folder the gzipped files are fetched from."""

    def has_split(self, folder: Path, split: str) -> bool:
        return all(_idx_path(folder, stem) is not None for stem in self.files[split])

    def read(self, folder: Path, split: str) -> ImageDataset:
        images_stem, labels_stem = self.files[split]
        images_path, labels_path = _idx_path(folder, images_stem), _idx_path(folder, labels_stem)
        assert images_path is not None and labels_path is not None  # has_split checked
        c, h, w = self.info.input_shape
        labels = read_idx(labels_path, 1)
        images = read_idx(images_path, 3, shape=(h, w), count=(len(labels), labels_path))
        if len(images) != len(labels):
            raise data_error(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        check_labels(labels, self.info.num_classes, labels_path)
        return ImageDataset(torch.from_numpy(images).reshape(-1, c, h, w), torch.from_numpy(labels.astype(np.int64)), self.info)

    def download(self, split: str) -> Path:
        folder = data_cache_dir() / self.subdirs[0]
        for stem in self.files[split]:
            fname = f"{stem}.gz"
            fetch(self.download_url + fname, folder / fname, self.download_md5.get(fname))
        if not self.has_split(folder, split):
            raise data_error(f"downloaded files do not contain the {split} split in {folder}")
        return folder


def read_idx(path: Path, ndim: int, shape: tuple[int, ...] = (), count: tuple[int, Path] | None = None) -> np.ndarray:
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
                raise data_error(f"{path} is truncated ({len(header)} bytes, shorter than an IDX header)")
            magic = struct.unpack(">I", header[:4])[0]
            if magic != (_IDX_UBYTE << 8 | ndim):
                raise data_error(
                    f"{path} is not an IDX file of {ndim}-D unsigned bytes "
                    f"(magic number 0x{magic:08x}, expected 0x{_IDX_UBYTE << 8 | ndim:08x})"
                )
            dims = struct.unpack(f">{ndim}I", header[4:])
            if shape and tuple(dims[1:]) != tuple(shape):
                raise data_error(f"{path} holds {'x'.join(map(str, dims[1:]))} items, expected {'x'.join(map(str, shape))}")
            if count is not None and dims[0] != count[0]:
                raise data_error(f"{path} has {dims[0]} images but {count[1]} has {count[0]} labels")
            expected = math.prod(dims)  # Python ints: no overflow
            if expected > MAX_DATA_BYTES:
                raise data_error(f"{path}: header says {dims}, i.e. {expected} bytes; a3bench reads IDX files up to {MAX_DATA_BYTES} bytes")
            body = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise data_error(f"cannot read {path}: {exc}") from exc
    if len(body) != expected:
        state = "truncated" if len(body) < expected else "longer than its header says"
        found = str(len(body)) if len(body) <= expected else "more"
        raise data_error(f"{path} is {state}: header says {dims}, i.e. {expected} bytes, found {found}")
    # Copy: frombuffer over bytes is read-only, and torch wants writable memory.
    return np.frombuffer(body, dtype=np.uint8, count=expected).reshape(dims).copy()


def _idx_hint(title: str) -> str:
    return f"put the {title} IDX files (t10k-images-idx3-ubyte.gz, ...) in one of those folders, or pass --data-dir"


register_source(IdxSource(
    name="fmnist",
    aliases=("fashion-mnist",),
    info=DatasetInfo("fmnist", 10, (1, 28, 28), (0.2860,), (0.3530,), _FMNIST_CLASSES),
    title="Fashion-MNIST",
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
))
register_source(IdxSource(
    name="mnist",
    info=DatasetInfo("mnist", 10, (1, 28, 28), (0.1307,), (0.3081,), tuple(str(d) for d in range(10))),
    title="MNIST",
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
))
