"""Tests for a3bench.data: real Fashion-MNIST, lookup order, corrupt/untrusted files, splits."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
import tarfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from a3bench import data
from a3bench.errors import DataError
from a3bench.data import ImageDataset, canonical_name, dataset_info, load_dataset, search_paths

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fmnist = pytest.mark.skipif(
    not (DEBIAN_FMNIST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="apt-get install dataset-fashion-mnist to run the real-data tests",
)


# --------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    """Write ``array`` (uint8) as an IDX file; ``.gz`` is appended when ``gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_mnist_like(
    folder: Path, n: int, *, split: str = "test", gz: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny valid IDX split (n images 28x28, labels 0..9) into ``folder``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "t10k" if split == "test" else "train"
    write_idx(folder / f"{prefix}-images-idx3-ubyte", images, gz=gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz=gz)
    return images, labels


def write_cifar(
    folder: Path, *, hundred: bool, n_train: int = 20, n_test: int = 10, seed: int = 0
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write a fake CIFAR-10/100 folder as the official tarball has it (Python-2-style bytes keys)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    num_classes = 100 if hundred else 10
    label_key = b"fine_labels" if hundred else b"labels"
    if hundred:
        files = {"train": n_train, "test": n_test}
    else:
        files = {**{f"data_batch_{i}": n_train // 5 for i in range(1, 6)}, "test_batch": n_test}
    written = {}
    for fname, n in files.items():
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, num_classes, size=n)]
        batch = {b"data": pixels, label_key: labels, b"filenames": [b"x.png"] * n}
        if hundred:
            batch[b"coarse_labels"] = [0] * n
        # Protocol 2 is what the official (Python 2) files use.
        (folder / fname).write_bytes(pickle.dumps(batch, protocol=2))
        written[fname] = (pixels, labels)
    meta = {b"fine_label_names": [b"apple"] * 100} if hundred else {b"label_names": [b"airplane"] * 10}
    (folder / ("meta" if hundred else "batches.meta")).write_bytes(pickle.dumps(meta, protocol=2))
    return written


class _Evil:
    """Unpickling this runs a shell command: what a malicious data file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def assert_one_line(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and "\r" not in message and message.strip() == message and message
    return message


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """No real data anywhere: empty system root, cache under tmp, offline, no $A3BENCH_DATA."""
    ns = SimpleNamespace(
        home=tmp_path / "home",
        cache=tmp_path / "xdg" / "a3bench" / "data",
        system=tmp_path / "system",
        tmp=tmp_path,
    )
    for d in (ns.home, ns.system):
        d.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(ns.home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    monkeypatch.setattr(data.locate, "SYSTEM_DATA_ROOT", ns.system)
    return ns


@pytest.fixture
def real_system(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Isolated like ``env`` but with the real /usr/share/datasets."""
    monkeypatch.setattr(data.locate, "SYSTEM_DATA_ROOT", DEBIAN_FMNIST.parent)
    return env


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("given", "canon"),
    [
        ("fmnist", "fmnist"),
        ("fashion-mnist", "fmnist"),
        ("Fashion_MNIST", "fmnist"),
        ("FashionMNIST", "fmnist"),
        ("mnist", "mnist"),
        ("cifar-10", "cifar10"),
        ("CIFAR_100", "cifar100"),
        ("synthetic", "synthetic"),
        ("synthetic:1x28x28", "synthetic"),
        ("synthetic:3x32x32", "synthetic:3x32x32"),
        ("imagefolder:/some/Path", "imagefolder:/some/Path"),
    ],
)
def test_canonical_name(given: str, canon: str) -> None:
    assert canonical_name(given) == canon


@pytest.mark.parametrize("bad", ["imagenet", "", "mnist:3", "synthetic:2x8x8", "synthetic:abc", "imagefolder:"])
def test_bad_names_are_one_line_errors(bad: str) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(bad)
    assert_one_line(exc)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as exc:
        canonical_name("imagenet")
    message = assert_one_line(exc)
    for name in ("fmnist", "mnist", "cifar10", "cifar100", "synthetic", "imagefolder:PATH"):
        assert name in message


def test_bad_split() -> None:
    with pytest.raises(DataError, match="split"):
        load_dataset("synthetic", "validation")


# --------------------------------------------------------------------------- real Fashion-MNIST


@needs_debian_fmnist
def test_fmnist_test_split_from_debian(real_system: SimpleNamespace) -> None:
    start = time.perf_counter()
    ds = load_dataset("fashion-mnist", "test")
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0  # budget is 2 s; loose against a busy machine
    assert len(ds) == 10_000
    assert ds.images.shape == (10_000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert ds.labels.bincount(minlength=10).tolist() == [1000] * 10
    assert ds.info == dataset_info("fmnist")
    assert ds.info.classes[0] == "T-shirt/top" and ds.info.classes[9] == "Ankle boot"
    # The test split begins with an ankle boot (label 9), then a pullover (2).
    assert ds.labels[:2].tolist() == [9, 2]

    head = ds.first(100)
    assert len(head) == 100
    assert torch.equal(head.images, ds.images[:100]) and torch.equal(head.labels, ds.labels[:100])
    x, y = head.tensors()
    assert x.dtype == torch.float32 and x.shape == (100, 1, 28, 28)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.9
    assert torch.equal(x, head.images.float() / 255) and torch.equal(y, head.labels)


@needs_debian_fmnist
def test_fmnist_train_split_matches_declared_normalisation(real_system: SimpleNamespace) -> None:
    ds = load_dataset("fmnist", "train")
    assert len(ds) == 60_000 and ds.images.shape[1:] == (1, 28, 28)
    assert ds.labels.bincount(minlength=10).tolist() == [6000] * 10
    x = ds.images.float() / 255
    # The mean/std models normalise with must be the training set's.
    assert float(x.mean()) == pytest.approx(ds.info.mean[0], abs=1e-3)
    assert float(x.std()) == pytest.approx(ds.info.std[0], abs=1e-3)


# --------------------------------------------------------------------------- lookup order


def test_data_dir_beats_env_beats_cache(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, env_dir = env.tmp / "cli", env.tmp / "envdir"
    write_mnist_like(data_dir, 3)  # files directly in the folder, gzipped
    write_mnist_like(env_dir / "fashion-mnist", 5, gz=False)  # per-dataset subfolder, raw
    write_mnist_like(env.cache / "FashionMNIST" / "raw", 7)  # torchvision layout in the cache
    monkeypatch.setenv(data.DATA_ENV, str(env_dir))

    assert search_paths("fmnist", data_dir) == [data_dir, env_dir, env.cache, env.system / "fashion-mnist"]
    assert len(load_dataset("fmnist", data_dir=data_dir)) == 3
    assert len(load_dataset("fmnist")) == 5
    monkeypatch.delenv(data.DATA_ENV)
    assert search_paths("fmnist") == [env.cache, env.system / "fashion-mnist"]
    assert len(load_dataset("fmnist")) == 7


def test_idx_content_round_trips(env: SimpleNamespace) -> None:
    images, labels = write_mnist_like(env.tmp / "d" / "mnist", 12, split="train", gz=False, seed=3)
    ds = load_dataset("mnist", "train", env.tmp / "d")
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    assert ds.labels.tolist() == labels.tolist()
    assert ds.info.mean == (0.1307,) and ds.info.std == (0.3081,)


def test_system_root_is_searched(env: SimpleNamespace) -> None:
    write_mnist_like(env.system / "fashion-mnist", 4)
    assert len(load_dataset("fmnist")) == 4


def test_split_present_only_elsewhere(env: SimpleNamespace) -> None:
    # data_dir has only the train split: the test split comes from the next root.
    write_mnist_like(env.tmp / "cli", 3, split="train")
    write_mnist_like(env.cache / "fmnist", 6, split="test")
    assert len(load_dataset("fmnist", "train", env.tmp / "cli")) == 3
    assert len(load_dataset("fmnist", "test", env.tmp / "cli")) == 6


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("fmnist", "apt-get install dataset-fashion-mnist"),
        ("mnist", "IDX files"),
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
    ],
)
def test_missing_data_names_every_searched_folder(
    env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, name: str, hint: str
) -> None:
    env_dir = env.tmp / "from env"
    env_dir.mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(env_dir))
    data_dir = env.tmp / "cli"
    with pytest.raises(DataError) as exc:
        load_dataset(name, data_dir=data_dir)
    message = assert_one_line(exc)
    searched = search_paths(name, data_dir)
    assert len(searched) == 4
    for folder in searched:
        assert str(folder) in message
    assert hint in message and "--data-dir" in message and data.OFFLINE_ENV in message


