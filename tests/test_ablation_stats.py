"""benchmarks/ablation_stats.py --interim on the committed resume states of the whole-test-set
A3 ablation (real runs, README "Results"): the paired counts agree with the per-model numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATES = ROOT / "benchmarks" / "ablation"


def _rows(text: str, header: str) -> list[list[str]]:
    block = text.split(header, 1)[1].split("\n\n")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.strip().splitlines()[2:]]


@pytest.mark.skipif(len(list(STATES.glob("*.state.json"))) < 2, reason="needs two committed resume states")
def test_interim_table_counts_agree_with_the_per_model_numbers():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ablation_stats.py"), "--interim", "--state-dir", str(STATES)],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, check=True).stdout
    n = int(re.search(r"([\d,]+) test images", out).group(1).replace(",", ""))
    models = {}
    for cells in _rows(out, "| model |"):
        clean, robust = float(cells[1]), float(cells[2].split()[0])
        lo, hi = (float(v) for v in re.findall(r"[\d.]+", cells[2].split("[")[1]))
        assert 0 <= robust <= clean <= 100 and lo <= robust <= hi
        models[re.search(r"`(smallcnn[^`]+)`", cells[0]).group(1)] = robust
    assert len(models) >= 2
    pairs = _rows(out, "| pair |")
    assert pairs
    labels = {"A3 `joint`": "smallcnn.a3_joint_fmnist", "A3 `attenuate-only`": "smallcnn.a3_attenuate_only_fmnist",
              "PGD-AT (no A3)": "smallcnn.pgdat_fmnist"}
    for cells in pairs:
        first, second = (labels[s.strip()] for s in cells[0].split(" vs "))
        only_a, only_b, diff, p = int(cells[1]), int(cells[2]), float(cells[3]), float(cells[4])
        # robust(a) - robust(b) = (only in a) - (only in b): the discordant pairs carry the whole difference
        assert diff == pytest.approx(100.0 * (only_a - only_b) / n, abs=0.006)
        assert models[first] - models[second] == pytest.approx(diff, abs=0.011)
        assert 0.0 <= p <= 1.0
