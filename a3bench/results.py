"""Where result files live, and how a command may write them (docs/results.md).

One home for:

- the default paths (``results/<dataset>/<norm>/<model>.json``) and every sidecar a record
  keeps beside it (``<stem>.outcomes.json``, ``.state.json``, ``.audit.json``,
  ``.sweep.json``, ``.adv.pt``, ``.adv.state.pt``, ``.lock``), all named from the record's *stem*, so
  ``--out r.json`` and ``--out r`` share their sidecars and their lock;
- the ``runs/`` rule: a default path that holds another evaluation, or another model
  (weights sha256 or spec), is kept, and the new file goes to ``runs/`` instead;
- the output guard every writing command uses (``attack``, ``audit``, ``sweep-eps``,
  ``report``, ``train``): before any work it refuses what it did not write (a checkpoint,
  a record of another kind, a device, a FIFO, a link, a user's own file) and a folder
  where a file belongs; then it holds a lock for the run;
- run ids: a record, its outcomes, its audit and its adversarial examples carry one id,
  written together (:func:`write_run`) and verified by ``check``, ``report`` and
  ``verify`` (:func:`verify_run_ids`).

Nothing here imports torch at module level: reports and CI gates stay light.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from a3bench.errors import A3BenchError, AttackError, ResultError, excerpt, one_line
from a3bench.io import json_text, safe_name, staged_writes

# --------------------------------------------------------------------------- names

RECORD_SUFFIX = ".json"
OUTCOMES_SUFFIX = ".outcomes.json"
STATE_SUFFIX = ".state.json"
SWEEP_SUFFIX = ".sweep.json"
AUDIT_SUFFIX = ".audit.json"
ADV_SUFFIX = ".adv.pt"  # the adversarial examples beside the outcomes (a3bench/advfile.py)
ADV_STATE_SUFFIX = ".adv.state.pt"  # those of a running evaluation, beside its resume state
LOCK_SUFFIX = ".lock"

# Files kept beside a record, never records themselves (``report`` skips them).
AUXILIARY_SUFFIXES = (OUTCOMES_SUFFIX, STATE_SUFFIX, SWEEP_SUFFIX, AUDIT_SUFFIX, ADV_SUFFIX, ADV_STATE_SUFFIX)
# A record's own sidecars: written by the run that writes the record, under its lock.
RECORD_SIDECARS = (OUTCOMES_SUFFIX, STATE_SUFFIX, AUDIT_SUFFIX, ADV_SUFFIX, ADV_STATE_SUFFIX)


def record_stem(path: str | os.PathLike) -> str:
    """The name every sidecar of ``path`` starts with: its file name without ``.json``
    (``r.json`` and ``r`` → ``r``), and without a sidecar's own suffix."""
    name = Path(path).name
    for suffix in (*AUXILIARY_SUFFIXES, RECORD_SUFFIX):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _shown(path: Any) -> str:
    """A path for an error line: as typed, on one line, bounded."""
    return one_line(str(path), 200)


def sidecar(path: str | os.PathLike, suffix: str) -> Path:
    p = Path(path)
    return p.with_name(record_stem(p) + suffix)


def outcomes_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, OUTCOMES_SUFFIX)


def state_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, STATE_SUFFIX)


def audit_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, AUDIT_SUFFIX)


def sweep_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, SWEEP_SUFFIX)


def adv_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, ADV_SUFFIX)


def adv_state_path(record_path: str | os.PathLike) -> Path:
    return sidecar(record_path, ADV_STATE_SUFFIX)


def lock_path(record_path: str | os.PathLike) -> Path:
    """One lock per stem: a record and its sidecars (an audit written alone included)."""
    return sidecar(record_path, LOCK_SUFFIX)


def result_dir(dataset: str, norm: str, root: str | os.PathLike = "results") -> Path:
    """``<root>/<dataset>/<norm>``, every part made file-name safe."""
    return Path(root) / safe_name(dataset) / safe_name(norm)


def default_result_path(dataset: str, norm: str, model_name: str, root: str | os.PathLike = "results") -> Path:
    """``<root>/<dataset>/<norm>/<model>.json``, every part made file-name safe."""
    return result_dir(dataset, norm, root) / f"{safe_name(model_name)}{RECORD_SUFFIX}"


def default_audit_path(dataset: str, norm: str, model_name: str, root: str | os.PathLike = "results") -> Path:
    """``<root>/<dataset>/<norm>/<model>.audit.json``: beside the model's record."""
    return audit_path(default_result_path(dataset, norm, model_name, root))


