"""The per-example outcomes beside a record, ``<model>.outcomes.json`` (docs/results.md)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3bench.errors import ResultError
from a3bench.io import write_json_atomic
from a3bench.schema.base import _coerce, _from_dict, _plain, _read, _short

# --------------------------------------------------------------------------- per-example outcomes


@dataclass
class Outcomes:
    """Per example, in evaluation order (``<stem>.outcomes.json``).

    ``robust[i]``: classified correctly and no attack broke it. Written files hold every
    field; a reader also accepts a file with only ``robust`` or only ``clean_correct`` +
    ``broken_by`` (then ``robust`` is derived) — without ``indices`` two files cannot be
    shown to cover the same examples.
    """

    robust: list[bool]
    indices: list[int] | None = None  # positions in the dataset's test split
    labels: list[int] | None = None
    clean_pred: list[int] | None = None
    clean_correct: list[bool] | None = None
    broken_by: list[str | None] | None = None  # "clean" if misclassified without attack; None if robust
    adv_pred: list[int | None] | None = None  # deployed prediction on the adversarial example that broke it
    adv_distance: list[float | None] | None = None  # its distance to x in the threat model's norm
    # randomised models (docs/architecture.md#the-judge): the share of fresh draws that classify the final
    # adversarial example (or x) correctly; None for deterministic models
    correct_share: list[float | None] | None = None
    run_id: str | None = field(default=None, compare=False)  # the record's (docs/results.md): not an outcome
    path: Path | None = field(default=None, compare=False, metadata={"json": False})

    @property
    def n(self) -> int:
        return len(self.robust)

    def broken_counts(self) -> dict[str, int]:
        """How many examples each attack broke (first breaker only, as the cascade records)."""
        counts: dict[str, int] = {}
        for ok, by in zip(self.clean_correct or [True] * self.n, self.broken_by or []):
            if ok and by is not None:
                counts[by] = counts.get(by, 0) + 1
        return counts

    def to_dict(self) -> dict:
        d = _plain(self)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: Any) -> "Outcomes":
        if not isinstance(d, dict):
            raise ResultError("an outcomes file must be a JSON object")
        if "robust" not in d:
            if "clean_correct" not in d or "broken_by" not in d:
                raise ResultError("needs 'robust' or both 'clean_correct' and 'broken_by'")
            d = dict(d)
            cc = _coerce(d["clean_correct"], list[bool], "clean_correct")
            bb = _coerce(d["broken_by"], list[str | None], "broken_by")
            if len(cc) != len(bb):
                raise ResultError("'clean_correct' and 'broken_by' differ in length")
            d["robust"] = [c and b is None for c, b in zip(cc, bb)]
        out = _from_dict(cls, d, "")
        for f in dataclasses.fields(cls):
            v = getattr(out, f.name)
            if isinstance(v, list) and len(v) != out.n:
                raise ResultError(f"{f.name!r} has {len(v)} entries, expected {out.n}")
        if out.clean_correct is not None and out.broken_by is not None:
            for i, (r, c, b) in enumerate(zip(out.robust, out.clean_correct, out.broken_by)):
                if r != (c and b is None):
                    raise ResultError(f"robust[{i}] is {str(r).lower()}, but clean_correct and broken_by say otherwise")
        for i, share in enumerate(out.correct_share or []):
            if share is not None and not 0 <= share <= 1:
                raise ResultError(f"correct_share[{i}] must be in [0, 1], got {_short(share)}")
        return out


def write_outcomes(path: str | os.PathLike, outcomes: Outcomes) -> None:
    write_json_atomic(path, outcomes.to_dict())


def read_outcomes(path: str | os.PathLike) -> Outcomes:
    out = _read(Outcomes, path, "outcomes file")
    out.path = Path(path)
    return out
