"""Adversarial examples as files: what a run keeps beside its outcomes, and what
``a3bench verify`` reads (docs/results.md#adversarial-examples-advpt, docs/verify.md).

Every evaluation keeps, for each example an attack broke, the point the judge confirmed
and the attack that found it: ``<stem>.adv.pt`` beside the record (and, while it runs,
``<stem>.adv.state.pt`` beside the resume state). The file is a dict of tensors and plain
values that ``torch.load(..., weights_only=True)`` reads — no pickled objects::

    {"format": "a3bench-adv", "version": 1, "run_id": str | None,
     "dataset": str, "norm": "Linf" | "L2", "eps": float, "n_examples": int,
     "positions": int64 [N],          # positions in the test split (the outcomes' indices)
     "points": float32 [N, C, H, W],  # on [0,1] pixels, exactly as the judge re-checked them
     "attack": int16 [N],             # index into "attacks"
     "attacks": [str, ...]}

Every such file, and every tensor file ``verify --adv`` is given, is untrusted input
(docs/untrusted-input.md): a regular file of at most :data:`~a3bench.limits.MAX_ADV_BYTES`
(checked before a byte is loaded), torch.save's zip archive of stored entries, loaded with
``weights_only=True`` (a pickle that would run code is refused), every key known, every
tensor of its dtype and shape, finite, on [0,1] pixels, and holding no more elements than
the file stores. Anything else is one line.

Nothing here imports torch at module level: ``report`` and ``check`` stay light.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from a3bench.errors import A3BenchError, ResultError, excerpt, one_line

ADV_FORMAT = "a3bench-adv"
ADV_VERSION = 1
ADV_KEYS = frozenset({"format", "version", "run_id", "dataset", "norm", "eps", "n_examples", "positions", "points", "attack",
                      "attacks"})
# What ``verify --adv`` accepts: a bare tensor, or a dict holding it under RobustBench's or
# AutoAttack's name, with an optional count that must be the tensor's.
EXTERNAL_TENSOR_KEYS = ("x_adv", "adv_complete")
EXTERNAL_COUNT_KEY = "n_examples"
PIXEL_TOL = 1e-6  # the judge's tolerance (threat.BUDGET_TOL)
MAX_NAME = 200
_MARKER = ADV_FORMAT.encode()


@dataclass
class AdvExamples:
    """The adversarial examples of one evaluation, one per example an attack broke."""

    positions: Any  # torch int64 [N]: positions in the test split
    points: Any  # torch float32 [N, C, H, W]
    attack: Any  # torch int16 [N]: index into ``attacks``
    attacks: list[str]
    n_examples: int  # the evaluation's n (the points are for some of its examples)
    dataset: str
    norm: str
    eps: float
    run_id: str | None = None

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def attack_of(self, i: int) -> str:
        return self.attacks[int(self.attack[i])]

    def payload(self) -> dict[str, Any]:
        return {"format": ADV_FORMAT, "version": ADV_VERSION, "run_id": self.run_id, "dataset": self.dataset,
                "norm": self.norm, "eps": float(self.eps), "n_examples": int(self.n_examples),
                "positions": self.positions, "points": self.points, "attack": self.attack, "attacks": list(self.attacks)}

    @classmethod
    def empty(cls, shape: tuple[int, ...], *, n_examples: int, dataset: str, norm: str, eps: float) -> "AdvExamples":
        import torch

        return cls(torch.zeros(0, dtype=torch.int64), torch.zeros((0, *shape), dtype=torch.float32),
                   torch.zeros(0, dtype=torch.int16), [], n_examples, dataset, norm, eps)


@dataclass
class KeptPoints:
    """A running evaluation's points: per example (its index in evaluation order) the point
    the judge confirmed broken and the attack that found it (:mod:`a3bench.eval.runner`).
    ``dirty``: points came in since the resume state was last saved."""

    rows: dict[int, tuple[str, Any]] = field(default_factory=dict)
    dirty: bool = False

    def add(self, k: int, attack: str, point) -> None:
        self.rows[int(k)] = (attack, point)
        self.dirty = True

    def __len__(self) -> int:
        return len(self.rows)

    def examples(self, positions, shape: tuple[int, ...], *, n_examples: int, dataset: str, norm: str, eps: float,
                 keep: Callable[[int, str], bool] = lambda k, attack: True) -> AdvExamples:
        """The kept points as a file's content, in evaluation order; ``keep(k, attack)``
        chooses which (the runner keeps those its outcomes say an attack broke)."""
        import torch

        ks = sorted(k for k, (attack, _) in self.rows.items() if keep(k, attack))
        if not ks:
            return AdvExamples.empty(shape, n_examples=n_examples, dataset=dataset, norm=norm, eps=eps)
        names: list[str] = []
        for k in ks:
            if self.rows[k][0] not in names:
                names.append(self.rows[k][0])
        index = {name: i for i, name in enumerate(names)}
        return AdvExamples(
            positions=torch.as_tensor([int(positions[k]) for k in ks], dtype=torch.int64),
            points=torch.stack([self.rows[k][1] for k in ks]).to(torch.float32).contiguous(),
            attack=torch.as_tensor([index[self.rows[k][0]] for k in ks], dtype=torch.int16),
            attacks=names, n_examples=n_examples, dataset=dataset, norm=norm, eps=eps)


# --------------------------------------------------------------------------- writing


def write_adv(path: str | os.PathLike, adv: AdvExamples) -> None:
    """Atomically (inside :func:`~a3bench.io.staged_writes`: with the files it belongs to)."""
    import torch

    from a3bench.io import atomic_write_bytes

    atomic_write_bytes(path, lambda f: torch.save(adv.payload(), f))


# --------------------------------------------------------------------------- reading untrusted tensor files


def is_adv_file(path: Path) -> bool:
    """Whether ``path`` is an adversarial-examples file a3bench wrote (the output guard
    replaces only those): its pickle names the format. Cheap: the points are not read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return False
        with zipfile.ZipFile(path) as archive:
            entries = [e for e in archive.infolist() if e.filename.endswith("data.pkl") and e.file_size <= 1 << 20]
            return any(_MARKER in archive.read(e) for e in entries[:1])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, KeyError):
        return False


