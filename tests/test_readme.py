"""README's first screen (issue 22): the two commands that set up a machine and test it come
first, then what a3bench is, how to install it, how to evaluate one's own model, which suite
to run and what the verdict means; CI's installation details come later. CrossMax's
published claim is told the same way everywhere."""

from __future__ import annotations

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text()
FIRST_SCREEN = "\n".join(README.splitlines()[:60])


def test_readme_starts_with_setup_and_tests():
    code = [line.strip() for line in README.splitlines() if line.startswith("    ") and line.strip()]
    assert code[:2] == ["bash .ci/install && a3bench attack", "python -m pytest -q"]


def test_first_screen_answers_a_newcomer():
    for needle in ("pip install", "## Evaluate your own model", "--model my_net.py:make", "imagefolder:PATH",
                   "## Which suite to run, and what the verdict means", "`standard`", "`full`",
                   "`reliable`", "`suspicious`", "`unreliable`", "a3bench attacks"):
        assert needle in FIRST_SCREEN, needle
    assert README.index("## Installation and CI") > README.index("## The A3 module")  # CI details lower down
    assert "chromium-driver" not in FIRST_SCREEN


def test_suites_in_the_readme_are_the_registered_ones():
    from a3bench.attacks.registry import list_suites

    table = FIRST_SCREEN[FIRST_SCREEN.index("| suite |"):]
    named = set(re.findall(r"^\| `([a-z-]+)`", table, flags=re.M))
    assert named == set(list_suites())


def test_crossmax_claim_is_the_same_everywhere():
    """Fort & Lakshminarayanan claimed ≈72 % AutoAttack accuracy on CIFAR-10; Zhang et al.
    brought it to ≈11 %. No other CIFAR-10 figure may be told as the paper's."""
    for doc in (README, (REPO / "docs" / "crossmax.md").read_text()):
        sentences = re.split(r"(?<=[.;])\s", " ".join(doc.split()))
        figures = {n for s in sentences if "CIFAR-10" in s for n in re.findall(r"≈(\d+) ?%", s)}
        assert "72" in figures and figures <= {"72", "11"}, figures
