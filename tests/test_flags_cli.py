"""`a3bench flags` and `a3bench models NAME` (issue 22 items 11 and 13): what a user reads in
the terminal points to something that exists and reads as text, not as Python reprs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from a3bench.cli import app
from a3bench.flags import all_flags

runner = CliRunner()


def test_flags_lists_every_registered_flag():
    res = runner.invoke(app, ["flags"])
    assert res.exit_code == 0, res.output
    for name, kind in all_flags().items():
        assert re.search(rf"\b{re.escape(name)}\b", res.output), name
    assert "a3bench flags NAME" in res.output


@pytest.mark.parametrize("name", list(all_flags()))
def test_each_flag_prints_its_docs_section(name):
    from a3bench.report.flag_docs import flag_explanations

    res = runner.invoke(app, ["flags", name], terminal_width=200)
    assert res.exit_code == 0, res.output
    section = flag_explanations()[name]
    first_words = " ".join(re.sub(r"[`*\[\]]", "", section.split("\n\n")[0]).split()[1:6])  # after "**warning**."
    assert first_words in " ".join(res.output.split()), (first_words, res.output[:400])
    assert not re.search(r"^\s*\|[-: |]+\|\s*$", res.output, re.MULTILINE)  # a markdown table's rule line: a table shown as pipes


def test_flag_tables_are_tables_in_the_terminal():
    res = runner.invoke(app, ["flags", "gradient-inconsistent"], terminal_width=200)
    assert "┃ kind" in res.output and "│ zero " in res.output  # rich's table, with the docs' rows
    md = runner.invoke(app, ["flags", "gradient-inconsistent", "--markdown"])
    assert md.output.startswith("## gradient-inconsistent\n") and "| kind |" in md.output  # the docs as they are, on request


@pytest.mark.parametrize("name, match", [
    ("zero-gradient", "did you mean zero-gradients"),
    ("[/]evil", "no flag named '[/]evil'"),
    ("[link=http://x]y", "no flag named"),
])
def test_unknown_flag_is_one_error_line(name, match):
    res = runner.invoke(app, ["flags", name])
    assert res.exit_code == 2 and res.output.startswith("error:") and match in res.output and len(res.output.strip().splitlines()) == 1


def test_flags_works_outside_the_repository(tmp_path):
    """The docs ship with the package: from any folder, `a3bench flags NAME` explains the flag."""
    out = subprocess.run([sys.executable, "-m", "a3bench", "flags", "not-converged"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Doubling the PGD iterations" in " ".join(out.stdout.split())


def test_attack_points_to_a3bench_flags_not_a_path():
    """What the CLI prints after a flag must exist for a pip user: a command, not docs/diagnostics.md."""
    from pathlib import Path

    for module in ("attack_cli", "audit_cli"):
        src = (Path(__file__).resolve().parents[1] / "a3bench" / "cli" / f"{module}.py").read_text()
        assert "docs/diagnostics.md#" not in src.replace("(docs/diagnostics.md#not-converged)", "")
        assert "a3bench flags " in src


# --------------------------------------------------------------------------- a3bench models


def test_models_name_prints_fields_not_reprs():
    res = runner.invoke(app, ["models", "smallcnn.a3_joint_fmnist"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "{'" not in res.output and "': " not in res.output and "[1, 28" not in res.output  # no dict or list repr
    lines = {ln.split()[0]: ln.split(None, 1)[1].strip() for ln in res.output.splitlines() if len(ln.split()) >= 2}
    assert lines["meta.a3.placement"] == "all" and lines["meta.metrics.pgd_steps"] == "20" and lines["meta.input_shape"] == "1, 28, 28"


def test_models_zoo_labels_its_pgd_column():
    res = runner.invoke(app, ["models"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "PGD-K % (training)" in res.output and "(PGD-20)" in res.output
    assert "not an a3bench attack record" in " ".join(res.output.split())
