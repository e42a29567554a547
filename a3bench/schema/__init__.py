"""Every file a3bench writes and reads back, in one place (docs/results.md).

- the result record ``results/<dataset>/<norm>/<model>.json`` (:class:`ResultRecord`),
- the per-example outcomes beside it ``<model>.outcomes.json`` (:class:`Outcomes`),
- the eps sweep ``<model>.sweep.json`` (:class:`SweepRecord`),
- the resume state of a running evaluation ``<model>.state.json`` (:class:`ResumeState`),
- the model card ``model_zoo/<name>/card.yaml`` (:class:`ModelCard`).

Each is a dataclass that is written with ``to_dict`` and read back with the same class's
``from_dict``, which checks every field's type: numbers are finite numbers (never strings,
booleans, NaN or infinity), enums are one of their values, lists hold what they should.
A file that fails is a :class:`~a3bench.errors.ResultError` with one line naming the file
and the field, so ``report`` and ``check`` never compute with garbage and a CI gate cannot
be passed by a broken record. Readers ignore keys they do not know (files may grow).

Nothing here imports torch: reports and CI gates stay light. One module per file kind:
``base`` (enums, typed reading), ``record``, ``outcomes``, ``sweep``, ``state``, ``card``,
``audit``; everything is importable from ``a3bench.schema`` as before.
"""

from __future__ import annotations

from typing import Any

from a3bench.schema.base import AttackKind, AttackStatus, MAX_FILE_BYTES, SCHEMA_VERSION, STATE_VERSION, SWEEP_SCHEMA_VERSION, Severity, StrEnum, Verdict, _coerce, _from_dict, _plain, _read, _reject_constant, _short, _type_name, read_json  # noqa: F401
from a3bench.schema.record import AdvSummary, AttackRecord, AuditSummary, Flag, ProbeRecord, ResultRecord, Strength, _TOL, _at_least, _check_adv_summary, _check_interval, _check_record, _in, check_audit_summary, outcome_problems, read_record, write_record  # noqa: F401
from a3bench.schema.outcomes import Outcomes, read_outcomes, write_outcomes  # noqa: F401
from a3bench.schema.sweep import SweepPerExample, SweepRecord, read_sweep, write_sweep  # noqa: F401
from a3bench.schema.state import CurrentAttack, EscalationState, ResumeState, _check_state, read_state, write_state  # noqa: F401
from a3bench.schema.card import ModelCard, read_card  # noqa: F401
from a3bench.schema.audit import AUDIT_SCHEMA_VERSION, AuditResult, AuditSettings, BinarizationTest, INDICATOR_NAMES, Indicators, read_audit, write_audit  # noqa: F401



# Paths, sidecar suffixes and the runs/ rule live in a3bench/results.py; these names are
# kept here for the code that imported them from the schema.
_MOVED = ("AUXILIARY_SUFFIXES", "default_result_path", "outcomes_path", "audit_path", "state_path", "settings_differ")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from a3bench import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
