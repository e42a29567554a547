"""The resume state of a running evaluation ``<model>.state.json``, validated like any
untrusted input (docs/results.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from a3bench.errors import ResultError
from a3bench.io import write_json_atomic
from a3bench.schema.base import AttackStatus, STATE_VERSION, _coerce, _from_dict, _plain, _read, _short
from a3bench.schema.record import AttackRecord, Flag, _at_least, _in

# --------------------------------------------------------------------------- resume state


@dataclass
class ResumeState:
    """A running evaluation, saved atomically after every batch (``<stem>.state.json``).

    ``identity`` pins what the numbers depend on (weights, examples, threat, seed, batch
    size); ``attacks`` the cascade so far. Resuming is refused when the identity differs,
    or when the finished attacks are not the first attacks of the new plan, so two
    evaluations are never mixed; a plan that only adds attacks after them extends it.
    """

    identity: dict[str, Any]
    clean_pred: list[int]
    broken_by: list[str | None]
    adv_pred: list[int | None]
    adv_distance: list[float | None]
    finished: list[AttackRecord] = field(default_factory=list)  # in cascade order
    current: dict[str, Any] | None = None  # {"index", "todo", "batches_done", "record", "unconfirmed"}
    flags: list[Flag] = field(default_factory=list)
    unconfirmed: dict[str, int] = field(default_factory=dict)
    aa_warnings: list[str] = field(default_factory=list)
    violations: dict[str, int] = field(default_factory=dict)  # only when not strict
    correct_share: list[float | None] | None = None  # randomised models: share of draws still correct
    nonfinite: int = 0  # verdicts whose logits were not finite (clean pass and re-checks)
    diagnostics: dict[str, Any] = field(default_factory=dict)  # gradient check and lie location, before the cascade
    escalation: dict[str, Any] | None = None  # the escalation plan, once one fired (its attacks join the plan)
    rising: list[int] = field(default_factory=list)  # examples whose loss still rose at the end of the probed PGD
    elapsed: float = 0.0  # seconds the evaluation has run so far, over every session that resumed it
    state_version: int = STATE_VERSION

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: Any) -> "ResumeState":
        if not isinstance(d, dict):
            raise ResultError("a resume state must be a JSON object")
        if d.get("state_version") != STATE_VERSION:
            raise ResultError(f"state version {_short(d.get('state_version'))}, not {STATE_VERSION}")
        state = _from_dict(cls, d, "")
        n = len(state.clean_pred)
        if not (len(state.broken_by) == len(state.adv_pred) == len(state.adv_distance) == n):
            raise ResultError("per-example lists differ in length")
        _check_state(state, n)
        return state


@dataclass
class CurrentAttack:
    """``state.current``: the attack that was running (the runner keeps it as a plain object)."""

    index: int
    todo: list[int]
    record: AttackRecord
    batches_done: int = 0
    unconfirmed: int = 0
    unit: int | None = None  # examples per batch of this attack (a state from before units: --batch-size)


@dataclass
class EscalationState:
    """``state.escalation``: what was added when the gradients were found to lie
    (docs/diagnostics.md#escalation)."""

    attacks: list[str] = field(default_factory=list)
    reason: str | None = None
    triggers: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    max_passes: int | None = None
    withdrawn: str | None = None


def _check_state(state: "ResumeState", n: int) -> None:
    """Every part of an (edited) resume state the runner reads, in range; ``current`` and
    the identity's attack list normalised to what the runner wrote."""
    attacks = state.identity.get("attacks")
    if attacks is not None:
        _coerce(attacks, list[dict[str, Any]], "identity.attacks")
        for i, a in enumerate(state.finished):  # the finished attacks are the plan's first ones, by name too
            if i < len(attacks) and a.name != attacks[i].get("name"):
                raise ResultError(f"finished[{i}].name {_short(a.name)} is not the plan's attack {_short(attacks[i].get('name'))}")
    for i, k in enumerate(state.rising):
        if not 0 <= k < n:
            raise ResultError(f"rising[{i}] = {k} is not an example of this run (0…{n - 1})")
    if state.correct_share is not None:
        if len(state.correct_share) != n:
            raise ResultError("correct_share differs in length from the per-example lists")
        for i, v in enumerate(state.correct_share):
            if v is not None and not 0 <= v <= 1:
                raise ResultError(f"correct_share[{i}] must be in [0, 1], got {_short(v)}")
    for i, v in enumerate(state.adv_distance):
        _at_least(v, f"adv_distance[{i}]")
    for name, table in (("unconfirmed", state.unconfirmed), ("violations", state.violations)):
        for key, count in table.items():
            _at_least(count, f"{name}.{key}")
    _at_least(state.nonfinite, "nonfinite")
    for i, a in enumerate(state.finished):
        for name in ("broken", "n_attacked", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(a, name), f"finished[{i}].{name}")
        _in(a.robust_acc, f"finished[{i}].robust_acc")
        if a.robust_acc is None and a.status is AttackStatus.RAN and n:
            raise ResultError(f"finished[{i}].robust_acc is missing for an attack that ran")
    if state.escalation is not None:
        _from_dict(EscalationState, state.escalation, "escalation")
    if state.current is not None:
        cur = _from_dict(CurrentAttack, state.current, "current")
        if cur.index != len(state.finished):
            raise ResultError(f"current.index {cur.index} is not the attack after the {len(state.finished)} finished one(s)")
        for i, k in enumerate(cur.todo):
            if not 0 <= k < n:
                raise ResultError(f"current.todo[{i}] = {k} is not an example of this run (0…{n - 1})")
        if len(set(cur.todo)) != len(cur.todo):
            raise ResultError("current.todo lists an example twice")
        _at_least(cur.batches_done, "current.batches_done")
        bs = cur.unit if cur.unit is not None else state.identity.get("batch_size")
        if cur.unit is not None and cur.unit < 1:
            raise ResultError(f"current.unit must be ≥ 1, got {cur.unit}")
        if isinstance(bs, int) and not isinstance(bs, bool) and bs > 0 and cur.batches_done > -(-len(cur.todo) // bs):
            raise ResultError(f"current.batches_done {cur.batches_done} is more than its {len(cur.todo)} example(s) make")
        _at_least(cur.unconfirmed, "current.unconfirmed")
        for name in ("broken", "n_attacked", "forward_passes", "backward_passes", "seconds"):
            _at_least(getattr(cur.record, name), f"current.record.{name}")
        state.current = {"index": cur.index, "todo": cur.todo, "batches_done": cur.batches_done,
                         "record": _plain(cur.record), "unconfirmed": cur.unconfirmed,
                         **({"unit": cur.unit} if cur.unit is not None else {})}


def write_state(path: str | os.PathLike, state: ResumeState) -> None:
    write_json_atomic(path, state.to_dict())


def read_state(path: str | os.PathLike) -> ResumeState:
    try:
        return _read(ResumeState, path, "resume state")
    except ResultError as e:
        raise ResultError(f"{e}; delete it to start over") from None