def load_tensor_file(path: str | os.PathLike, what: str, error: type[A3BenchError] = ResultError, *, mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` of a file someone else may have made, or one
    ``error`` line: a regular file (a FIFO or a device is refused, never waited on) of at
    most MAX_ADV_BYTES, checked before a byte is loaded; torch.save's zip archive of stored
    entries (a compressed entry cannot expand); no pickled object (nothing runs).
    ``mmap``: map the tensors instead of reading them (peeking at the plain values)."""
    import torch

    from a3bench.limits import MAX_ADV_BYTES

    path = Path(path)
    shown = one_line(str(path), 200)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {shown} does not exist") from None
    except (OSError, ValueError) as e:
        raise error(f"cannot read {shown}: {getattr(e, 'strerror', None) or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{shown} is a folder, not a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{shown} is not a regular file (a device, FIFO or socket), so not a {what}")
        if st.st_size > MAX_ADV_BYTES:
            raise error(f"{shown} is {st.st_size} bytes; a3bench reads a {what} of up to {MAX_ADV_BYTES} bytes")
        os.set_blocking(fd, True)
        if f.read(2) != b"PK":
            raise error(f"{shown} is not a tensor file (not the zip archive torch.save writes)")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            raise error(f"{shown} is not a readable tensor file (truncated or damaged zip archive): {one_line(e, 120)}") from None
        for entry in entries:
            if entry.compress_type != zipfile.ZIP_STORED or entry.file_size > st.st_size:
                raise error(f"{shown}: entry {excerpt(entry.filename, 60)} is compressed or larger than the file; torch.save writes neither")
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if mmap:
                    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                return torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            named = re.search(r"GLOBAL ([\w.]+)", str(e))  # what the pickle asked for (torch's message is pages long)
            raise error(f"refused to load {shown}: it holds objects other than tensors and plain data (loading it could run "
                        f"code{': it names ' + named.group(1) if named else ''}); nothing in it ran") from None
        except Exception as e:  # noqa: BLE001 — weights_only: nothing ran; a damaged or foreign file
            raise error(f"{shown} is not a readable {what} (truncated or another format): {type(e).__name__}: {one_line(e, 120)}") from None


def _stored(t, name: str, shown: str, error: type[A3BenchError]) -> None:
    """A view can claim any size over a few stored bytes (stride 0): refuse what is not stored."""
    if t.numel() and t.numel() * t.element_size() > t.untyped_storage().nbytes():
        raise error(f"{shown}: {name} claims more data than the file stores for it")


def check_pixels(points, name: str, shown: str, error: type[A3BenchError]) -> None:
    """Finite values on [0,1] pixels (tolerance 1e-6, as the judge's): anything else is not
    an image a3bench evaluates, and the whole file is refused with one line."""
    import torch

    if points.numel() == 0:
        return
    flat = points.reshape(points.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise error(f"{shown}: {name}[{i}] holds NaN or infinite values")
    low, high = float(flat.min()), float(flat.max())
    if low < -PIXEL_TOL or high > 1 + PIXEL_TOL:
        bad = ((flat < -PIXEL_TOL) | (flat > 1 + PIXEL_TOL)).any(dim=1)
        i = int(bad.nonzero()[0])
        raise error(f"{shown}: {name} holds values outside [0,1] (from {low:.6g} to {high:.6g}; first at {name}[{i}]): "
                    "a3bench evaluates images on [0,1] pixels")


def read_adv(path: str | os.PathLike, error: type[A3BenchError] = ResultError, *, peek: bool = False) -> AdvExamples:
    """An adversarial-examples file a3bench wrote, every part checked (see the module
    docstring); one ``error`` line on the first problem. ``peek``: map the tensors and
    check only the plain values (the run id, for ``check`` and ``report``)."""
    import torch

    shown = one_line(str(path), 200)
    what = "adversarial-examples file"
    d = load_tensor_file(path, what, error, mmap=peek)
    if not isinstance(d, dict) or d.get("format") != ADV_FORMAT:
        raise error(f"{shown} is not an a3bench {what} (no 'format: {ADV_FORMAT}')")
    if d.get("version") != ADV_VERSION:
        raise error(f"{shown}: version {excerpt(d.get('version'), 30)}; this a3bench reads {ADV_VERSION}")
    extra = sorted(str(k) for k in d if k not in ADV_KEYS)
    if extra:
        raise error(f"{shown}: unknown key(s) {excerpt(', '.join(extra), 80)}")
    missing = sorted(ADV_KEYS - set(d))
    if missing:
        raise error(f"{shown}: missing {', '.join(missing)}")
    for key in ("dataset", "norm"):
        if not isinstance(d[key], str) or not 0 < len(d[key]) <= MAX_NAME:
            raise error(f"{shown}: {key} must be a short string, got {excerpt(d[key])}")
    if d["run_id"] is not None and (not isinstance(d["run_id"], str) or len(d["run_id"]) > MAX_NAME):
        raise error(f"{shown}: run_id must be a short string, got {excerpt(d['run_id'])}")
    eps = d["eps"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise error(f"{shown}: eps must be a finite number ≥ 0, got {excerpt(eps)}")
    n = d["n_examples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise error(f"{shown}: n_examples must be an integer ≥ 0, got {excerpt(n)}")
    attacks = d["attacks"]
    if not isinstance(attacks, list) or len(attacks) > 10_000 or not all(isinstance(a, str) and 0 < len(a) <= MAX_NAME for a in attacks):
        raise error(f"{shown}: attacks must be a list of attack names, got {excerpt(attacks)}")
    spec = {"positions": (torch.int64, 1), "points": (torch.float32, 4), "attack": (torch.int16, 1)}
    for key, (dtype, dims) in spec.items():
        t = d[key]
        if not isinstance(t, torch.Tensor) or t.dtype != dtype or t.dim() != dims:
            got = f"a {t.dtype} tensor of {t.dim()} dimension(s)" if isinstance(t, torch.Tensor) else type(t).__name__
            raise error(f"{shown}: {key} must be a {dtype} tensor of {dims} dimension(s), got {got}")
        _stored(t, key, shown, error)
    m = d["positions"].shape[0]
    if d["points"].shape[0] != m or d["attack"].shape[0] != m:
        raise error(f"{shown}: positions, points and attack differ in length ({m}, {d['points'].shape[0]}, {d['attack'].shape[0]})")
    if m > n:
        raise error(f"{shown}: {m} points for an evaluation of n_examples = {n}")
    adv = AdvExamples(d["positions"], d["points"], d["attack"], list(attacks), n, d["dataset"], d["norm"], float(eps), d["run_id"])
    if peek:
        return adv
    if m:
        if int(adv.positions.min()) < 0 or len(set(adv.positions.tolist())) != m:
            raise error(f"{shown}: positions must be distinct and ≥ 0")
        if int(adv.attack.min()) < 0 or int(adv.attack.max()) >= len(attacks):
            raise error(f"{shown}: attack holds an index outside its {len(attacks)} attack name(s)")
    check_pixels(adv.points, "points", shown, error)
    return adv


def peek_run_id(path: str | os.PathLike) -> str | None:
    """The run id an adversarial-examples file carries (ResultError if it is not one)."""
    return read_adv(path, ResultError, peek=True).run_id


def read_external_adv(path: str | os.PathLike, error: type[A3BenchError] = ResultError):
    """A RobustBench-style tensor of adversarial images (``verify --adv``): a bare tensor of
    N×C×H×W floats, or a dict holding it under ``x_adv`` (or AutoAttack's ``adv_complete``)
    with an optional ``n_examples`` that must be N. Returned as float32; finite, on [0,1]."""
    import torch

    shown = one_line(str(path), 200)
    d = load_tensor_file(path, "tensor file", error)
    claimed = None
    if isinstance(d, dict):
        keys = [k for k in EXTERNAL_TENSOR_KEYS if k in d]
        extra = sorted(str(k) for k in d if k not in (*EXTERNAL_TENSOR_KEYS, EXTERNAL_COUNT_KEY))
        if len(keys) != 1 or extra:
            raise error(f"{shown}: a dict must hold the adversarial images under exactly one of "
                        f"{', '.join(EXTERNAL_TENSOR_KEYS)} (and optionally {EXTERNAL_COUNT_KEY}); "
                        + (f"unknown key(s) {excerpt(', '.join(extra), 80)}" if extra else f"found {len(keys)}"))
        claimed = d.get(EXTERNAL_COUNT_KEY)
        name, t = keys[0], d[keys[0]]
    else:
        name, t = "the tensor", d
    if not isinstance(t, torch.Tensor):
        raise error(f"{shown}: {name} is a {type(t).__name__}, not a tensor of adversarial images")
    if not t.is_floating_point():
        raise error(f"{shown}: {name} is a {t.dtype} tensor; adversarial images are floating-point pixels on [0,1]")
    if t.dim() != 4:
        raise error(f"{shown}: {name} has shape {tuple(t.shape)}; expected N×C×H×W images")
    _stored(t, name, shown, error)
    if claimed is not None and (isinstance(claimed, bool) or not isinstance(claimed, int) or claimed != t.shape[0]):
        raise error(f"{shown}: {EXTERNAL_COUNT_KEY} says {excerpt(claimed, 30)}, but {name} holds {t.shape[0]} image(s)")
    points = t.detach().to(torch.float32).contiguous()
    check_pixels(points, "x_adv", shown, error)
    return points
