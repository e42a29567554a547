"""The output file of an evaluation: checked before any work, locked while it runs
(docs/results.md). Every command that writes a record uses :class:`OutputLock`."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from a3bench.errors import AttackError, ResultError
from a3bench.schema import AUXILIARY_SUFFIXES, read_json


class OutputLock:
    """Checks ``--out`` before any work and holds ``<stem>.lock`` beside it for the run.

    Refused with one line: a folder; a file that is not an a3bench record (a checkpoint, a
    dataset, the model's own weights); another record's outcomes, state or sweep file; a
    folder a3bench cannot write to; a record another run is writing right now (its lock
    names a live process on this machine; a stale lock is taken over).
    """

    def __init__(self, out: Path | None, loaded) -> None:
        self.out, self.loaded, self.lock, self.held = out, loaded, None, False

    def __enter__(self) -> "OutputLock":
        if self.out is None:
            return self
        check_output_path(self.out, self.loaded)
        self.lock = self.out.with_name(self.out.name + ".lock")
        _take_lock(self.lock, self.out)
        self.held = True
        return self

    def __exit__(self, *exc) -> None:
        if self.held and self.lock is not None:
            self.lock.unlink(missing_ok=True)


def check_output_path(out: Path, loaded=None) -> None:
    """Everything about a record path that can be checked before the work starts."""
    out = Path(out)
    if out.is_dir():
        raise AttackError(f"--out {out} is a folder: give a file path such as {out / 'model.json'}")
    if out.name.endswith(AUXILIARY_SUFFIXES) or out.name.endswith(".lock"):
        raise AttackError(f"--out {out} is the name of a file a3bench keeps beside a record: choose another name")
    model_path = getattr(loaded, "path", None)
    if model_path and out.exists() and out.resolve() == Path(model_path).resolve():
        raise AttackError(f"--out {out} is the model's own checkpoint: refusing to overwrite it")
    if out.exists():
        try:
            data = read_json(out)
        except ResultError:
            data = None
        if not (isinstance(data, dict) and "schema_version" in data and "per_attack" in data):
            raise AttackError(f"--out {out} exists and is not an a3bench result record: refusing to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AttackError(f"cannot create the folder of --out {out}: {e.strerror or e}") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise AttackError(f"cannot write to {out.parent}: no permission")


def _take_lock(lock: Path, out: Path) -> None:
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _lock_alive(lock):
                owner = lock.read_text(errors="replace").split()[:1]
                raise AttackError(f"another a3bench run (pid {owner[0] if owner else '?'}) is writing {out}; "
                                  f"wait for it or remove {lock} if it is gone") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        except OSError as e:
            raise AttackError(f"cannot write beside {out}: {e.strerror or e}") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return
    raise AttackError(f"cannot lock {out}: {lock} keeps coming back")


def _lock_alive(lock: Path) -> bool:
    try:
        pid_text, host = (lock.read_text(errors="replace").split() + ["", ""])[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if host and host != socket.gethostname():
        return True  # another machine's run: cannot check, assume alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed run whose parent is gone too can linger unreaped (state Z) where PID 1 does
    not reap, as in many containers: it holds nothing, so its lock is stale."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
