"""Datasets that live in files: where they are looked for, how a found archive is
extracted, and how the official files are downloaded when nothing is found.

Search order (:meth:`FileSource.search_paths`): ``data_dir`` (the CLI's ``--data-dir``),
``$A3BENCH_DATA``, the user cache (:func:`data_cache_dir`), then
``/usr/share/datasets/<debian-name>``. Each folder counts with the files directly in it
or in a per-dataset subfolder (``fashion-mnist/``, ``cifar-10-batches-py/``, ...). When
nothing is found, the official files are downloaded into the cache unless
``A3BENCH_OFFLINE`` is set. Archives are untrusted and checked member by member.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from a3bench.data.base import DatasetInfo, ImageDataset, data_error
from a3bench.data.registry import DatasetSource, PathLike
from a3bench.errors import DataError, excerpt
from a3bench.limits import MAX_DATA_BYTES

# Where distributions install datasets (Debian: apt-get install dataset-fashion-mnist).
# Module-level so tests can point it at an empty folder.
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
DATA_ENV = "A3BENCH_DATA"
OFFLINE_ENV = "A3BENCH_OFFLINE"
DOWNLOAD_TIMEOUT_S = 15.0


def data_cache_dir() -> Path:
    """The user cache for datasets: ``$XDG_CACHE_HOME/a3bench/data`` or ``~/.cache/a3bench/data``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are to be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(os.path.expanduser("~")) / ".cache"
    return base / "a3bench" / "data"


@dataclass(frozen=True)
class FileSource(DatasetSource):
    """A dataset of official files: found on disk, else downloaded. Subclasses say what the
    files of a split are (:meth:`has_split`), how they are read (:meth:`read`) and fetched
    (:meth:`download`)."""

    name: str
    info: DatasetInfo
    title: str  # for messages: "Fashion-MNIST"
    debian_name: str  # folder under SYSTEM_DATA_ROOT
    subdirs: tuple[str, ...]  # per-dataset subfolders accepted inside every root; [0] is the download target
    files: dict[str, tuple[str, ...]]  # split -> its files
    install_hint: str
    download_url: str
    download_md5: dict[str, str] = field(default_factory=dict)  # file name -> md5 (skipped when absent)
    aliases: tuple[str, ...] = ()
    archive: str | None = None  # the official archive's name, when the files come in one

    def info_for(self, canon: str) -> DatasetInfo:
        return self.info

    def search_paths(self, canon: str, data_dir: PathLike = None) -> list[Path]:
        roots: list[Path] = []
        if data_dir is not None:
            roots.append(Path(data_dir).expanduser())
        if os.environ.get(DATA_ENV):
            roots.append(Path(os.environ[DATA_ENV]).expanduser())
        roots.append(data_cache_dir())
        roots.append(SYSTEM_DATA_ROOT / self.debian_name)
        return list(dict.fromkeys(roots))

    def load(self, canon: str, split: str, data_dir: PathLike = None, *, download: bool = True) -> ImageDataset:
        roots = self.search_paths(canon, data_dir)
        folder = self._locate(split, roots)
        if folder is None:
            if not download:
                why = "download disabled"
            elif os.environ.get(OFFLINE_ENV):
                why = f"download skipped: {OFFLINE_ENV} is set"
            else:
                try:
                    folder = self.download(split)
                    why = ""
                except DataError as exc:
                    why = f"download failed: {exc}"
            if folder is None:
                searched = ", ".join(str(r) + ("" if r.is_dir() else " (missing)") for r in roots)
                raise data_error(f"{self.title} {split} split not found (searched: {searched}; {why}). {self.install_hint}.")
        return self.read(folder, split)

    @abstractmethod
    def has_split(self, folder: Path, split: str) -> bool:
        """Whether ``folder`` holds every file of ``split``."""

    @abstractmethod
    def read(self, folder: Path, split: str) -> ImageDataset:
        """Parse the split's files in ``folder`` (untrusted: every check before allocating)."""

    @abstractmethod
    def download(self, split: str) -> Path:
        """Fetch the official files into the user cache; the folder holding the split."""

    def _locate(self, split: str, roots: list[Path]) -> Path | None:
        """The first folder holding the split, extracting an archive found on the way."""
        for root in roots:
            folders = [f for f in (root, *(root / sub for sub in self.subdirs)) if f.is_dir()]
            for folder in folders:
                if self.has_split(folder, split):
                    return folder
            if self.archive:
                for folder in folders:
                    archive = folder / self.archive
                    if archive.is_file():
                        return self._extract_found_archive(archive, split)
        return None

    def _extract_found_archive(self, archive: Path, split: str) -> Path:
        """Extract a user's archive into the cache, keyed by its path, size and mtime (done once)."""
        st = archive.stat()
        key = hashlib.sha1(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
        parent = data_cache_dir() / "extracted" / f"{archive.name.split('.')[0]}-{key}"
        top = self.subdirs[0]  # the archive's top folder (cifar-10-batches-py, ...)
        folder = parent / top
        if not self.has_split(folder, split):
            extract_tar(archive, top, parent)
        if not self.has_split(folder, split):
            raise data_error(f"{archive} does not contain {top}/{self.files[split][0]}")
        return folder


def extract_tar(archive: Path, top: str, dest_parent: Path) -> None:
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
                    raise data_error(f"{archive}: unexpected member {excerpt(m.name)}; is this the official tarball?")
                if not (m.isfile() or m.isdir()):
                    raise data_error(f"{archive}: member {excerpt(m.name)} is not a regular file")
                total += m.size
                if total > MAX_DATA_BYTES or len(members) >= 10_000:
                    raise data_error(f"{archive} holds more than {MAX_DATA_BYTES} bytes or 10000 files; is this the official tarball?")
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
        raise data_error(f"cannot extract {archive}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(url: str, dest: Path, md5: str | None) -> None:
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
            raise data_error(f"{url} has MD5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise data_error(f"{url}: {reason}") from exc
    finally:
        tmp.unlink(missing_ok=True)