def test_download_disabled_is_reported(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.OFFLINE_ENV)
    with pytest.raises(DataError, match="download disabled") as exc:
        load_dataset("mnist", download=False)
    assert_one_line(exc)


# --------------------------------------------------------------------------- downloads (file:// stands in for the host)


def _serve_from(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path, md5: dict[str, str] | None = None) -> None:
    source = data.SOURCES[name]
    url = (folder / source.archive).as_uri() if source.archive else folder.as_uri() + "/"
    monkeypatch.setitem(data.SOURCES, name, dataclasses.replace(source, download_url=url, download_md5=md5 or {}))
    monkeypatch.delenv(data.OFFLINE_ENV)


def test_download_into_cache(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    images, _ = write_mnist_like(env.tmp / "host", 9)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (env.tmp / "host").iterdir()}
    _serve_from(monkeypatch, "mnist", env.tmp / "host", md5)
    ds = load_dataset("mnist")
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    cached = sorted(p.name for p in (env.cache / "mnist").iterdir())
    assert cached == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


class _DyingResponse:
    """An HTTP response whose connection drops after the first chunk."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.sent = False

    def __enter__(self) -> _DyingResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            raise TimeoutError("timed out")
        self.sent = True
        return b"\x1f\x8b" + b"x" * 1000


@pytest.mark.parametrize("problem", ["missing", "checksum", "interrupted"])
def test_failed_download_leaves_nothing(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    host = env.tmp / "host"
    if problem == "checksum":
        write_mnist_like(host, 9)
        _serve_from(monkeypatch, "mnist", host, {"t10k-images-idx3-ubyte.gz": "0" * 32})
    else:
        _serve_from(monkeypatch, "mnist", host)
    if problem == "interrupted":
        monkeypatch.setattr(urllib.request, "urlopen", _DyingResponse)
    with pytest.raises(DataError, match="download failed") as exc:
        load_dataset("mnist")
    assert_one_line(exc)
    leftovers = [p for p in env.cache.rglob("*") if p.is_file()] if env.cache.exists() else []
    assert leftovers == []


def test_download_cifar_archive(env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_cifar(env.tmp / "src" / "cifar-10-batches-py", hundred=False)
    host = env.tmp / "host"
    host.mkdir()
    with tarfile.open(host / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(env.tmp / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    _serve_from(monkeypatch, "cifar10", host)
    ds = load_dataset("cifar10")
    assert ds.labels.tolist() == written["test_batch"][1]
    assert (env.cache / "cifar-10-batches-py" / "test_batch").is_file()
    assert not (env.cache / "cifar-10-python.tar.gz").exists()  # the archive is not kept


# --------------------------------------------------------------------------- corrupt IDX


def _corrupt(folder: Path, how: str) -> None:
    images = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    if how == "bad magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]))  # float type code
    elif how == "truncated data":
        images.write_bytes(gzip.compress(raw[:-100]))
    elif how == "truncated header":
        images.write_bytes(gzip.compress(raw[:10]))
    elif how == "truncated gzip":
        images.write_bytes(images.read_bytes()[:-30])
    elif how == "labels for images":
        labels = folder / "t10k-labels-idx1-ubyte.gz"
        images.write_bytes(labels.read_bytes())
    elif how == "count mismatch":
        write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    elif how == "label out of range":
        write_idx(folder / "t10k-labels-idx1-ubyte", np.full(5, 10, np.uint8))
    elif how == "wrong image size":
        write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8))
    elif how == "empty file":
        images.write_bytes(b"")


@pytest.mark.parametrize(
    "how",
    [
        "bad magic",
        "truncated data",
        "truncated header",
        "truncated gzip",
        "labels for images",
        "count mismatch",
        "label out of range",
        "wrong image size",
        "empty file",
    ],
)
def test_corrupt_idx_is_a_data_error(env: SimpleNamespace, how: str) -> None:
    folder = env.tmp / "d"
    write_mnist_like(folder, 5)
    load_dataset("fmnist", data_dir=folder)  # valid before we break it
    _corrupt(folder, how)
    with pytest.raises(DataError) as exc:
        load_dataset("fmnist", data_dir=folder)
    assert str(folder) in assert_one_line(exc)


# --------------------------------------------------------------------------- CIFAR


def test_fake_cifar10(env: SimpleNamespace) -> None:
    written = write_cifar(env.tmp / "d" / "cifar-10-batches-py", hundred=False)
    train = load_dataset("cifar-10", "train", env.tmp / "d")
    test = load_dataset("cifar10", "test", env.tmp / "d")
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (10, 3, 32, 32)
    assert train.labels.tolist() == sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    pixels = written["test_batch"][0]
    # Official layout: each row is 1024 red, then 1024 green, then 1024 blue values, row-major.
    assert torch.equal(test.images[3, 1], torch.from_numpy(pixels[3, 1024:2048].reshape(32, 32)))
    assert test.info.classes[0] == "airplane" and test.info.num_classes == 10
    assert test.info.mean == (0.4914, 0.4822, 0.4465)


def test_fake_cifar100(env: SimpleNamespace) -> None:
    written = write_cifar(env.tmp / "d" / "cifar-100-python", hundred=True)
    train = load_dataset("cifar100", "train", env.tmp / "d")
    test = load_dataset("cifar100", "test", env.tmp / "d")
    assert len(train) == 20 and test.images.shape == (10, 3, 32, 32)
    assert test.labels.tolist() == written["test"][1]
    assert test.info.num_classes == 100 and len(test.info.classes) == 100
    assert test.info.classes[:2] == ("apple", "aquarium_fish") and test.info.classes[-1] == "worm"


def test_cifar_tarball_in_folder_is_extracted_to_cache(env: SimpleNamespace) -> None:
    written = write_cifar(env.tmp / "src" / "cifar-10-batches-py", hundred=False)
    data_dir = env.tmp / "d"
    data_dir.mkdir()
    with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(env.tmp / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=data_dir)
    assert ds.labels.tolist() == written["test_batch"][1]
    assert list((env.cache / "extracted").glob("*/cifar-10-batches-py/test_batch"))
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-python.tar.gz"]  # user's folder untouched


def test_tarball_escaping_its_folder_is_refused(env: SimpleNamespace) -> None:
    data_dir = env.tmp / "d"
    data_dir.mkdir()
    payload = env.tmp / "payload"
    payload.write_bytes(b"owned")
    with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(payload, arcname="cifar-10-batches-py/../../escaped")
    with pytest.raises(DataError, match="unexpected member") as exc:
        load_dataset("cifar10", data_dir=data_dir)
    assert_one_line(exc)
    assert not list(env.tmp.rglob("escaped"))


@pytest.mark.parametrize("where", ["top level", "inside the dict"])
def test_malicious_pickle_is_refused_and_not_run(env: SimpleNamespace, where: str) -> None:
    folder = env.tmp / "d" / "cifar-10-batches-py"
    write_cifar(folder, hundred=False)
    marker = env.tmp / "pwned"
    evil = _Evil(marker)
    payload = evil if where == "top level" else {b"data": np.zeros((1, 3072), np.uint8), b"labels": [evil]}
    (folder / "test_batch").write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match="forbidden") as exc:
        load_dataset("cifar10", data_dir=env.tmp / "d")
    assert "test_batch" in assert_one_line(exc)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pickle at all", pickle.dumps([1, 2, 3], protocol=2), pickle.dumps({b"data": [1, 2]}, protocol=2)],
)
def test_malformed_cifar_batch(env: SimpleNamespace, content: bytes) -> None:
    folder = env.tmp / "d" / "cifar-10-batches-py"
    write_cifar(folder, hundred=False)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=env.tmp / "d")
    assert_one_line(exc)


# --------------------------------------------------------------------------- image folders


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_imagefolder_with_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pics = {}
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("dog", "cat"):
            for i in range(n):
                pics[(split, cls, i)] = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
                _write_png(tmp_path / split / cls / f"{i}.png", pics[(split, cls, i)])
    (tmp_path / "val" / "cat" / "notes.txt").write_text("not an image")
    name = f"imagefolder:{tmp_path}"
    info = dataset_info(name)
    assert info.classes == ("cat", "dog") and info.input_shape == (3, 6, 5)
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)
    test = load_dataset(name, "test")
    train = load_dataset(name, "train")
    assert len(train) == 6 and len(test) == 4 and test.info == info
    assert test.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(test.images[2], torch.from_numpy(pics[("val", "dog", 0)]).permute(2, 0, 1))


def test_flat_imagefolder_is_a_test_split(tmp_path: Path) -> None:
    for cls in ("a", "b", "c"):
        _write_png(tmp_path / cls / "x.png", np.full((4, 4), 10, np.uint8))
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.images.shape == (3, 1, 4, 4) and ds.labels.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="no train split") as exc:
        load_dataset(f"imagefolder:{tmp_path}", "train")
    assert_one_line(exc)


def test_imagefolder_converts_to_first_mode(tmp_path: Path) -> None:
    _write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))  # L: the reference
    _write_png(tmp_path / "b" / "0.png", np.full((4, 4, 3), 200, np.uint8))  # RGB -> L
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.images.shape == (2, 1, 4, 4) and int(ds.images[1].min()) == 200


def test_imagefolder_mismatched_size_names_the_file(tmp_path: Path) -> None:
    _write_png(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    _write_png(tmp_path / "b" / "odd.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DataError) as exc:
        load_dataset(f"imagefolder:{tmp_path}")
    assert "odd.png" in assert_one_line(exc)


@pytest.mark.parametrize("layout", ["missing", "no classes", "no images", "corrupt image"])
def test_imagefolder_problems(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "imgs"
    if layout != "missing":
        root.mkdir()
    if layout == "no images":
        (root / "a").mkdir()
    if layout == "corrupt image":
        _write_png(root / "a" / "0.png", np.zeros((4, 4), np.uint8))
        (root / "a" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError) as exc:
        load_dataset(f"imagefolder:{root}")
    assert_one_line(exc)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_in_range() -> None:
    a, b = load_dataset("synthetic", "train"), load_dataset("synthetic", "train")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    test = load_dataset("synthetic")
    assert len(a) == 2000 and len(test) == 500
    assert a.images.shape[1:] == (1, 28, 28) and a.images.dtype == torch.uint8
    assert test.labels.bincount(minlength=10).tolist() == [50] * 10
    x, _ = test.tensors()
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert not torch.equal(a.images[:500], test.images)  # train and test differ
    rgb = load_dataset("synthetic:3x32x32")
    assert rgb.images.shape == (500, 3, 32, 32) and rgb.info == dataset_info("synthetic:3x32x32")
    assert rgb.info.mean == (0.5, 0.5, 0.5)


@pytest.fixture
def one_thread():
    """Tiny models run far faster single-threaded; on a busy 2-core box, 15x faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_synthetic_is_learnable(one_thread: None) -> None:
    train, test = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
    torch.manual_seed(0)
    model = torch.nn.Linear(28 * 28, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step, (x, y) in zip(range(200), _forever(train)):
        loss = torch.nn.functional.cross_entropy(model(x.flatten(1) * 2 - 1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = test.tensors()
    accuracy = float((model(x.flatten(1) * 2 - 1).argmax(1) == y).float().mean())
    assert accuracy >= 0.5


def _forever(ds: ImageDataset):
    epoch = 0
    while True:
        yield from ds.batches(128, shuffle=True, seed=epoch)
        epoch += 1


# --------------------------------------------------------------------------- ImageDataset


def _toy(n: int = 23) -> ImageDataset:
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageDataset(images, torch.arange(n, dtype=torch.int64), data.dataset_info("synthetic"))


def _order(ds: ImageDataset, **kw) -> list[int]:
    out = []
    for x, y in ds.batches(5, **kw):
        assert x.dtype == torch.float32 and torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)
        out += y.tolist()
    return out


def test_batches_cover_everything_once_and_shuffle_by_seed() -> None:
    ds = _toy()
    assert _order(ds) == list(range(23))
    assert [len(y) for _, y in ds.batches(5)] == [5, 5, 5, 5, 3]
    a, b, c = _order(ds, shuffle=True, seed=1), _order(ds, shuffle=True, seed=1), _order(ds, shuffle=True, seed=2)
    assert a == b and a != c
    assert sorted(a) == sorted(c) == list(range(23)) and a != list(range(23))
    with pytest.raises(DataError):
        next(ds.batches(0))


def test_first_and_subset() -> None:
    ds = _toy()
    assert len(ds.first(None)) == 23 and len(ds.first(100)) == 23
    assert ds.first(4).labels.tolist() == [0, 1, 2, 3]
    for bad in (0, -1):
        with pytest.raises(DataError):
            ds.first(bad)
    assert ds.subset([5, 2]).labels.tolist() == [5, 2]
    assert ds.subset(torch.tensor([7])).images[0, 0, 0, 0] == 7
    assert ds.subset(ds.labels % 2 == 0).labels.tolist() == list(range(0, 23, 2))
    assert len(ds.subset([])) == 0
    with pytest.raises(DataError):
        ds.subset([23])


# --------------------------------------------------------------------------- the source registry


class _Toy(data.DatasetSource):
    """A source written the way docs/architecture.md#extending says: a class, registered once."""

    name = "toy-set"
    aliases = ("toys",)
    takes_argument = True

    def canonical(self, argument):
        return "toy-set" if argument is None else f"toy-set:{int(argument)}"

    def info_for(self, canon):
        n = int(canon.partition(":")[2] or 3)
        return data.DatasetInfo(canon, n, (1, 2, 2), (0.5,), (0.5,), tuple(f"c{i}" for i in range(n)))

    def load(self, canon, split, data_dir=None, *, download=True):
        info = self.info_for(canon)
        labels = torch.arange(info.num_classes, dtype=torch.int64)
        return ImageDataset(torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8), labels, info)


@pytest.fixture
def toy_source():
    source = data.register_source(_Toy())
    yield source
    del data.SOURCES[source.name]


def test_a_registered_source_is_a_dataset_name_everywhere(toy_source: _Toy) -> None:
    assert canonical_name("Toy_Set") == "toy-set" and canonical_name("TOYS:4") == "toy-set:4"
    assert dataset_info("toys:5").num_classes == 5
    ds = load_dataset("toy-set:4", "train")
    assert ds.labels.tolist() == [0, 1, 2, 3] and ds.info.name == "toy-set:4"
    assert search_paths("toy-set") == []
    with pytest.raises(DataError, match="toy-set"):  # listed among the valid names
        canonical_name("nope")
    with pytest.raises(DataError, match="split"):  # the split is checked for every source
        load_dataset("toy-set", "validation")


def test_a_name_is_registered_once(toy_source: _Toy) -> None:
    class Clash(_Toy):
        name = "other"
        aliases = ("Fashion_MNIST",)  # fmnist's spelling

    with pytest.raises(ValueError, match="fashionmnist"):
        data.register_source(Clash())
    assert "other" not in data.SOURCES


def test_every_source_answers_for_its_own_names() -> None:
    for name, source in data.SOURCES.items():
        canon = canonical_name(source.usage.replace("PATH", "/x") if source.usage else name)
        assert data.registry.source_of(canon) is source


# --------------------------------------------------------------------------- which class each label is


def test_image_folder_label_order_is_said(tmp_path: Path) -> None:
    for cls in ("dog", "cat", "bird"):
        _write_png(tmp_path / cls / "0.png", np.zeros((4, 4), np.uint8))
    info = dataset_info(f"imagefolder:{tmp_path}")
    assert data.label_order(info) == f"imagefolder:{tmp_path}: labels follow the class folders' names, sorted: 0=bird, 1=cat, 2=dog"
    assert data.label_order(dataset_info("fmnist")) is None  # an official order needs no saying


def test_class_order_mismatch() -> None:
    info = data.DatasetInfo("imagefolder:x", 3, (1, 4, 4), (0.5,), (0.5,), ("ankle_boot", "bag", "t_shirt"))
    assert data.class_order_mismatch(None, info) is None
    assert data.class_order_mismatch(["Ankle boot", "Bag", "T-shirt"], info) is None  # spelling aside, the same
    warning = data.class_order_mismatch(["T-shirt", "Ankle boot", "Bag"], info)
    assert warning.startswith("warning: ") and "label 0 is 'T-shirt' for the model but 'ankle_boot' in the data" in warning
    assert "\n" not in warning
    # names that cannot be matched say nothing: labels are matched by position, as always
    assert data.class_order_mismatch(["x", "y", "z"], info) is None and data.class_order_mismatch(["a", "b"], info) is None
