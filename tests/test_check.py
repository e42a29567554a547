"""`a3bench check`: exit codes for regressions, improvements and unusable inputs; McNemar."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.errors import ResultError
from a3bench.schema import Flag, ResultRecord, outcomes_path, write_record
from a3bench.io import write_json_atomic
from a3bench.report.check import check, mcnemar_exact
from a3bench.stats import discordant, wilson_interval

runner = CliRunner()


def record(clean: float = 90.0, robust: float = 50.0, **kw) -> ResultRecord:
    n = kw.get("n_examples", 10)
    ci = [round(v, 4) for v in wilson_interval(round(robust * n / 100), n)]  # check refuses an interval without its value
    base = dict(name="m", dataset="fmnist", eps=0.1, clean_acc=clean, robust_acc=robust, norm="Linf", eps_text="0.1", n_examples=10, seed=0, attacks=["apgd-ce"], robust_acc_ci=ci)
    return ResultRecord(**{**base, **kw})


def put(tmp_path: Path, name: str, rec: ResultRecord, robust: list[bool] | None = None, indices: list[int] | None = None) -> Path:
    path = tmp_path / name / "fmnist" / "Linf" / "m.json"
    if robust is not None:
        rec = dataclasses.replace(rec, outcomes_file="m.outcomes.json")
        write_json_atomic(
            outcomes_path(path),
            {
                "indices": indices if indices is not None else list(range(len(robust))),
                "labels": [i % 10 for i in range(len(robust))],
                "robust": robust,  # only robust: check recomputes robust_acc from it, and clean_acc would need clean_correct
            },
        )
    write_record(path, rec)
    return path


def run(cur: Path, base: Path, *extra: str):
    return runner.invoke(app, ["check", str(cur), "--baseline", str(base), *extra])


def test_mcnemar_hand_checked():
    # b=0, c=5: all 5 discordant pairs one way; p = 2 * (1/2)^5.
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # capped: the two tails overlap
    # b=1, c=9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert 0 < mcnemar_exact(400, 600) < 1e-9  # exact integers, no overflow at CI-sized counts


def test_discordant_pairs_carry_the_whole_difference():
    a = [True, True, False, False, True, False]
    b = [True, False, True, False, False, False]
    assert discordant(a, b) == (2, 1)
    assert discordant(b, a) == (1, 2)
    only_a, only_b = discordant(a, b)
    assert only_a - only_b == sum(a) - sum(b)


def test_identical_passes(tmp_path: Path):
    b = put(tmp_path, "base", record())
    c = put(tmp_path, "cur", record())
    res = run(c, b)
    assert res.exit_code == 0, res.output
    assert "pass" in res.output


def test_regression_fails_with_reasons(tmp_path: Path):
    b = put(tmp_path, "base", record(90.0, 50.0))
    c = put(tmp_path, "cur", record(88.0, 47.0))
    res = run(c, b)
    assert res.exit_code == 1
    assert "clean accuracy dropped 2.00 points" in res.output
    assert "worst-case robust accuracy dropped 3.00 points" in res.output
    # Within a looser tolerance it passes; a drop of exactly the tolerance passes too.
    assert run(c, b, "--max-drop", "3").exit_code == 0


def test_improvement_passes(tmp_path: Path):
    b = put(tmp_path, "base", record(90.0, 50.0), robust=[True] * 5 + [False] * 5)
    c = put(tmp_path, "cur", record(100.0, 100.0), robust=[True] * 10)
    res = run(c, b)
    assert res.exit_code == 0, res.output
    assert "0 newly broken, 5 newly robust" in res.output and "p = 0.0625" in res.output


def test_new_flag_fails(tmp_path: Path):
    b = put(tmp_path, "base", record())
    c = put(tmp_path, "cur", record(flags=[Flag("not-converged", "warning", "more steps lower accuracy")], verdict="suspicious"))
    res = run(c, b)
    assert res.exit_code == 1
    assert "new flag not-converged (warning)" in res.output
    assert "verdict worsened: reliable → suspicious" in res.output


def test_verdict_worse_alone_fails(tmp_path: Path):
    flag = Flag("black-box-beats-white-box", "warning", "square beat apgd")
    b = put(tmp_path, "base", record(flags=[flag], verdict="suspicious"))
    c = put(tmp_path, "cur", record(flags=[dataclasses.replace(flag, severity="error")], verdict="unreliable"))
    res = run(c, b)
    assert res.exit_code == 1
    assert "verdict worsened: suspicious → unreliable" in res.output and "new flag" not in res.output
    # And the other way round (flag gone, verdict better) passes.
    assert run(b, c).exit_code == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eps": 0.2, "eps_text": "0.2"}, "different threat models"),
        ({"norm": "L2"}, "different threat models"),
        ({"dataset": "cifar10"}, "different datasets"),
        ({"n_examples": 20}, "different examples"),
    ],
)
def test_mismatched_inputs_exit_2(tmp_path: Path, change: dict, message: str):
    b = put(tmp_path, "base", record())
    c = put(tmp_path, "cur", record(**change))
    res = run(c, b)
    assert res.exit_code == 2
    assert message in res.output and res.output.startswith("error:")


def test_different_example_indices_exit_2(tmp_path: Path):
    b = put(tmp_path, "base", record(100.0, 100.0), robust=[True] * 10)
    c = put(tmp_path, "cur", record(100.0, 100.0), robust=[True] * 10, indices=list(range(10, 20)))
    res = run(c, b)
    assert res.exit_code == 2 and "indices" in res.output


def test_missing_file_exit_2_subprocess(tmp_path: Path):
    b = put(tmp_path, "base", record())
    proc = subprocess.run(
        [sys.executable, "-m", "a3bench", "check", str(tmp_path / "nope.json"), "--baseline", str(b)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: result record {tmp_path / 'nope.json'} does not exist"]


def test_mcnemar_counts_from_outcomes(tmp_path: Path):
    base_robust = [True, True, True, False, False, True, False, True, True, False]
    cur_robust = [True, False, False, False, True, True, False, False, True, False]
    b = put(tmp_path, "base", record(robust=60.0), robust=base_robust)
    c = put(tmp_path, "cur", record(robust=40.0), robust=cur_robust)
    res = check(c, b, max_drop=100.0)
    m = res.mcnemar
    assert (m.newly_broken, m.newly_robust, m.both_robust, m.both_broken) == (3, 1, 3, 3)
    assert m.p_value == pytest.approx(2 * (1 + 4) / 16)  # b+c=4, min=1: 2*(C(4,0)+C(4,1))/2^4
    assert res.passed


def test_summary_written(tmp_path: Path):
    b = put(tmp_path, "base", record(90.0, 50.0), robust=[True] * 5 + [False] * 5)
    c = put(tmp_path, "cur", record(85.0, 30.0, flags=[Flag("zero-gradients", "error", "no gradient")], verdict="unreliable"), robust=[True] * 3 + [False] * 7)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    res = run(c, b, "--summary", str(summary))
    assert res.exit_code == 1
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, as $GITHUB_STEP_SUMMARY expects
    assert "## a3bench check: ❌ failed" in text
    assert "| Clean accuracy (%) | 90.00 | 85.00 | -5.00 |" in text
    assert "| Verdict | reliable | unreliable | worse |" in text
    assert "+zero-gradients" in text
    assert "2 newly broken, 0 newly robust" in text and "McNemar p = 0.5" in text
    assert "- new flag zero-gradients (error): no gradient" in text
    # An unusable comparison still leaves a line in the summary.
    res = run(tmp_path / "missing.json", b, "--summary", str(summary))
    assert res.exit_code == 2 and "could not compare" in summary.read_text()


def test_bad_max_drop(tmp_path: Path):
    b = put(tmp_path, "base", record())
    with pytest.raises(ResultError):
        check(b, b, max_drop=-1.0)
