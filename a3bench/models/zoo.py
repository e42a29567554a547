"""The bundled model zoo: ``model_zoo/<name>/`` holds ``model.pt``, ``card.yaml`` and the
training config. Names keep architecture apart from weights: ``smallcnn.a3_joint_fmnist``."""

from __future__ import annotations

import os
from pathlib import Path

from a3bench.errors import ModelSpecError, excerpt
from a3bench.io import is_file
from a3bench.limits import check_count, check_number, check_plain, read_yaml

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
        if is_file(p):
            return p
    return None


def list_zoo() -> list[str]:
    names = set()
    for d in zoo_dirs():
        if d.is_dir():
            names.update(p.parent.name for p in d.glob("*/model.pt"))
    return sorted(names)


# Fields of a card that a3bench reads, with the types they must have (or null). Cards are
# free-form beyond these, but any card is bounded plain data (a3bench.limits).
_CARD_TEXT = ("name", "description", "link", "venue", "footnote", "architecture", "dataset", "objective", "method", "a3bench_version")
_CARD_MAPPINGS = ("threat_model", "a3", "training", "metrics")


def zoo_card(name: str) -> dict:
    """The model card (reported accuracy, link, authors, ...) of a zoo entry; {} if none.
    A card that is not a bounded mapping with the fields above typed is a ModelSpecError."""
    path = zoo_path(name)
    if path is None:
        return {}
    card = path.parent / "card.yaml"
    if not card.is_file():
        return {}
    data = read_yaml(card, ModelSpecError)
    if data is None:
        return {}
    check_card(data, str(card))
    return data


def check_card(card: object, source: str) -> None:
    """Refuse a card whose fields a3bench reads hold the wrong types."""
    if not isinstance(card, dict):
        raise ModelSpecError(f"{source}: a model card must be a mapping, got {excerpt(card)}")
    check_plain(card, source, ModelSpecError)

    def wrong(key: str, what: str) -> ModelSpecError:
        return ModelSpecError(f"{source}: {key} must be {what}, got {excerpt(card[key])}")

    for key in _CARD_TEXT:
        if card.get(key) is not None and not isinstance(card[key], str):
            raise wrong(key, "text")
    for key in _CARD_MAPPINGS:
        if card.get(key) is not None and not isinstance(card[key], dict):
            raise wrong(key, "a mapping")
    authors = card.get("authors")
    if authors is not None and not isinstance(authors, str) and not (isinstance(authors, list) and all(isinstance(a, str) for a in authors)):
        raise wrong("authors", "text or a list of names")
    if card.get("reported") is not None:
        check_number(card["reported"], f"{source}: reported", ModelSpecError)
    if "additional_data" in card and not isinstance(card["additional_data"], bool):
        raise wrong("additional_data", "true or false")
    if "number_forward_passes" in card:
        check_count(card["number_forward_passes"], f"{source}: number_forward_passes", 1, 1_000_000, ModelSpecError)
