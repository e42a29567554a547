"""Writing files: atomically, under names that stay inside the folder they are meant for.

Every file a3bench writes goes through :func:`atomic_write_bytes` (a temp file beside the
target, fsync, rename), so a reader never sees half a file whatever kills the process.
Every file name built from data (a model name, a dataset name) goes through
:func:`safe_name`, so it cannot climb out of its folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, BinaryIO

from a3bench.errors import ResultError


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(file)`` on a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def json_text(data: Any) -> str:
    """Strict JSON (NaN and infinity refused: a number a reader cannot parse is a bug)."""
    try:
        return json.dumps(data, indent=2, allow_nan=False) + "\n"
    except ValueError as e:
        raise ResultError(f"refusing to write a non-finite number into a result file ({e})") from None


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json_text(data))


def safe_name(text: str, default: str = "model") -> str:
    """A file-name-safe version of ``text``: letters, digits and ``._-`` kept, the rest ``_``;
    never ``.``/``..`` or empty, so a name cannot leave the folder it is joined to."""
    name = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in str(text))
    name = name.lstrip(".") or default
    return name[:200]


def inside(folder: str | os.PathLike, *parts: str) -> Path:
    """``folder/part/...`` with each part made safe: the result is always under ``folder``."""
    path = Path(folder)
    for p in parts:
        path = path / safe_name(p, default="_")
    return path


def is_file(path: str | os.PathLike) -> bool:
    """``Path.is_file`` for a path the user typed: a name too long for the file system, or
    one holding a NUL byte, is simply not a file (``Path.is_file`` raises on those)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False
