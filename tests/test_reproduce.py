"""Committed records reproduce (issue 20): the rebuilt evaluation core re-runs two committed
records (PGD-100 and GAMA-PGD-100 on the bundled TRADES ViT; per-example randomness, so a
subset reproduces) on their first 50 examples with the committed per-example outcomes,
through the model as given and through the execution layer alike."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.expensive]
RECORDS = [REPO / "benchmarks/vit_table3/vit_small_p4.trades_fmnist/pgd-100.json",
           REPO / "benchmarks/vit_table3/vit_small_p4.trades_fmnist/gama-pgd-100.json"]


@pytest.mark.parametrize("engine", ["plain", "auto"])
@pytest.mark.parametrize("record", RECORDS, ids=lambda p: p.stem)
def test_a_committed_record_reproduces_on_its_first_50_examples(record, engine):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from reproduce import reproduce
    finally:
        sys.path.pop(0)
    assert reproduce(record, 50, engine) == []
