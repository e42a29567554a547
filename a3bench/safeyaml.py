"""YAML that cannot eat the machine: size-capped, few aliases, plain data only.

``yaml.safe_load`` runs no code, but an alias bomb (a few lines that reference each other
a billion times) expands into gigabytes as soon as anything walks the result. Configs and
model cards are small, so a3bench refuses what is not: a file over ``max_bytes`` and a
document with more than ``max_aliases`` aliases.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from a3bench.errors import ResultError, one_line

MAX_BYTES = 1 << 20  # 1 MiB: a config or card is a few KB
MAX_ALIASES = 100
MAX_NODES = 100_000  # values after expanding every alias


class _BoundedLoader(yaml.SafeLoader):
    max_aliases = MAX_ALIASES

    def compose_node(self, parent, index):  # noqa: D401 — PyYAML hook
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > self.max_aliases:
                raise yaml.YAMLError(f"more than {self.max_aliases} YAML aliases (an alias bomb?)")
        return super().compose_node(parent, index)


def loads_yaml(text: str, *, what: str = "YAML", error: type[Exception] = ResultError, max_bytes: int = MAX_BYTES):
    """Parse ``text`` with the bounds above; any failure is ``error`` with one line."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise error(f"{what} is larger than {max_bytes >> 10} KiB")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{what} is not valid YAML{where}: {one_line(getattr(e, 'problem', None) or e, 100)}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    if _expanded_size(data, {}) > MAX_NODES:
        raise error(f"{what} expands to more than {MAX_NODES} values (an alias bomb?)")
    return data


def _expanded_size(obj, memo: dict) -> int:
    """How many values ``obj`` holds once every shared (aliased) part is counted each time
    it appears — what walking it costs; shared parts are sized once (memo by id)."""
    if not isinstance(obj, (list, dict)):
        return 1
    key = id(obj)
    if key not in memo:
        memo[key] = MAX_NODES + 1  # a cycle counts as too big
        children = obj.values() if isinstance(obj, dict) else obj
        total = 1
        for child in children:
            total += _expanded_size(child, memo)
            if total > MAX_NODES:
                break
        memo[key] = total
    return memo[key]


def load_yaml(path: Path, *, what: str = "YAML file", error: type[Exception] = ResultError, max_bytes: int = MAX_BYTES):
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise error(f"{what} {path} is larger than {max_bytes >> 10} KiB")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not a text file") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    return loads_yaml(text, what=f"{what} {path}", error=error, max_bytes=max_bytes)
