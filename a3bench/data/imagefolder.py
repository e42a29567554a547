"""``imagefolder:PATH``: a folder of images, ``PATH/{train,test|val}/<class>/*.png|jpg``,
or ``PATH/<class>/*`` (a test split alone).

Labels follow the class folders' names sorted alphabetically (the union over the splits, so
train and test agree): ``PATH/test/cat``, ``PATH/test/dog`` → cat = 0, dog = 1, whatever
order a model was trained with elsewhere. The commands print the order with their results,
and warn when the model names the same classes in another order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from a3bench.data.base import DatasetInfo, ImageDataset, data_error
from a3bench.data.registry import DatasetSource, PathLike, register_source
from a3bench.errors import excerpt
from a3bench.limits import MAX_CLASSES, MAX_DATA_BYTES, MAX_IMAGE_PIXELS, MAX_SIDE

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
    root = _root(canon)
    try:
        return _scan_imagefolder_at(root, canon)
    except OSError as exc:  # a path too long, a folder we may not list ...
        raise data_error(f"cannot read image folder {excerpt(str(root), 200)}: {exc.strerror or exc}") from exc


def _open_image(path: Path, expected_size: tuple[int, int] | None = None):
    """Open an image lazily (header only) and refuse, before any pixel is decoded, one whose
    declared size is over :data:`~a3bench.limits.MAX_SIDE` (a decompression bomb) or differs
    from ``expected_size``. Any failure of the decoder on a hostile file is a DataError."""
    from PIL import Image

    try:
        im = Image.open(path)
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds of errors on malformed files
        raise data_error(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    w, h = im.size
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE and w * h <= MAX_IMAGE_PIXELS):
        im.close()
        raise data_error(f"image {path} declares {w}x{h} pixels; a3bench reads images up to {MAX_SIDE}x{MAX_SIDE}")
    if expected_size is not None and im.size != expected_size:
        im.close()
        raise data_error(
            f"image {path} is {w}x{h}, but the first image is "
            f"{expected_size[0]}x{expected_size[1]}; all images must share a size"
        )
    return im


def _scan_imagefolder_at(root: Path, canon: str) -> _FolderScan:
    if not root.is_dir():
        raise data_error(f"image folder {root} does not exist")
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
        raise data_error(f"image folder {root} has no class subfolders (expected {root}/<class>/*.png)")
    if len(classes) > MAX_CLASSES:
        raise data_error(f"image folder {root} has {len(classes)} class folders; a3bench handles up to {MAX_CLASSES}")
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
        raise data_error(f"image folder {root} has no images (.png, .jpg, .jpeg, .bmp)")
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
    root = _root(canon)
    if split not in scan.split_dirs:
        raise data_error(f"image folder {root} has no {split} split (expected {root}/{split}/<class>/...)")
    split_dir = scan.split_dirs[split]
    try:
        files = [(label, path) for label, cls in enumerate(scan.info.classes) if (split_dir / cls).is_dir()
                 for path in _image_files(split_dir / cls)]
    except OSError as exc:
        raise data_error(f"cannot read image folder {split_dir}: {exc.strerror or exc}") from exc
    c, h, w = scan.info.input_shape
    if len(files) * c * h * w > MAX_DATA_BYTES:  # decoded size, known before decoding anything
        raise data_error(f"image folder {split_dir}: {len(files)} images of {c}x{h}x{w} exceed {MAX_DATA_BYTES} bytes in memory")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, path in files:
        with _open_image(path, scan.size) as im:
            try:
                arr = np.asarray(im.convert(scan.mode), dtype=np.uint8)
            except Exception as exc:  # noqa: BLE001 - a decoder fails in many ways on a hostile file
                raise data_error(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        labels.append(label)
    if not images:
        raise data_error(f"image folder {split_dir} has no images in its class subfolders")
    return ImageDataset(
        torch.from_numpy(np.stack(images)),
        torch.tensor(labels, dtype=torch.int64),
        scan.info,
    )


class ImageFolderSource(DatasetSource):
    name = "imagefolder"
    usage = "imagefolder:PATH"
    takes_argument = True
    label_order = "the class folders' names, sorted"

    def canonical(self, argument: str | None) -> str:
        if argument is None or not argument.strip():
            raise data_error("imagefolder needs a folder: imagefolder:PATH")
        return f"imagefolder:{argument.strip()}"

    def info_for(self, canon: str) -> DatasetInfo:
        return _scan_imagefolder(canon).info

    def search_paths(self, canon: str, data_dir: PathLike = None) -> list[Path]:
        return [_root(canon)]

    def load(self, canon: str, split: str, data_dir: PathLike = None, *, download: bool = True) -> ImageDataset:
        return _load_imagefolder(canon, split)


def _root(canon: str) -> Path:
    return Path(canon.partition(":")[2]).expanduser()


register_source(ImageFolderSource())
