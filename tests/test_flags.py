"""The flag registry (a3bench/flags.py): every flag a3bench can raise is declared once, has
its section in docs/diagnostics.md, and no module spells a flag name of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from a3bench.flags import all_flags, flag_kind
from a3bench.report.flag_docs import flag_explanations
from a3bench.schema import Flag, Severity

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(all_flags()))
def test_every_flag_has_its_docs_section(name):
    sections = flag_explanations(ROOT / "docs" / "diagnostics.md")
    assert name in sections, f"docs/diagnostics.md has no '## {name}' section"
    assert len(sections[name].split()) >= 10, f"the section of {name} says almost nothing"


@pytest.mark.parametrize("name", list(all_flags()))
def test_a_kind_makes_its_flag(name):
    kind = flag_kind(name)
    flag = kind("a message", value=1.5)
    assert isinstance(flag, Flag) and flag.name == name and flag.severity is kind.severity and flag.value == 1.5
    other = Severity.WARNING if kind.severity is Severity.ERROR else Severity.ERROR
    assert kind("m", severity=other).severity is other
    assert kind.docs == f"docs/diagnostics.md#{name}"


def test_no_module_spells_a_flag_of_its_own():
    """``Flag("name", …)`` outside the registry would be a flag that nothing documents."""
    spelled = []
    for path in (ROOT / "a3bench").rglob("*.py"):
        if path.name in ("flags.py", "schema.py"):
            continue
        for m in re.finditer(r"\bFlag\(\s*[\"']", path.read_text()):
            spelled.append(f"{path.relative_to(ROOT)}:{path.read_text()[: m.start()].count(chr(10)) + 1}")
    assert not spelled, f"flags made by name instead of through a3bench.flags: {spelled}"


def test_every_emitted_flag_name_is_registered():
    """Strings compared with flag names in the package must be registered names too."""
    names = set(all_flags())
    unknown = set()
    for path in (ROOT / "a3bench").rglob("*.py"):
        for m in re.finditer(r"\.name\s*==\s*[\"']([a-z0-9-]+)[\"']", path.read_text()):
            if "-" in m.group(1) and m.group(1) not in names:
                unknown.add((str(path.relative_to(ROOT)), m.group(1)))
    assert not unknown


def test_unknown_names_are_none():
    assert flag_kind("no-such-flag") is None
