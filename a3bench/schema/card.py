"""The model card ``model_zoo/<name>/card.yaml`` (model_zoo/README.md)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3bench.errors import ResultError
from a3bench.schema.base import _from_dict

# --------------------------------------------------------------------------- model cards


@dataclass
class ModelCard:
    """``model_zoo/<name>/card.yaml``: what a zoo model is, for records and leaderboards.

    Known fields are typed; anything else a card carries (training details, a defense's
    own settings) is kept in ``extra`` as it is.
    """

    name: str | None = None
    description: str | None = None
    architecture: str | None = None
    dataset: str | None = None
    link: str | None = None
    authors: str | list[str] | None = None
    venue: str | None = None
    additional_data: bool = False
    number_forward_passes: int = 1
    reported: float | None = None
    footnote: str | None = None
    threat_model: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> "ModelCard":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise ResultError("a model card must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        card = _from_dict(cls, {k: v for k, v in d.items() if k in known}, "")
        card.extra = {str(k): v for k, v in d.items() if k not in known}
        if not 1 <= card.number_forward_passes <= 1_000_000:
            raise ResultError(f"number_forward_passes must be in 1…1000000, got {card.number_forward_passes}")
        return card

    @property
    def authors_text(self) -> str | None:
        return ", ".join(self.authors) if isinstance(self.authors, list) else self.authors


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read a card.yaml: bounded YAML (:mod:`a3bench.limits`: size, aliases and expanded size
    capped, plain data only), then every field a3bench reads typed."""
    from a3bench.limits import check_plain, read_yaml

    data = read_yaml(Path(path), ResultError)
    check_plain(data, str(path), ResultError)
    try:
        return ModelCard.from_dict(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None