def default_sweep_dir(dataset: str, norm: str, root: str | os.PathLike = "results") -> Path:
    return result_dir(dataset, norm, root)


# --------------------------------------------------------------------------- model identity


def model_identity(loaded: Any, spec: str | None = None) -> dict[str, str]:
    """What tells two models apart in a record (``record.model``): the sha256 of the
    weights and the spec as typed (``--model``; the model's name when none was typed)."""
    from a3bench.eval.judge import model_fingerprint

    model = getattr(loaded, "model", loaded)
    return {"sha256": model_fingerprint(model), "spec": str(spec if spec is not None else getattr(loaded, "name", ""))}


def different_model(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> str | None:
    """Why the models behind two records (their ``model`` fields) differ, or None when
    nothing shows they do (a field missing on either side proves nothing)."""
    a, b = a if isinstance(a, Mapping) else {}, b if isinstance(b, Mapping) else {}
    for key, what in (("sha256", "weights"), ("spec", "spec")):
        x, y = a.get(key), b.get(key)
        if x and y and x != y:
            if key == "sha256":
                return f"different weights (sha256 {str(x)[:12]}… vs {str(y)[:12]}…)"
            return f"different specs ({excerpt(x, 60)} vs {excerpt(y, 60)})"
    return None


# --------------------------------------------------------------------------- the runs/ rule


def settings_differ(path: str | os.PathLike, settings: dict) -> list[str]:
    """Which of ``settings`` (record field → value: suite, attacks, eps, norm, n_examples,
    seed) the file at ``path`` was made with differently; [] when there is no file there
    or it is the same evaluation. A list given for a field stored as an object is compared
    with the object's keys (a sweep's curve names). An unreadable file counts as different
    ("record")."""
    from a3bench.schema import read_json

    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return []
    try:
        data = read_json(path)
    except ResultError:
        return ["record"]
    if not isinstance(data, dict):
        return ["record"]

    def stored(k, v):
        value = data.get(k)
        return list(value) if isinstance(value, dict) and isinstance(v, list) else value

    return [k for k, v in settings.items() if stored(k, v) != v]


@dataclass
class Placement:
    """Where a default run writes, and why not at the default path (None: it does)."""

    path: Path
    note: str | None = None


def place(default: Path, settings: dict, identity: Mapping[str, Any] | None, *, identity_field: str = "model",
          runs_root: str | os.PathLike = "runs", results_root: str | os.PathLike = "results") -> Placement:
    """The ``runs/`` rule for a file at its default path (a record, an audit, a sweep).

    The default path is used when it is free or holds the same evaluation of the same
    model. Otherwise it is kept and the new file goes to the same place under
    ``runs_root``; if that holds another model too, to ``<stem>-<id>`` there, where ``id``
    comes from the model's identity — so no file of another model is ever replaced.
    ``identity_field``: where the file keeps its model identity (``model`` in a record).
    """
    default = Path(default)
    theirs = _stored_identity(default, identity_field)
    diff = settings_differ(default, settings)
    other = different_model(identity, theirs) if theirs is not None else None
    if not diff and other is None:
        return Placement(default)
    why = f"another model: {other}" if other else f"a different evaluation ({', '.join(diff)})"
    try:
        rel = default.relative_to(results_root)
    except ValueError:
        rel = Path(default.name)
    runs = Path(runs_root) / rel
    theirs_runs = _stored_identity(runs, identity_field)
    if theirs_runs is not None and different_model(identity, theirs_runs):
        tag = hashlib.sha256(json_text(dict(identity or {})).encode()).hexdigest()[:8]
        runs = runs.with_name(f"{record_stem(runs)}-{tag}{_kind_suffix(runs)}")
    return Placement(runs, f"{default} holds {why}: kept; this one goes to {runs} (--out {default} replaces it)")


def _kind_suffix(path: Path) -> str:
    return path.name[len(record_stem(path)):]


def _stored_identity(path: Path, identity_field: str) -> dict | None:
    """The model identity a file at ``path`` keeps (``{}`` when it keeps none or cannot be
    read); None when there is no file."""
    from a3bench.schema import read_json

    if not (path.exists() or path.is_symlink()):
        return None
    try:
        data = read_json(path)
    except ResultError:
        return {}
    value = data.get(identity_field) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- the output guard


def _is_record(data: Any) -> bool:
    return isinstance(data, dict) and "schema_version" in data and "per_attack" in data


def _is_outcomes(data: Any) -> bool:
    return isinstance(data, dict) and ("robust" in data or ("clean_correct" in data and "broken_by" in data)) and "per_attack" not in data


def _is_state(data: Any) -> bool:
    return isinstance(data, dict) and "state_version" in data and "identity" in data


def _is_sweep(data: Any) -> bool:
    return isinstance(data, dict) and "schema_version" in data and "curves" in data and "eps" in data


def _is_audit(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") == "audit"


def _json(is_kind: Callable[[Any], bool]) -> Callable[[Path], bool]:
    def recognise(path: Path) -> bool:
        from a3bench.schema import read_json

        try:
            return bool(is_kind(read_json(path)))
        except ResultError:
            return False

    return recognise


def _is_adv(path: Path) -> bool:
    from a3bench.advfile import is_adv_file

    return is_adv_file(path)


# What a3bench's pages say about themselves (report/leaderboard.py, markdown.py, site.py).
_A3BENCH_MARKS = (b"a3bench report", b"a3bench leaderboard")
_MARK_WINDOW = 1 << 16


def written_by_a3bench(path: Path) -> bool:
    """A page (markdown, HTML) that says it was generated by ``a3bench report``."""
    from a3bench.io import read_regular_bytes

    try:
        data = read_regular_bytes(path, 64 << 20, "page")
    except ResultError:
        return False
    return any(m in data[:_MARK_WINDOW] or m in data[-_MARK_WINDOW:] for m in _A3BENCH_MARKS)


@dataclass(frozen=True)
class OutputKind:
    """A kind of file a command writes: what it is called in messages, how an existing file
    of this kind is recognised (only those are replaced), the sidecars written with it,
    and the lock it takes beside it."""

    what: str
    recognise: Callable[[Path], bool]
    sidecars: tuple[tuple[str, Callable[[Path], bool]], ...] = ()
    lock_suffix: str = LOCK_SUFFIX
    folder_hint: str = "model.json"  # shown when the output is a folder
    owner: Callable[[Path], str | None] | None = None  # a file of this kind that belongs to another: why


RECORD = OutputKind("a3bench result record", _json(_is_record),
                    ((OUTCOMES_SUFFIX, _json(_is_outcomes)), (STATE_SUFFIX, _json(_is_state)), (AUDIT_SUFFIX, _json(_is_audit)),
                     (ADV_SUFFIX, _is_adv), (ADV_STATE_SUFFIX, _is_adv)))
def _audit_owner(path: Path) -> str | None:
    """An audit written with a record (attack --audit) belongs to it: only a standalone audit is replaced."""
    from a3bench.schema import read_json

    data = read_json(path)
    if data.get("run_id") is None:
        return None
    return f"{_shown(path)} belongs to the record {_shown(sidecar(path, RECORD_SUFFIX))} (attack --audit wrote them together)"


AUDIT = OutputKind("a3bench audit file", _json(_is_audit), folder_hint="model.audit.json", owner=_audit_owner)
SWEEP = OutputKind("a3bench sweep file", _json(_is_sweep), lock_suffix=".sweep" + LOCK_SUFFIX, folder_hint="model.sweep.json")
REPORT = OutputKind("a3bench page (one that a3bench report wrote)", written_by_a3bench, lock_suffix=".report" + LOCK_SUFFIX,
                    folder_hint="LEADERBOARD.md")


def check_output(out: str | os.PathLike, kind: OutputKind = RECORD, *, loaded: Any = None, option: str = "--out",
                 error: type[A3BenchError] = AttackError) -> Path:
    """Everything about an output path that can be checked before the work starts; one
    ``error`` line on the first problem. Creates nothing."""
    out = Path(out)
    shown = _shown(out)
    if kind is RECORD and (out.name.endswith(AUXILIARY_SUFFIXES) or out.name.endswith(LOCK_SUFFIX)):
        raise error(f"{option} {shown} is the name of a file a3bench keeps beside a record: choose another name")
    model_path = getattr(loaded, "path", None)
    if model_path and _same_file(out, Path(model_path)):
        raise error(f"{option} {shown} is the model's own checkpoint: refusing to overwrite it")
    _check_replaceable(out, kind.recognise, kind.what, option, error, folder_hint=kind.folder_hint)
    owner = kind.owner(out) if kind.owner is not None and out.is_file() else None
    if owner:
        raise error(f"{owner}: refusing to replace it (choose another {option})")
    for suffix, recognise in kind.sidecars:
        _check_replaceable(sidecar(out, suffix), recognise, "a3bench file kept beside a record", "", error)
    _check_folder(out.parent, option, shown, error)
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_replaceable(path: Path, recognise: Callable[[Path], bool], what: str, option: str, error: type[A3BenchError],
                       folder_hint: str | None = None) -> None:
    """Refuse a path that holds something a3bench did not write there: a link, a folder, a
    device or FIFO, a file that is not ``what``."""
    shown = _shown(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a file on the way: _check_folder says so)
        return
    except (OSError, ValueError) as e:
        raise error(f"cannot use {option} {shown}: {getattr(e, 'strerror', None) or e}") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{shown} is a symbolic link: a3bench never writes through one (give the real path)")
    if stat.S_ISDIR(st.st_mode):
        hint = f": give a file path such as {_shown(path / folder_hint)}" if folder_hint else ""
        raise error(f"{option + ' ' if option else ''}{shown} is a folder{hint}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{shown} is not a regular file (a device, FIFO or socket): refusing to replace it")
    if not recognise(path):
        raise error(f"{option + ' ' if option else ''}{shown} exists and is not an {what}: refusing to replace it")


def _check_folder(folder: Path, option: str, shown: str, error: type[A3BenchError]) -> None:
    """The nearest existing folder on the way must be a folder we can write to."""
    existing = folder
    while not (existing.exists() or existing.is_symlink()) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"cannot write {option} {shown}: {_shown(existing)} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"cannot write to {_shown(existing)}: no permission")


class OutputLock:
    """The output guard as a context: :func:`check_output` before any work, then the lock
    ``<stem>.lock`` beside the output for the run (one per stem: ``--out r.json`` and
    ``--out r`` take the same one). Refused with one line when another live run holds it;
    a stale lock (its process gone, or a zombie) is taken over. Folders created for the
    output are removed again when the run leaves them empty.
    """

    def __init__(self, out: str | os.PathLike | None, loaded: Any = None, kind: OutputKind = RECORD, *,
                 option: str = "--out", error: type[A3BenchError] = AttackError, lock: str | os.PathLike | None = None,
                 target: str | os.PathLike | None = None) -> None:
        """``out`` None: nothing to check or lock — unless ``lock`` names a lock to hold
        alone (the command checked its output itself; ``target`` is what messages name)."""
        self.out = Path(out) if out is not None else None
        self.loaded, self.kind, self.option, self.error = loaded, kind, option, error
        self.lock = Path(lock) if lock is not None else (sidecar(self.out, kind.lock_suffix) if self.out is not None else None)
        self.target = Path(target) if target is not None else self.out
        self.held = False
        self.created: list[Path] = []

    def __enter__(self) -> "OutputLock":
        if self.out is not None:
            check_output(self.out, self.kind, loaded=self.loaded, option=self.option, error=self.error)
        if self.lock is None:
            return self
        self.created = _make_folders(self.lock.parent, self.option, self.error)
        try:
            _take_lock(self.lock, self.target or self.lock, self.error)
        except BaseException:
            _remove_empty(self.created)
            raise
        self.held = True
        return self

    def __exit__(self, *exc) -> None:
        if self.held and self.lock is not None:
            self.lock.unlink(missing_ok=True)
            self.held = False
        _remove_empty(self.created)


def _make_folders(folder: Path, option: str, error: type[A3BenchError]) -> list[Path]:
    missing = []
    p = folder
    while not (p.exists() or p.is_symlink()) and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create the folder of {option} {_shown(folder)}: {e.strerror or e}") from None
    return missing  # deepest first


def _remove_empty(folders: list[Path]) -> None:
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return  # not empty (the run wrote there) or gone: keep the rest too


def check_output_path(out: str | os.PathLike, loaded: Any = None) -> None:
    """A record path (``attack --out``), checked before any work."""
    check_output(out, RECORD, loaded=loaded)


def _take_lock(lock: Path, out: Path, error: type[A3BenchError] = AttackError) -> None:
    me = f"{os.getpid()} {socket.gethostname()}\n"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            if _lock_alive(lock):
                owner = _read_lock(lock)[0]
                raise error(f"another a3bench run (pid {one_line(owner or '?', 20)}) is writing {_shown(out)}; "
                            f"wait for it or remove {_shown(lock)} if it is gone") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        except OSError as e:
            raise error(f"cannot write beside {_shown(out)}: {e.strerror or e}") from None
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return
    raise error(f"cannot lock {_shown(out)}: {_shown(lock)} keeps coming back")


def _read_lock(lock: Path) -> list[str]:
    from a3bench.io import read_regular_bytes

    try:
        text = read_regular_bytes(lock, 4096, "lock file").decode(errors="replace")
    except ResultError:
        return ["", ""]
    return (text.split() + ["", ""])[:2]


def _lock_alive(lock: Path) -> bool:
    pid_text, host = _read_lock(lock)
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if host and host != socket.gethostname():
        return True  # another machine's run: cannot check, assume alive
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed run whose parent is gone too can linger unreaped (state Z) where PID 1 does
    not reap, as in many containers: it holds nothing, so its lock is stale."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rpartition(")")[2].split()[:1] == ["Z"]


# --------------------------------------------------------------------------- run ids


def run_id_of(outcomes: Any) -> str:
    """A run's id: derived from its per-example outcomes (without the id), so the same
    evaluation — resumed, sharded or rerun — writes the same bytes, and a record can never
    be paired with outcomes other than its own without the ids disagreeing."""
    d = outcomes.to_dict()
    d.pop("run_id", None)
    return hashlib.sha256(json_text(d).encode()).hexdigest()[:16]


def write_run(out: str | os.PathLike, record: Any, outcomes: Any, audit: Any = None, adv: Any = None) -> Path:
    """Write a record with its outcomes (and audit, and adversarial examples:
    :class:`~a3bench.advfile.AdvExamples`) under one run id, together or not at all: every
    file is staged first, then renamed into place, the record last (a failure half-way — a
    full disk — leaves the previous files as they were). Without ``adv``, an
    adversarial-examples file of an earlier run beside the record is removed afterwards:
    it would not be this record's."""
    from a3bench.schema import write_audit, write_outcomes, write_record

    out = Path(out)
    rid = run_id_of(outcomes)
    outcomes.run_id = record.run_id = rid
    opath = outcomes_path(out)
    record.outcomes_file = opath.name
    if audit is not None:
        audit.run_id = rid
    if adv is not None:
        from a3bench.advfile import write_adv

        adv.run_id = rid
        if record.adv is not None:
            record.adv["file"] = adv_path(out).name
    with staged_writes():
        write_outcomes(opath, outcomes)
        if audit is not None:
            write_audit(audit_path(out), audit)
        if adv is not None:
            write_adv(adv_path(out), adv)
        write_record(out, record)
    if adv is None and _is_adv(adv_path(out)):
        adv_path(out).unlink(missing_ok=True)
    return out


def verify_run_ids(record_path: str | os.PathLike) -> list[str]:
    """What does not belong together around the record at ``record_path``: outcomes, an
    audit or an adversarial-examples file from another run. [] when everything there is the
    record's own (or carries no id, as files from before run ids). Files that are missing
    are not problems here. The adversarial examples are only peeked at (their tensors
    mapped, not read)."""
    from a3bench.schema import read_audit, read_json, read_record

    path = Path(record_path)
    try:
        record = read_record(path)
    except ResultError as e:
        return [str(e)]
    problems: list[str] = []
    rid = record.run_id
    named = path.parent / Path(record.outcomes_file).name if record.outcomes_file else None
    for p in dict.fromkeys(x for x in (named, outcomes_path(path)) if x is not None):
        if not p.is_file():
            continue
        try:
            data = read_json(p, "outcomes file")
        except ResultError as e:
            problems.append(str(e))
            continue
        theirs = data.get("run_id") if isinstance(data, dict) else None
        if theirs != rid:
            problems.append(_mismatch(p, theirs, path, rid))
        break  # the file the record names wins, as in report/load.py
    def adv_run_id(p: Path) -> str | None:
        from a3bench.advfile import peek_run_id

        return peek_run_id(p)

    # the sidecars the record may name: an unreadable one is a problem only when it does
    sidecars = ((audit_path(path), lambda p: read_audit(p).run_id, record.audit), (adv_path(path), adv_run_id, record.adv))
    for side, run_id_of, named in sidecars:
        if not side.is_file():
            continue
        try:
            theirs = run_id_of(side)
        except ResultError as e:
            if named:
                problems.append(str(e))
            continue
        if (named or theirs is not None) and theirs != rid:
            problems.append(_mismatch(side, theirs, path, rid))
    return problems


def _mismatch(side: Path, theirs: Any, record: Path, ours: str | None) -> str:
    def name(v):
        return "no run id" if v is None else f"run {one_line(str(v), 40)}"

    return (f"{side} is from another run ({name(theirs)}) than the record {record} ({name(ours)}): "
            "they were not written together; rerun the evaluation")
