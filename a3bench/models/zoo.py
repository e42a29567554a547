"""The bundled model zoo: ``model_zoo/<name>/`` holds ``model.pt``, ``card.yaml`` and the
training config. Names keep architecture apart from weights: ``smallcnn.a3_joint_fmnist``."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "smallcnn.a3_joint_fmnist"


def zoo_dirs() -> list[Path]:
    """Folders searched for zoo entries: $A3BENCH_ZOO, ./model_zoo, the source tree's model_zoo."""
    dirs = []
    if os.environ.get("A3BENCH_ZOO"):
        dirs.append(Path(os.environ["A3BENCH_ZOO"]))
    dirs.append(Path.cwd() / "model_zoo")
    dirs.append(Path(__file__).resolve().parents[2] / "model_zoo")
    seen, out = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def zoo_path(name: str) -> Path | None:
    for d in zoo_dirs():
        p = d / name / "model.pt"
        if p.is_file():
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
    from a3bench.errors import ModelSpecError, ResultError
    from a3bench.schema import ModelCard, read_card

    path = zoo_path(name)
    card = path.parent / "card.yaml" if path is not None else None
    if card is None or not card.is_file():
        return ModelCard()
    try:
        return read_card(card)
    except ResultError as e:
        raise ModelSpecError(str(e)) from None
