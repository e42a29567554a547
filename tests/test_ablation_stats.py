"""benchmarks/ablation_stats.py --interim on the committed resume states of the whole-test-set
A3 ablation (real runs, README "Results"): the robust accuracy never rises along the
cascade, and the paired counts of each McNemar test agree with the per-model numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATES = ROOT / "benchmarks" / "ablation"
LABELS = {"A3 `joint`": "smallcnn.a3_joint_fmnist", "A3 `attenuate-only`": "smallcnn.a3_attenuate_only_fmnist",
          "PGD-AT (no A3)": "smallcnn.pgdat_fmnist"}


def _rows(text: str, header: str) -> list[list[str]]:
    block = text.split(header, 1)[1].split("\n\n")[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()[2:]]


@pytest.mark.skipif(len(list(STATES.glob("*.state.json"))) < 2, reason="needs two committed resume states")
def test_interim_table_counts_agree_with_the_per_model_numbers():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation_stats.py"), "--interim", "--state-dir", str(STATES)],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True).stdout
    n = int(re.search(r"([\d,]+) test images", out).group(1).replace(",", ""))
    chains = {}
    for cells in _rows(out, "| model |"):
        name = re.search(r"`(smallcnn[^`]+)`", cells[0]).group(1)
        clean = float(cells[1])
        steps = [] if cells[2] == "none finished yet" else [s.rsplit(" ", 1) for s in cells[2].split(" → ")]
        values = [clean] + [float(v) for _, v in steps]
        assert all(a >= b for a, b in zip(values, values[1:])), f"{name}: robust accuracy rose along the cascade: {values}"
        if steps:
            last, lo, hi = (float(v) for v in re.findall(r"[\d.]+", cells[3]))
            assert last == values[-1] and lo <= last <= hi
        chains[name] = {attack: float(v) for attack, v in steps}
    assert sum(bool(c) for c in chains.values()) >= 2
    tested = 0
    for cells in _rows(out, "| pair |"):
        if cells[1].startswith("no common attack"):
            continue
        first, second = (LABELS[s.strip()] for s in cells[0].split(" vs "))
        after = [a.strip() for a in cells[1].split(",")]
        ra, rb = (float(v) for v in cells[2].split(","))
        only_a, only_b, diff, p = int(cells[3]), int(cells[4]), float(cells[5]), float(cells[6])
        assert ra == chains[first][after[-1]] and rb == chains[second][after[-1]]
        # robust(a) - robust(b) = (only in a) - (only in b): the discordant pairs carry the whole difference
        assert diff == pytest.approx(100.0 * (only_a - only_b) / n, abs=0.006)
        assert ra - rb == pytest.approx(diff, abs=0.011)
        assert 0.0 <= p <= 1.0
        tested += 1
    assert tested >= 1
