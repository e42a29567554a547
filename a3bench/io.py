"""Writing files: atomically, under names that stay inside the folder they are meant for.

Every file a3bench writes goes through :func:`atomic_write_bytes` (a temp file beside the
target, fsync, rename), so a reader never sees half a file whatever kills the process.
Every file name built from data (a model name, a dataset name) goes through
:func:`safe_name`, so it cannot climb out of its folder. Inside :func:`staged_writes`
those writes are only staged, and renamed into place together when the block ends: a
record and its sidecars, or a site and its index, change together or not at all.
Every file a3bench reads that someone else may have made goes through
:func:`read_regular_bytes`: a regular file, of bounded size, or one line of refusal (a
device never streams gigabytes, a FIFO never hangs).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from a3bench.errors import ResultError


# The renames waiting for the end of the innermost :func:`staged_writes` block (None: none open).
_STAGED: contextvars.ContextVar[list[tuple[str, Path]] | None] = contextvars.ContextVar("a3bench_staged", default=None)


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(file)`` on a temp file beside ``path`` and rename it into place (inside
    :func:`staged_writes`: when the block ends)."""
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
        staged = _STAGED.get()
        if staged is not None:
            staged.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_writes() -> Iterator[None]:
    """Every :func:`atomic_write_bytes` inside the block writes its temp file (the bytes, on
    disk, fsynced) and waits; when the block ends they are renamed into place in the order
    they were written — so write the file that names the others (a record, a site's
    index) last. If anything fails first (a full disk, an error in the block), every temp
    file is removed and nothing is replaced. A nested block joins the outer one."""
    if _STAGED.get() is not None:
        yield
        return
    pending: list[tuple[str, Path]] = []
    token = _STAGED.set(pending)
    try:
        yield
    except BaseException:
        _discard(pending)
        raise
    finally:
        _STAGED.reset(token)
    try:
        while pending:
            tmp, path = pending[0]
            os.replace(tmp, path)  # a rename needs no space: only an odd file system fails here
            pending.pop(0)
    finally:
        _discard(pending)


def _discard(pending: list[tuple[str, Path]]) -> None:
    for tmp, _ in pending:
        Path(tmp).unlink(missing_ok=True)
    pending.clear()


def read_regular_bytes(path: str | os.PathLike, limit: int, what: str = "file", error: type[Exception] = ResultError) -> bytes:
    """The bytes of ``path``, refused with one line (``error``) unless it is a regular file
    (after links) of at most ``limit`` bytes. Opened without blocking, so a FIFO is refused
    instead of waiting for a writer; the size is checked before reading and the read stops
    at ``limit`` + 1 bytes, so a device (``/dev/zero``) or a growing file is never read whole."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the name
        raise error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{path} is a folder, not a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path} is not a regular file (a device, FIFO or socket), so not a {what}")
        if st.st_size > limit:
            raise error(f"{path} is {st.st_size} bytes; a3bench reads a {what} of up to {limit} bytes")
        os.set_blocking(fd, True)
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{path} is larger than {limit} bytes; a3bench reads a {what} of up to {limit} bytes")
    return data



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
