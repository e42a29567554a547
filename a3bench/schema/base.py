"""The schema's foundations: the enums at the edge (strings in files), typed reading of
JSON into dataclasses (every field checked), the bounded JSON reader (docs/results.md)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from enum import Enum
from typing import Any

from a3bench.errors import ResultError, one_line
from a3bench.io import read_regular_bytes


SCHEMA_VERSION = 1
SWEEP_SCHEMA_VERSION = 1
STATE_VERSION = 1
MAX_FILE_BYTES = 512 * 1024 * 1024  # a record, outcomes or sweep file larger than this is not ours


# --------------------------------------------------------------------------- enums (strings at the edge)


class StrEnum(str, Enum):
    """An enum whose members are their string values everywhere: in JSON, in f-strings, in ==."""

    __str__ = str.__str__
    __format__ = str.__format__


class Verdict(StrEnum):
    """What the diagnostics concluded about an evaluation (docs/diagnostics.md), best first:
    ``rank`` orders them (a CI gate fails when it rises). ``not-evaluated-fully``: no flag
    fired, but the evaluation was weaker than AutoAttack (:class:`Strength`), so its number
    is not one to rank or cite; it is never shown as reliable."""

    RELIABLE = "reliable"
    NOT_EVALUATED_FULLY = "not-evaluated-fully"
    SUSPICIOUS = "suspicious"
    UNRELIABLE = "unreliable"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


class Severity(StrEnum):
    WARNING = "warning"  # → suspicious
    ERROR = "error"  # → unreliable


class AttackStatus(StrEnum):
    RAN = "ran"
    SKIPPED = "skipped"  # does not apply to the model (a note says why)
    FAILED = "failed"  # raised an error; what it broke before stands


class AttackKind(StrEnum):
    """What an attack is, for diagnostics and the runner: they ask this, never the name.

    - ``white-box``: gradients of the deployed model (PGD, APGD, FAB, BPDA ...).
    - ``black-box``: queries only (Square, SPSA): immune to misleading gradients.
    - ``transfer``: crafted on another model or another mode of this one, judged here.
    - ``eot``: gradients averaged over the randomness of a randomised model.
    """

    WHITE_BOX = "white-box"
    BLACK_BOX = "black-box"
    TRANSFER = "transfer"
    EOT = "eot"


# --------------------------------------------------------------------------- typed reading


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(m.value for m in tp)
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp``; a ResultError names ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ResultError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else ResultError(f"{where}: {_short(value)} is not {' or '.join(_type_name(a) for a in args)}")
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ResultError(f"{where}: expected a list, got {_short(value)}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ResultError(f"{where}: expected an object, got {_short(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            raise ResultError(f"{where}: {_short(value)} is not {_type_name(tp)}") from None
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ResultError(f"{where}: expected a finite number, got {_short(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResultError(f"{where}: expected an integer, got {_short(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ResultError(f"{where}: expected true or false, got {_short(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ResultError(f"{where}: expected a string, got {_short(value)}")
        return value
    raise TypeError(f"schema: no reader for {tp!r}")  # a bug in this module, not in the file


def _short(value: Any) -> str:
    return one_line(repr(value), limit=60)


def _from_dict(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ResultError(f"{where or cls.__name__}: expected an object, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ResultError(f"{where or cls.__name__}: missing field {f.name!r}")
    return cls(**kwargs)


def _plain(obj: Any) -> Any:
    """A dataclass / enum tree as plain JSON values (enums as their strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.metadata.get("json", True)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Strict JSON from ``path``: a regular file of at most MAX_FILE_BYTES (a device, a FIFO
    or a huge file is refused before it is read, :func:`~a3bench.io.read_regular_bytes`);
    NaN and infinity are refused, so are numbers of thousands of digits and deep nesting."""
    data = read_regular_bytes(path, MAX_FILE_BYTES, what, ResultError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultError(f"{path} is not a text file (not an a3bench {what})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as e:
        raise ResultError(f"{path} is not valid JSON: {one_line(e, 120)}") from None


def _read(cls: type, path: str | os.PathLike, what: str) -> Any:
    data = read_json(path, what)
    try:
        return cls.from_dict(data)
    except ResultError as e:
        raise ResultError(f"{path}: {e}") from None
