"""The bundled model zoo: ``model_zoo/<name>/`` holds ``model.pt``, ``card.yaml`` and the
training config. Names keep architecture apart from weights: ``smallcnn.a3_joint_fmnist``."""

from __future__ import annotations

import os
from pathlib import Path

from a3bench.bundled import bundled_path
from a3bench.errors import ModelSpecError
from a3bench.io import is_file

DEFAULT_MODEL = "smallcnn.a3_joint_fmnist"
ZOO_ENV = "A3BENCH_ZOO"


def zoo_dirs() -> list[Path]:
    """Folders searched for zoo entries, first match wins: each folder in ``$A3BENCH_ZOO``
    (``os.pathsep``-separated), ``./model_zoo``, then the zoo bundled with a3bench (inside
    the installed package, or the checkout's ``model_zoo/``)."""
    dirs = [Path(d) for d in os.environ.get(ZOO_ENV, "").split(os.pathsep) if d]
    dirs.append(Path.cwd() / "model_zoo")
    bundled = bundled_path("model_zoo")
    if bundled is not None:
        dirs.append(bundled)
    seen, out = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def zoo_path(name: str) -> Path | None:
    if not name or name in (".", "..") or Path(name).name != name:
        return None  # a zoo name is one folder name, never a path out of the zoo
    for d in zoo_dirs():
        p = d / name / "model.pt"
        if is_file(p):
            return p
    return None


def list_zoo() -> list[str]:
    names = set()
    for d in zoo_dirs():
        if d.is_dir():
            names.update(p.parent.name for p in d.glob("*/model.pt"))
    return sorted(names)


def zoo_card(name: str):
    """The model card (:class:`~a3bench.schema.ModelCard`: reported accuracy, link, authors ...)
    of a zoo entry; an empty card if it has none. A malformed card is a one-line error."""
    from a3bench.errors import ResultError
    from a3bench.schema import ModelCard, read_card

    path = zoo_path(name)
    card = path.parent / "card.yaml" if path is not None else None
    if card is None or not card.is_file():
        return ModelCard()
    try:
        return read_card(card)
    except ResultError as e:
        raise ModelSpecError(str(e)) from None
